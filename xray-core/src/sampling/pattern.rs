//! Rule patterns, prepared once so matching a request is cheap.
//!
//! Most patterns in sampling rules are `*`, a literal, or a literal with one `*` at an end
//! (`/api/*`, `*.example.com`). Those are compared directly, ignoring ASCII case; any other
//! pattern goes through [`wildcard_match`], whose meaning the shortcuts share exactly.

use crate::naming::{strip_port, wildcard_match};

#[derive(Clone, Debug)]
enum Kind {
    Any,
    Exact,
    Prefix,
    Suffix,
    Glob,
}

/// A pattern with `*` and `?` wildcards, ignoring ASCII case.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    kind: Kind,
    /// The literal part for `Exact`, `Prefix` and `Suffix`; the whole pattern for `Glob`.
    text: Box<str>,
}

impl Pattern {
    pub(crate) fn new(pattern: &str) -> Self {
        let wild = |s: &str| s.contains(['*', '?']);
        let (kind, text) = if pattern.bytes().all(|b| b == b'*') && !pattern.is_empty() {
            (Kind::Any, "")
        } else if !wild(pattern) {
            (Kind::Exact, pattern)
        } else if let Some(p) = pattern.strip_suffix('*').filter(|p| !wild(p)) {
            (Kind::Prefix, p)
        } else if let Some(s) = pattern.strip_prefix('*').filter(|s| !wild(s)) {
            (Kind::Suffix, s)
        } else {
            (Kind::Glob, pattern)
        };
        let text = match kind {
            // Lower-cased once, so matching lower-cases only the request's side.
            Kind::Exact | Kind::Prefix | Kind::Suffix => text.to_ascii_lowercase(),
            Kind::Any | Kind::Glob => text.to_string(),
        };
        Self {
            kind,
            text: text.into(),
        }
    }

    /// True for `*` (or `**`...): matches every value, absent ones included.
    pub(crate) fn is_any(&self) -> bool {
        matches!(self.kind, Kind::Any)
    }

    /// Whether `value` (absent: the empty string) matches.
    #[inline]
    pub(crate) fn matches(&self, value: Option<&str>) -> bool {
        let t = value.unwrap_or("").as_bytes();
        let p = self.text.as_bytes();
        match self.kind {
            Kind::Any => true,
            Kind::Exact => t.len() == p.len() && lower_eq(t, p),
            Kind::Prefix => t.len() >= p.len() && lower_eq(&t[..p.len()], p),
            Kind::Suffix => t.len() >= p.len() && lower_eq(&t[t.len() - p.len()..], p),
            Kind::Glob => wildcard_match(&self.text, value.unwrap_or("")),
        }
    }

    /// Like [`matches`](Self::matches), ignoring a port on the host.
    #[inline]
    pub(crate) fn matches_host(&self, host: Option<&str>) -> bool {
        match self.kind {
            Kind::Any => true,
            _ => self.matches(host.map(strip_port)),
        }
    }
}

/// `text` lower-cased equals `lower` (same length, already lower case).
#[inline]
fn lower_eq(text: &[u8], lower: &[u8]) -> bool {
    text.iter()
        .zip(lower)
        .fold(true, |eq, (t, l)| eq & (t.to_ascii_lowercase() == *l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_agree_with_wildcard_match() {
        let patterns = [
            "*",
            "**",
            "",
            "GET",
            "/api/*",
            "*.example.com",
            "*mid*",
            "a?c",
            "/x/*/y",
            "é*",
            "*É",
            "?",
            "*?",
            "a*b*c",
        ];
        let texts = [
            "",
            "get",
            "GET",
            "gEt",
            "/api/",
            "/API/users",
            "/ap",
            "api.example.com",
            ".example.com",
            "example.com",
            "xmidx",
            "abc",
            "ac",
            "/x/1/y",
            "é1",
            "aÉ",
            "a",
            "abbbc",
            "aXbYc",
        ];
        for p in patterns {
            let compiled = Pattern::new(p);
            for t in texts {
                assert_eq!(
                    compiled.matches(Some(t)),
                    wildcard_match(p, t),
                    "{p:?} vs {t:?} ({compiled:?})"
                );
            }
            assert_eq!(
                compiled.matches(None),
                wildcard_match(p, ""),
                "{p:?} vs none"
            );
        }
    }

    #[test]
    fn host_port_is_ignored() {
        assert!(Pattern::new("api.example.com").matches_host(Some("API.example.com:8443")));
        assert!(Pattern::new("*.example.com").matches_host(Some("a.example.com:80")));
        assert!(!Pattern::new("*.example.com").matches_host(None));
    }
}
