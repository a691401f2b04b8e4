//! Turning a document into daemon datagrams within the size budget.

use crate::document::{Cause, Document, SmolStr};

/// The line that starts every datagram.
pub const DATAGRAM_HEADER: &str = "{\"format\":\"json\",\"version\":1}\n";

/// The largest datagram we send, header line included.
pub const MAX_DATAGRAM_BYTES: usize = 64_000;

/// The result of [`encode_datagrams`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Encoded {
    /// The datagrams, each `DATAGRAM_HEADER` followed by one JSON document.
    pub datagrams: Vec<Vec<u8>>,
    /// The document had to be split into independent subsegments.
    pub split: bool,
    /// Entities that were trimmed to fit (and then fitted).
    pub trimmed: u64,
    /// Documents that could not be made to fit even after trimming, and were dropped.
    pub failed: u64,
}

/// Serializes `doc` into one datagram, or several when it exceeds `budget` bytes.
///
/// A document that is too large is split: its subsegments are sent as independent subsegments
/// (`type`, `trace_id`, `parent_id` set), recursively, so the receiver can rebuild the tree.
/// A single entity that is still too large is trimmed: metadata first, then stack frames, then
/// long strings are shortened; what cannot fit even then is counted in `failed`.
pub fn encode_datagrams(doc: Document, budget: usize) -> Encoded {
    let mut out = Encoded::default();
    encode_into(doc, budget.max(1024), &mut out);
    out
}

/// What [`encode_one`] made of a document.
#[derive(Debug)]
pub(crate) enum Datagrams {
    /// The usual case: the document fits one datagram.
    One(Vec<u8>),
    /// Split, trimmed or dropped: see [`Encoded`].
    Many(Encoded),
}

impl Datagrams {
    /// Bytes held, for the queue's bound.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Datagrams::One(d) => d.len(),
            Datagrams::Many(enc) => enc.datagrams.iter().map(Vec::len).sum(),
        }
    }
}

/// Like [`encode_datagrams`], serializing into `buf` (cleared first) and returning it as the
/// one datagram when the document fits, which is almost always: no allocation when `buf` has
/// room, and no list of datagrams around a single one.
pub(crate) fn encode_one(doc: Document, budget: usize, buf: Vec<u8>) -> Datagrams {
    encode_one_ref(&doc, budget, buf)
        .unwrap_or_else(|| Datagrams::Many(encode_datagrams(doc, budget.max(1024))))
}

/// [`encode_one`] for a borrowed document; a document too large for one datagram is copied to
/// be split and trimmed.
pub(crate) fn encode_one_cloning(doc: &Document, budget: usize, buf: Vec<u8>) -> Datagrams {
    encode_one_ref(doc, budget, buf)
        .unwrap_or_else(|| Datagrams::Many(encode_datagrams(doc.clone(), budget.max(1024))))
}

/// One datagram, when the document fits `budget` whole.
fn encode_one_ref(doc: &Document, budget: usize, mut buf: Vec<u8>) -> Option<Datagrams> {
    let budget = budget.max(1024);
    buf.clear();
    buf.extend_from_slice(DATAGRAM_HEADER.as_bytes());
    doc.write_json(&mut buf);
    (buf.len() <= budget).then_some(Datagrams::One(buf))
}

fn serialize(doc: &Document) -> Vec<u8> {
    let mut buf = Vec::with_capacity(DATAGRAM_HEADER.len() + 1024);
    buf.extend_from_slice(DATAGRAM_HEADER.as_bytes());
    doc.write_json(&mut buf);
    buf
}

fn encode_into(mut doc: Document, budget: usize, out: &mut Encoded) {
    let buf = serialize(&doc);
    if buf.len() <= budget {
        out.datagrams.push(buf);
        return;
    }
    if !doc.subsegments.is_empty() {
        out.split = true;
        let subs = std::mem::take(&mut doc.subsegments);
        for mut s in subs {
            s.kind = Some("subsegment".to_string());
            s.trace_id = doc.trace_id;
            s.parent_id = Some(doc.id);
            encode_into(s, budget, out);
        }
        encode_into(doc, budget, out);
        return;
    }
    let steps: [fn(&mut Document); 4] = [
        |d| d.metadata.clear(),
        |d| {
            if let Some(Cause::Exceptions(c)) = &mut d.cause {
                for e in &mut c.exceptions {
                    let n = e.stack.len() as u32;
                    if n > 0 {
                        e.stack.clear();
                        e.truncated = Some(e.truncated.unwrap_or(0) + n);
                    }
                }
                c.paths.clear();
            }
        },
        |d| shorten_strings(d, 2048),
        |d| {
            d.annotations.clear();
            d.aws
                .retain(|k, _| k == "xray" || k == "operation" || k == "request_id");
            if let Some(Cause::Exceptions(c)) = &mut d.cause {
                let n = c.exceptions.len().saturating_sub(1) as u32;
                if n > 0 {
                    c.exceptions.truncate(1);
                    c.exceptions[0].skipped = Some(n);
                    c.exceptions[0].cause = None;
                }
            }
            shorten_strings(d, 256);
        },
    ];
    for step in steps {
        step(&mut doc);
        let buf = serialize(&doc);
        if buf.len() <= budget {
            out.datagrams.push(buf);
            out.trimmed += 1;
            return;
        }
    }
    super::defer(super::Deferred::TooLarge {
        id: doc.id,
        name: doc.name.to_string(),
    });
    out.failed += 1;
}

fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut i = max;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
}

/// [`cut`] for a `SmolStr`.
fn cut_short(s: &mut SmolStr, max: usize) {
    if s.len() > max {
        let mut owned = s.to_string();
        cut(&mut owned, max);
        *s = SmolStr::from(owned);
    }
}

fn shorten_strings(d: &mut Document, max: usize) {
    if let Some(r) = &mut d.http.request {
        for s in [&mut r.url, &mut r.user_agent].into_iter().flatten() {
            cut(s, max);
        }
        for s in [&mut r.method, &mut r.client_ip].into_iter().flatten() {
            cut_short(s, max);
        }
    }
    if let Some(sql) = &mut d.sql {
        for s in [&mut sql.sanitized_query, &mut sql.url]
            .into_iter()
            .flatten()
        {
            cut(s, max);
        }
    }
    if let Some(Cause::Exceptions(c)) = &mut d.cause {
        for e in &mut c.exceptions {
            for s in [&mut e.message, &mut e.kind].into_iter().flatten() {
                cut(s, max);
            }
        }
    }
    for v in d.annotations.values_mut() {
        if let serde_json::Value::String(s) = v {
            cut(s, max);
        }
    }
    for v in d.aws.values_mut() {
        if let serde_json::Value::String(s) = v {
            cut(s, max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{EntityId, TraceId};
    use crate::time::Timestamp;

    fn doc(name: &str) -> Document {
        Document {
            name: name.into(),
            id: EntityId::new(),
            start_time: Timestamp::now(),
            end_time: Some(Timestamp::now()),
            ..Document::default()
        }
    }

    #[test]
    fn small_document_is_one_datagram_with_header() {
        let mut d = doc("svc");
        d.trace_id = Some(TraceId::new());
        let e = encode_datagrams(d, MAX_DATAGRAM_BYTES);
        assert_eq!(e.datagrams.len(), 1);
        let s = std::str::from_utf8(&e.datagrams[0]).unwrap();
        let (head, body) = s.split_once('\n').unwrap();
        assert_eq!(head, r#"{"format":"json","version":1}"#);
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["name"], "svc");
        assert!(!e.split);
    }

    #[test]
    fn oversized_document_is_split_into_independent_subsegments() {
        let mut root = doc("svc");
        let tid = TraceId::new();
        root.trace_id = Some(tid);
        for i in 0..400 {
            let mut s = doc(&format!("child-{i}"));
            s.annotations.insert("pad".into(), "x".repeat(300).into());
            root.subsegments.push(s);
        }
        let root_id = root.id;
        let e = encode_datagrams(root, MAX_DATAGRAM_BYTES);
        assert!(e.split);
        assert_eq!(e.datagrams.len(), 401);
        let mut children = 0;
        for d in &e.datagrams {
            assert!(d.len() <= MAX_DATAGRAM_BYTES);
            let body = &d[DATAGRAM_HEADER.len()..];
            let v: Document = serde_json::from_slice(body).unwrap();
            assert_eq!(v.trace_id, Some(tid));
            if v.kind.as_deref() == Some("subsegment") {
                assert_eq!(v.parent_id, Some(root_id));
                children += 1;
            }
        }
        assert_eq!(children, 400);
    }

    #[test]
    fn lone_oversized_entity_is_trimmed_and_counted() {
        let mut d = doc("big");
        d.trace_id = Some(TraceId::new());
        d.metadata.insert(
            "default".into(),
            serde_json::json!({"blob": "y".repeat(100_000)}),
        );
        d.annotations.insert("keep".into(), "me".into());
        let e = encode_datagrams(d, MAX_DATAGRAM_BYTES);
        assert_eq!(e.trimmed, 1);
        assert_eq!(e.datagrams.len(), 1);
        let v: Document = serde_json::from_slice(&e.datagrams[0][DATAGRAM_HEADER.len()..]).unwrap();
        assert!(v.metadata.is_empty());
        assert_eq!(v.annotations["keep"], "me");
    }

    #[test]
    fn long_strings_are_shortened_on_a_char_boundary() {
        let mut d = doc("big");
        d.annotations.insert("a".into(), "é".repeat(40_000).into());
        let e = encode_datagrams(d, MAX_DATAGRAM_BYTES);
        assert_eq!(e.datagrams.len(), 1);
        assert_eq!(e.trimmed, 1);
        let v: Document = serde_json::from_slice(&e.datagrams[0][DATAGRAM_HEADER.len()..]).unwrap();
        assert!(v.annotations["a"].as_str().unwrap().len() <= 2048);
    }
}
