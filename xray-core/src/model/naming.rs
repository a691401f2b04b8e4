//! Entity names, wildcard patterns and dynamic segment naming.

use std::borrow::Cow;

/// Characters X-Ray accepts in names besides letters, digits and white space.
const NAME_PUNCTUATION: &str = "_.:/%&#=+\\-@";

fn allowed(c: char) -> bool {
    match u8::try_from(c) {
        Ok(b) if b.is_ascii() => ASCII_ALLOWED[b as usize],
        _ => c.is_alphanumeric() || c.is_whitespace(),
    }
}

/// [`allowed`] for each ASCII character: the usual all-ASCII name is checked by table lookups.
const ASCII_ALLOWED: [bool; 128] = {
    let mut t = [false; 128];
    let mut b = 0;
    while b < 128 {
        // ASCII white space as `char::is_whitespace` sees it: tab to carriage return, space.
        t[b] = (b as u8).is_ascii_alphanumeric() || matches!(b, 0x09..=0x0d | 0x20);
        b += 1;
    }
    let punct = NAME_PUNCTUATION.as_bytes();
    let mut i = 0;
    while i < punct.len() {
        t[punct[i] as usize] = true;
        i += 1;
    }
    t
};

/// Makes a name X-Ray accepts: characters outside letters, digits, white space and
/// `_ . : / % & # = + \ - @` are removed, and the result is cut to `max` characters.
/// An empty result becomes `unknown`.
pub fn sanitize_name(name: &str, max: usize) -> Cow<'_, str> {
    // Bytes first: an all-ASCII name (the usual one) is checked without decoding characters.
    let clean = !name.is_empty()
        && name.len() <= max
        && (name
            .bytes()
            .all(|b| b.is_ascii() && ASCII_ALLOWED[b as usize])
            || name.chars().all(allowed));
    if clean {
        return Cow::Borrowed(name);
    }
    let s: String = name.chars().filter(|&c| allowed(c)).take(max).collect();
    if s.is_empty() {
        Cow::Borrowed("unknown")
    } else {
        Cow::Owned(s)
    }
}

/// Matches `text` against a pattern where `*` stands for any run of characters and `?` for
/// exactly one, ignoring ASCII case. Runs in O(len(text) * len(pattern)) at worst, without
/// recursion or allocation.
///
/// ```
/// use xray_core::naming::wildcard_match;
/// assert!(wildcard_match("*.example.com", "API.example.com"));
/// assert!(wildcard_match("/users/?", "/users/7"));
/// assert!(!wildcard_match("/users/?", "/users/42"));
/// ```
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<usize> = None;
    let mut mark = 0usize;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&t[ti])) {
            // `?` matches one byte; for non-ASCII text this is one UTF-8 byte, see below.
            if p[pi] == b'?' {
                // Consume a whole UTF-8 character for `?`.
                ti += utf8_len(t[ti]);
            } else {
                ti += 1;
            }
            pi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += utf8_len(t[mark]);
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// Names segments after the request's host when it matches a pattern (SPEC §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicNaming {
    fallback: String,
    pattern: Option<String>,
}

impl DynamicNaming {
    /// A fixed name.
    pub fn fixed(name: impl Into<String>) -> Self {
        Self {
            fallback: name.into(),
            pattern: None,
        }
    }

    /// The host when it matches `pattern`, else `fallback`.
    pub fn new(fallback: impl Into<String>, pattern: impl Into<String>) -> Self {
        Self {
            fallback: fallback.into(),
            pattern: Some(pattern.into()),
        }
    }

    /// The fallback name.
    pub fn fallback(&self) -> &str {
        &self.fallback
    }

    /// The segment name for a request to `host` (a `Host` header value, with or without port).
    /// The port is ignored when matching and naming.
    pub fn name_for<'a>(&'a self, host: Option<&'a str>) -> &'a str {
        self.matched_host(host).unwrap_or(&self.fallback)
    }

    /// Whether a pattern names segments after hosts.
    pub fn is_dynamic(&self) -> bool {
        self.pattern.is_some()
    }

    /// The host (without port) when a pattern is set and the host matches it.
    pub fn matched_host<'a>(&self, host: Option<&'a str>) -> Option<&'a str> {
        let pattern = self.pattern.as_deref()?;
        let h = strip_port(host?);
        (!h.is_empty() && wildcard_match(pattern, h)).then_some(h)
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    // One backward pass: digits, then the one colon (a second colon means a bare IPv6
    // address, which has no port to strip).
    let bytes = host.as_bytes();
    let mut i = bytes.len();
    while i > 0 && bytes[i - 1].is_ascii_digit() {
        i -= 1;
    }
    match i.checked_sub(1) {
        Some(colon) if bytes[colon] == b':' && !bytes[..colon].contains(&b':') => &host[..colon],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_table_agrees_with_the_character_rule() {
        for b in 0u8..128 {
            let c = char::from(b);
            let rule = c.is_alphanumeric() || c.is_whitespace() || NAME_PUNCTUATION.contains(c);
            assert_eq!(ASCII_ALLOWED[b as usize], rule, "{c:?}");
            assert_eq!(allowed(c), rule, "{c:?}");
        }
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c", "ac", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*mysite.com*", "www.MySite.com", true),
            ("*mysite.com*", "example.org", false),
            ("GET", "get", true),
            ("/api/*/items", "/api/v1/items", true),
            ("/api/*/items", "/api/v1/other", false),
            ("??", "é1", true),
            ("*a*a*a*a*a*b", &"a".repeat(60), false),
        ];
        for (p, t, want) in cases {
            assert_eq!(wildcard_match(p, t), want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("my-service", 200), "my-service");
        assert_eq!(sanitize_name("bad<name>!", 200), "badname");
        assert_eq!(sanitize_name("<>", 200), "unknown");
        assert_eq!(sanitize_name(&"x".repeat(300), 200).len(), 200);
    }

    #[test]
    fn dynamic_naming_matches_host_without_port() {
        let n = DynamicNaming::new("fallback", "*.example.com");
        assert_eq!(n.name_for(Some("api.example.com:8443")), "api.example.com");
        assert_eq!(n.name_for(Some("api.example.com")), "api.example.com");
        assert_eq!(n.name_for(Some("other.org")), "fallback");
        assert_eq!(n.name_for(None), "fallback");
        assert_eq!(
            DynamicNaming::fixed("svc").name_for(Some("a.example.com")),
            "svc"
        );
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
    }
}
