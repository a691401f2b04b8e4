//! The `X-Amzn-Trace-Id` header.
//!
//! ```
//! use xray_core::{TraceHeader, Sampled};
//! let h: TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
//!     .parse()
//!     .unwrap();
//! assert_eq!(h.sampled, Some(Sampled::Yes));
//! assert_eq!(
//!     h.to_string(),
//!     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
//! );
//! ```
//!
//! Parsing is tolerant where that is safe (spaces around `;` and `=`, any key case, trailing
//! `;`, pieces without `=`) and strict about the trace id: a malformed `Root` makes the whole
//! header unusable, so the caller starts a new trace. Pairs other than `Root`, `Parent`,
//! `Sampled` and `Self` (for example `Lineage`) are kept in order and forwarded unchanged;
//! `Self`, which load balancers add, is dropped.

use std::fmt;
use std::str::FromStr;

use crate::id::{EntityId, IdError, TraceId};

/// The header's name, lower case as HTTP/2 wants it.
pub const HEADER_NAME: &str = "x-amzn-trace-id";

/// The longest header we look at; anything after it is ignored.
pub const MAX_HEADER_LEN: usize = 1024;

/// The `Sampled` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sampled {
    /// `Sampled=1`: the caller traces this request.
    Yes,
    /// `Sampled=0`: the caller does not.
    No,
    /// `Sampled=?`: the caller asks the callee to decide and to say so in its response.
    Requested,
}

impl Sampled {
    /// The field's value as written in the header.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Sampled::Yes => "1",
            Sampled::No => "0",
            Sampled::Requested => "?",
        }
    }

    /// `Yes` or `No` from a decision.
    pub const fn from_bool(sampled: bool) -> Self {
        if sampled {
            Sampled::Yes
        } else {
            Sampled::No
        }
    }
}

/// Why a header could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The `Root` field is not a valid trace id.
    #[error("malformed Root in trace header: {0}")]
    MalformedRoot(#[source] IdError),
    /// The header is not valid UTF-8 text.
    #[error("trace header is not text")]
    NotText,
}

/// A parsed `X-Amzn-Trace-Id` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceHeader {
    /// The trace id, when the caller sent one.
    pub root: Option<TraceId>,
    /// The caller's segment or subsegment id.
    pub parent: Option<EntityId>,
    /// The caller's sampling decision.
    pub sampled: Option<Sampled>,
    /// Pairs that are not interpreted but forwarded (`Lineage` and unknown keys), in order.
    pub extra: Vec<(Box<str>, Box<str>)>,
}

impl TraceHeader {
    /// A header for an outbound call.
    pub fn new(root: TraceId, parent: Option<EntityId>, sampled: Option<Sampled>) -> Self {
        Self {
            root: Some(root),
            parent,
            sampled,
            extra: Vec::new(),
        }
    }

    /// Parses raw header bytes. Never panics, whatever the input.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, HeaderError> {
        if let Some(h) = Self::canonical(raw) {
            return Ok(h);
        }
        Self::general(raw)
    }

    /// The layout every SDK writes, `Root=<35>;Parent=<16>;Sampled=<1|0|?>` with nothing after
    /// it, read by position. Anything else (or anything odd inside) goes to the general parser,
    /// so both give the same result.
    fn canonical(raw: &[u8]) -> Option<Self> {
        if raw.len() != 74
            || !raw.starts_with(b"Root=")
            || &raw[40..48] != b";Parent="
            || &raw[64..73] != b";Sampled="
        {
            return None;
        }
        let sampled = match raw[73] {
            b'1' => Sampled::Yes,
            b'0' => Sampled::No,
            b'?' => Sampled::Requested,
            _ => return None,
        };
        Some(Self {
            root: Some(TraceId::parse_bytes(&raw[5..40]).ok()?),
            parent: Some(EntityId::parse_bytes(&raw[48..64]).ok()?),
            sampled: Some(sampled),
            extra: Vec::new(),
        })
    }

    fn general(raw: &[u8]) -> Result<Self, HeaderError> {
        let raw = if raw.len() > MAX_HEADER_LEN {
            // The piece cut in half at the limit is dropped, not misread.
            let head = &raw[..MAX_HEADER_LEN];
            match head.iter().rposition(|&b| b == b';') {
                Some(i) => &head[..i],
                None => head,
            }
        } else {
            raw
        };
        let mut h = TraceHeader::default();
        for piece in raw.split(|&b| b == b';') {
            let Some(eq) = piece.iter().position(|&b| b == b'=') else {
                continue; // a piece without `=` carries nothing we can forward faithfully
            };
            let key = trim(&piece[..eq]);
            let value = trim(&piece[eq + 1..]);
            if key.is_empty() {
                continue;
            }
            if key.eq_ignore_ascii_case(b"root") {
                if h.root.is_none() {
                    h.root = Some(TraceId::parse_bytes(value).map_err(HeaderError::MalformedRoot)?);
                }
            } else if key.eq_ignore_ascii_case(b"parent") {
                if h.parent.is_none() {
                    match EntityId::parse_bytes(value) {
                        Ok(id) => h.parent = Some(id),
                        Err(e) => {
                            tracing::debug!(error = %e, "ignoring malformed Parent in trace header")
                        }
                    }
                }
            } else if key.eq_ignore_ascii_case(b"sampled") {
                if h.sampled.is_none() {
                    h.sampled = match value {
                        b"1" => Some(Sampled::Yes),
                        b"0" => Some(Sampled::No),
                        b"?" => Some(Sampled::Requested),
                        _ => None,
                    };
                }
            } else if key.eq_ignore_ascii_case(b"self") {
                // Added by load balancers about themselves; not forwarded.
            } else if is_token(key) && is_value(value) {
                let key = if key.eq_ignore_ascii_case(b"lineage") {
                    "Lineage"
                } else {
                    std::str::from_utf8(key).map_err(|_| HeaderError::NotText)?
                };
                let value = std::str::from_utf8(value).map_err(|_| HeaderError::NotText)?;
                h.extra.push((key.into(), value.into()));
            }
        }
        Ok(h)
    }

    /// Parses a header and logs a warning through `tracing` when it cannot be used.
    ///
    /// Returns `None` for an absent or unusable header; the caller then starts a new trace.
    pub fn parse_or_warn(raw: Option<&[u8]>) -> Option<Self> {
        let raw = raw?;
        match Self::from_bytes(raw) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unusable X-Amzn-Trace-Id header; starting a new trace");
                None
            }
        }
    }

    /// The `Lineage` value, when present.
    pub fn lineage(&self) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| &**k == "Lineage")
            .map(|(_, v)| &**v)
    }
}

impl FromStr for TraceHeader {
    type Err = HeaderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(s.as_bytes())
    }
}

impl TraceHeader {
    /// Appends the header's text to `out`.
    pub fn write_to(&self, out: &mut String) {
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !std::mem::take(&mut first) {
                out.push(';');
            }
        };
        if let Some(root) = &self.root {
            sep(out);
            out.push_str("Root=");
            push_ascii(out, &root.to_bytes());
        }
        if let Some(parent) = &self.parent {
            sep(out);
            out.push_str("Parent=");
            push_ascii(out, &parent.to_bytes());
        }
        if let Some(s) = &self.sampled {
            sep(out);
            out.push_str("Sampled=");
            out.push_str(s.as_str());
        }
        for (k, v) in &self.extra {
            sep(out);
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
    }
}

fn push_ascii(out: &mut String, bytes: &[u8]) {
    // Ids are written as ASCII hex digits and dashes only, so this never falls back; checking
    // the whole slice at once is several times cheaper than pushing it char by char.
    out.push_str(std::str::from_utf8(bytes).unwrap_or_default());
}

impl TraceHeader {
    /// The header's text in one allocation (what `to_string` gives, without the extra copy
    /// that going through `Display` makes). Adapters call this on every request.
    pub fn to_header_string(&self) -> String {
        // Exactly sized: `http::HeaderValue` (through `bytes`) takes over a buffer whose length
        // equals its capacity without another allocation.
        let mut s = String::with_capacity(self.text_len());
        self.write_to(&mut s);
        debug_assert_eq!(s.len(), s.capacity(), "text_len disagrees with write_to");
        s
    }

    /// The length of [`write_to`](Self::write_to)'s output.
    fn text_len(&self) -> usize {
        let pairs = usize::from(self.root.is_some())
            + usize::from(self.parent.is_some())
            + usize::from(self.sampled.is_some())
            + self.extra.len();
        let mut len = pairs.saturating_sub(1);
        len += self.root.map_or(0, |_| "Root=".len() + 35);
        len += self.parent.map_or(0, |_| "Parent=".len() + 16);
        len += self
            .sampled
            .map_or(0, |s| "Sampled=".len() + s.as_str().len());
        len + self
            .extra
            .iter()
            .map(|(k, v)| k.len() + 1 + v.len())
            .sum::<usize>()
    }
}

impl fmt::Display for TraceHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_string())
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn is_token(s: &[u8]) -> bool {
    s.iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_value(s: &[u8]) -> bool {
    s.iter()
        .all(|&b| (0x21..=0x7e).contains(&b) && b != b';' && b != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn header_text_is_allocated_exactly() {
        for text in [
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Lineage=a87bd80c:1|68fd508a:5;Foo=bar",
            "Sampled=0",
            "Self=1-abc;Sampled=1",
        ] {
            let h = TraceHeader::from_str(text).unwrap();
            let s = h.to_header_string();
            assert_eq!(s.len(), s.capacity(), "{text}");
            assert_eq!(s, h.to_string());
        }
        let empty = TraceHeader::from_str("Foo=1").map(|h| h.to_header_string());
        if let Ok(s) = empty {
            assert_eq!(s.len(), s.capacity());
        }
    }

    fn parse(s: &str) -> TraceHeader {
        s.parse().unwrap()
    }

    #[test]
    fn full_header_round_trips() {
        let s =
            format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0|0;Foo=bar");
        let h = parse(&s);
        assert_eq!(h.root.unwrap().to_string(), ROOT);
        assert_eq!(h.parent.unwrap().to_string(), "53995c3f42cd8ad8");
        assert_eq!(h.sampled, Some(Sampled::Yes));
        assert_eq!(h.lineage(), Some("a87bd80c:0|0"));
        assert_eq!(h.to_string(), s);
    }

    #[test]
    fn spaces_case_and_trailing_semicolon_are_tolerated() {
        let h = parse(&format!(
            " root = {ROOT} ; PARENT=53995c3f42cd8ad8 ; sampled=0 ; "
        ));
        assert_eq!(h.root.unwrap().to_string(), ROOT);
        assert_eq!(h.parent.unwrap().to_string(), "53995c3f42cd8ad8");
        assert_eq!(h.sampled, Some(Sampled::No));
        assert_eq!(
            h.to_string(),
            format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=0")
        );
    }

    #[test]
    fn piece_without_equals_does_not_discard_the_header() {
        let h = parse(&format!("Root={ROOT};garbage;Sampled=?"));
        assert!(h.root.is_some());
        assert_eq!(h.sampled, Some(Sampled::Requested));
    }

    #[test]
    fn self_is_dropped_and_unknown_pairs_kept_in_order() {
        let h = parse(&format!(
            "Self=1-67891234-12456789abcdef012345678;Root={ROOT};b=2;a=1"
        ));
        assert_eq!(h.to_string(), format!("Root={ROOT};b=2;a=1"));
    }

    #[test]
    fn malformed_root_makes_the_header_unusable() {
        for bad in [
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a99427279z",
            "Root=",
        ] {
            assert!(
                matches!(
                    bad.parse::<TraceHeader>(),
                    Err(HeaderError::MalformedRoot(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(TraceHeader::parse_or_warn(Some(b"Root=nope")), None);
    }

    #[test]
    fn malformed_parent_or_sampled_is_dropped_alone() {
        let h = parse(&format!("Root={ROOT};Parent=xyz;Sampled=10"));
        assert!(h.root.is_some());
        assert_eq!(h.parent, None);
        assert_eq!(h.sampled, None);
    }

    #[test]
    fn repeated_keys_keep_the_first() {
        let h = parse(&format!("Root={ROOT};Sampled=1;Sampled=0"));
        assert_eq!(h.sampled, Some(Sampled::Yes));
    }

    #[test]
    fn canonical_layout_reads_like_the_general_parser() {
        for h in [
            format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"),
            format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=?"),
            format!("Root={ROOT};Parent=53995C3F42CD8AD8;Sampled=0"),
            format!("Root={ROOT};Parent=0000000000000000;Sampled=1"),
            format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=x"),
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                .to_string(),
        ] {
            assert_eq!(
                TraceHeader::from_bytes(h.as_bytes()),
                TraceHeader::general(h.as_bytes()),
                "{h}"
            );
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            b";;;;".to_vec(),
            b"=".to_vec(),
            b"==;==".to_vec(),
            vec![0xff, 0xfe, b'=', 0x80],
            "Root=\u{1F600}".as_bytes().to_vec(),
            vec![b'a'; 100_000],
            format!("Root={ROOT};{}", "x=y;".repeat(10_000)).into_bytes(),
        ];
        for _ in 0..2000 {
            let len = fastrand::usize(0..64);
            inputs.push((0..len).map(|_| fastrand::u8(..)).collect());
        }
        for input in inputs {
            if let Ok(h) = TraceHeader::from_bytes(&input) {
                let again: TraceHeader = h.to_string().parse().unwrap();
                assert_eq!(again, h);
            }
        }
    }

    #[test]
    fn long_headers_are_capped() {
        let s = format!("Root={ROOT};{}", "k=v;".repeat(1000));
        let h = parse(&s);
        assert!(h.root.is_some());
        assert!(h.to_string().len() <= MAX_HEADER_LEN);
    }

    #[test]
    fn non_text_extra_values_are_dropped() {
        let mut raw = format!("Root={ROOT};a=").into_bytes();
        raw.push(0x01);
        let h = TraceHeader::from_bytes(&raw).unwrap();
        assert!(h.extra.is_empty());
    }
}
