//! Cutting queued documents into `PutTraceSegments` calls within the API's limits, and
//! keeping each document's account while its parts travel.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use serde::Deserialize;

use super::queue::Queued;
use crate::emitter::encode::Datagrams;
use crate::emitter::{Counters, DATAGRAM_HEADER};

/// Most documents in one `PutTraceSegments` call. The API model states no maximum, but the
/// daemon and the OpenTelemetry collector's exporter both send at most 50, the figure the
/// collector calls the API's limit.
pub const MAX_DOCUMENTS_PER_CALL: usize = 50;

/// Default bound on the documents' bytes in one call. AWS documents no request size; 1 MiB
/// keeps a call well away from any HTTP body limit while 50 typical segments (a few KiB each)
/// still go together.
pub const DEFAULT_CALL_BYTES: usize = 1 << 20;

/// A queued document's fate, shared by its parts (a document too large for one API document
/// is split into several).
#[derive(Debug)]
pub(super) struct Account {
    parts_left: Cell<usize>,
    /// A part could not be encoded or delivered.
    lost: Cell<bool>,
}

/// What became of a whole document once its last part is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Settled {
    Sent,
    Failed,
}

/// One API document on its way.
#[derive(Debug)]
pub(super) struct Part {
    pub(super) body: String,
    pub(super) id: String,
    pub(super) in_progress: bool,
    /// Times the API returned it in `UnprocessedTraceSegments`.
    pub(super) returned: u32,
    account: Rc<Account>,
}

impl Part {
    /// Settles this part: delivered or not. Returns the document's fate when this was its
    /// last part.
    pub(super) fn settle(self, delivered: bool) -> Option<Settled> {
        let a = &self.account;
        if !delivered {
            a.lost.set(true);
        }
        let left = a.parts_left.get().saturating_sub(1);
        a.parts_left.set(left);
        (left == 0).then(|| {
            if a.lost.get() {
                Settled::Failed
            } else {
                Settled::Sent
            }
        })
    }
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    id: String,
    #[serde(default)]
    in_progress: bool,
}

/// A datagram's JSON document, without the daemon's header line.
fn body(mut datagram: Vec<u8>) -> Option<String> {
    if datagram.starts_with(DATAGRAM_HEADER.as_bytes()) {
        datagram.drain(..DATAGRAM_HEADER.len());
    }
    String::from_utf8(datagram).ok()
}

/// The API documents of one queued document. When nothing of it can be sent (every part
/// failed to encode), returns no part and the document's fate at once.
pub(super) fn parts(doc: Queued, counters: &Counters) -> (Vec<Part>, Option<Settled>) {
    let (bodies, lost) = match doc.datagrams {
        Datagrams::One(d) => (
            body(d)
                .map(|b| (b, doc.id, doc.in_progress))
                .into_iter()
                .collect(),
            false,
        ),
        Datagrams::Many(enc) => {
            if enc.split {
                Counters::add(&counters.split, 1);
            }
            Counters::add(&counters.trimmed, enc.trimmed);
            let bodies: Vec<(String, String, bool)> = enc
                .datagrams
                .into_iter()
                .filter_map(body)
                .map(|b| {
                    let head = serde_json::from_str::<Head>(&b).unwrap_or(Head {
                        id: String::new(),
                        in_progress: false,
                    });
                    (b, head.id, head.in_progress)
                })
                .collect();
            (bodies, enc.failed > 0)
        }
    };
    if bodies.is_empty() {
        return (Vec::new(), Some(Settled::Failed));
    }
    let account = Rc::new(Account {
        parts_left: Cell::new(bodies.len()),
        lost: Cell::new(lost),
    });
    let parts = bodies
        .into_iter()
        .map(|(body, id, in_progress)| Part {
            body,
            id,
            in_progress,
            returned: 0,
            account: account.clone(),
        })
        .collect();
    (parts, None)
}

/// Takes the next call's documents off the front of `pending`: at most
/// [`MAX_DOCUMENTS_PER_CALL`] and at most `max_bytes` of documents (a single larger document
/// goes alone).
pub(super) fn next_call(pending: &mut VecDeque<Part>, max_bytes: usize) -> Vec<Part> {
    let mut call = Vec::new();
    let mut bytes = 0;
    while let Some(p) = pending.front() {
        if call.len() >= MAX_DOCUMENTS_PER_CALL
            || (!call.is_empty() && bytes + p.body.len() > max_bytes)
        {
            break;
        }
        bytes += p.body.len();
        call.extend(pending.pop_front());
    }
    call
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Document;
    use crate::emitter::encode::{encode_one, Datagrams};
    use crate::emitter::MAX_DATAGRAM_BYTES;

    fn queued(doc: Document) -> Queued {
        let id = doc.id.to_string();
        let in_progress = doc.in_progress;
        Queued {
            datagrams: encode_one(doc, MAX_DATAGRAM_BYTES, Vec::new()),
            id,
            in_progress,
        }
    }

    #[test]
    fn calls_hold_at_most_fifty_documents_and_the_byte_bound() {
        let counters = Counters::default();
        let mut pending = VecDeque::new();
        for i in 0..120 {
            let (p, settled) = parts(queued(Document::new(format!("d{i}"))), &counters);
            assert_eq!(settled, None);
            pending.extend(p);
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let c = next_call(&mut pending, DEFAULT_CALL_BYTES);
            (!c.is_empty()).then_some(c.len())
        })
        .collect();
        assert_eq!(sizes, [50, 50, 20]);

        for i in 0..10 {
            pending.extend(parts(queued(Document::new(format!("d{i}"))), &counters).0);
        }
        let one = pending[0].body.len();
        let c = next_call(&mut pending, one * 3 + 1);
        assert_eq!(c.len(), 3);
        // A document larger than the bound still goes, alone.
        let c = next_call(&mut pending, 1);
        assert_eq!(c.len(), 1);
        assert!(!c[0].body.starts_with(DATAGRAM_HEADER));
        serde_json::from_str::<serde_json::Value>(&c[0].body).unwrap();
    }

    #[test]
    fn a_split_document_is_sent_only_when_every_part_is() {
        let counters = Counters::default();
        let mut root = Document::new("big");
        root.trace_id = Some(crate::TraceId::new());
        for i in 0..3 {
            let mut s = Document::new(format!("child-{i}"));
            s.annotations
                .insert("pad".into(), "p".repeat(40_000).into());
            root.subsegments.push(s);
        }
        let (p, settled) = parts(queued(root), &counters);
        assert_eq!(settled, None);
        assert_eq!(
            p.len(),
            4,
            "the segment and its three subsegments, each alone"
        );
        assert!(p
            .iter()
            .all(|p| p.body.len() < MAX_DATAGRAM_BYTES && !p.id.is_empty()));
        assert_eq!(counters.snapshot().split, 1);
        let mut it = p.into_iter();
        assert_eq!(it.next().unwrap().settle(true), None);
        assert_eq!(it.next().unwrap().settle(false), None);
        assert_eq!(it.next().unwrap().settle(true), None);
        assert_eq!(it.next().unwrap().settle(true), Some(Settled::Failed));

        let (p, _) = parts(queued(Document::new("small")), &counters);
        assert_eq!(
            p.into_iter().next().unwrap().settle(true),
            Some(Settled::Sent)
        );
    }

    #[test]
    fn a_document_that_cannot_be_encoded_fails_at_once() {
        let counters = Counters::default();
        let q = Queued {
            datagrams: Datagrams::One(vec![0xff, 0xfe]),
            id: "x".into(),
            in_progress: false,
        };
        let (p, settled) = parts(q, &counters);
        assert!(p.is_empty());
        assert_eq!(settled, Some(Settled::Failed));
    }
}
