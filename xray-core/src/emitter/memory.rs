//! An emitter that keeps documents in memory, for tests.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{
    encode_datagrams, Counters, Emitter, EmitterStats, DATAGRAM_HEADER, MAX_DATAGRAM_BYTES,
};
use crate::document::Document;

/// Keeps every datagram that would have been sent, encoded exactly as the UDP emitter would.
///
/// Clone it before handing it to the recorder, and read from the clone:
///
/// ```
/// use xray_core::{emitter::MemoryEmitter, Recorder};
/// let emitter = MemoryEmitter::new();
/// let recorder = Recorder::builder().emitter(emitter.clone()).build().unwrap();
/// recorder.begin_segment("svc", None).end();
/// let docs = emitter.documents();
/// assert_eq!(docs[0].name, "svc");
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryEmitter {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    datagrams: Mutex<Vec<Vec<u8>>>,
    cond: Condvar,
    counters: Counters,
}

impl MemoryEmitter {
    /// An empty emitter.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.inner
            .datagrams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The raw datagrams, header line included.
    pub fn datagrams(&self) -> Vec<Vec<u8>> {
        self.lock().clone()
    }

    /// The documents received so far, in order.
    pub fn documents(&self) -> Vec<Document> {
        self.lock().iter().filter_map(|d| parse(d)).collect()
    }

    /// The documents as JSON values.
    pub fn values(&self) -> Vec<serde_json::Value> {
        self.lock()
            .iter()
            .filter_map(|d| serde_json::from_slice(&d[DATAGRAM_HEADER.len()..]).ok())
            .collect()
    }

    /// Removes and returns the documents received so far.
    pub fn take_documents(&self) -> Vec<Document> {
        std::mem::take(&mut *self.lock())
            .iter()
            .filter_map(|d| parse(d))
            .collect()
    }

    /// Waits until at least `n` documents arrived (or `timeout` passed) and returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Document> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        while g.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            g = self
                .inner
                .cond
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        g.iter().filter_map(|d| parse(d)).collect()
    }

    /// Forgets everything received.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

fn parse(d: &[u8]) -> Option<Document> {
    serde_json::from_slice(d.get(DATAGRAM_HEADER.len()..)?).ok()
}

impl Emitter for MemoryEmitter {
    fn emit(&self, document: Document) {
        Counters::add(&self.inner.counters.accepted, 1);
        let enc = encode_datagrams(document, MAX_DATAGRAM_BYTES);
        let c = &self.inner.counters;
        if enc.split {
            Counters::add(&c.split, 1);
        }
        Counters::add(&c.trimmed, enc.trimmed);
        // Counted as the UDP emitter counts: a document is sent when every part of it is.
        if enc.failed == 0 {
            Counters::add(&c.sent, 1);
        } else {
            Counters::add(&c.errors, 1);
        }
        Counters::add(&c.datagrams, enc.datagrams.len() as u64);
        self.lock().extend(enc.datagrams);
        self.inner.cond.notify_all();
    }

    fn stats(&self) -> EmitterStats {
        self.inner.counters.snapshot()
    }
}
