//! Emitters deliver finished documents.
//!
//! An emitter's `emit` runs on the thread that ended the segment (the request's thread, for a
//! server segment): it must return at once. The UDP emitter serializes there, into a reused
//! buffer, and leaves the network I/O to its own thread.
//!
//! [`UdpEmitter`] sends to the X-Ray daemon; [`MemoryEmitter`] keeps what would have been sent,
//! for tests. Both split and trim documents the same way (see [`encode_datagrams`]) so tests see
//! exactly the datagrams production would send.
//!
//! With the cargo feature `xray-api`, `XRayApiEmitter` (module `xray_api`) sends the same
//! documents, split and trimmed the same way, straight to the X-Ray API with
//! `PutTraceSegments`, through the AWS SDK for Rust.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::document::Document;

mod encode;
mod memory;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
pub mod select;
mod sendmany;
mod udp;
#[cfg(feature = "xray-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "xray-api")))]
pub mod xray_api;

pub use encode::{encode_datagrams, DATAGRAM_HEADER, MAX_DATAGRAM_BYTES};
pub use memory::MemoryEmitter;
pub use udp::{UdpEmitter, UdpEmitterBuilder, DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_CAPACITY};
#[cfg(feature = "xray-api")]
pub use xray_api::{ApiStats, XRayApiEmitter, XRayApiEmitterBuilder};

/// Receives finished segment and subsegment documents.
///
/// `emit` is called on the request path: implementations must return at once, never
/// blocking on I/O.
pub trait Emitter: Send + Sync + fmt::Debug + 'static {
    /// Hands over a finished document.
    fn emit(&self, document: Document);

    /// Hands over a finished document by reference, for emitters that only need to read it
    /// (to serialize it, say): the recorder then keeps it where it is instead of taking it
    /// out of the segment's tree. Returns whether the document was taken care of; the
    /// default returns false, and the document then comes through [`emit`](Self::emit).
    ///
    /// It is called while the segment's own lock is held: it must return quickly and must
    /// not record anything on the entities of that segment.
    fn emit_borrowed(&self, document: &Document) -> bool {
        let _ = document;
        false
    }

    /// Waits until documents handed over so far are delivered, at most `timeout`.
    /// Returns false if time ran out.
    fn flush(&self, timeout: Duration) -> bool {
        let _ = timeout;
        true
    }

    /// Delivery counters.
    fn stats(&self) -> EmitterStats {
        EmitterStats::default()
    }
}

/// What an emitter did so far.
///
/// `accepted`, `sent`, `dropped` and `errors` count documents (a segment, or a subsegment sent
/// on its own), whatever the number of datagrams each took: once the emitter is flushed, each
/// accepted document is counted in exactly one of the other three, so
/// `sent + dropped + errors == accepted`. `datagrams` and `refused` count datagrams.
///
/// `sent` says that the kernel took a document's datagrams, not that the daemon received
/// them: UDP has no acknowledgement. When nobody listens at the daemon's port, the daemon's
/// host answers each datagram with ICMP port unreachable, which the UDP emitter counts in
/// `refused` (and warns about, once a minute at most).
///
/// The X-Ray API emitter (feature `xray-api`) counts a document in `sent` once the API accepted
/// every part of it, and in `errors` when a part was refused or not delivered after its
/// retries; it leaves `datagrams` and `refused` at zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmitterStats {
    /// Documents handed to the emitter.
    pub accepted: u64,
    /// Documents whose datagrams were all handed to the network (the kernel took them). A
    /// document split into several datagrams counts once.
    pub sent: u64,
    /// Documents dropped before any work was done to send them: the queue was full (in
    /// documents or in bytes) or the emitter had shut down.
    pub dropped: u64,
    /// Documents split into several datagrams because they exceeded the size budget.
    pub split: u64,
    /// Entities (a document, or one part of a split document) trimmed (metadata, stacks,
    /// long strings removed) to fit the size budget.
    pub trimmed: u64,
    /// Documents not sent, or not wholly: a part could not be made to fit even after
    /// trimming, the daemon's address could not be resolved or no socket opened to it, or the
    /// kernel turned a datagram down.
    pub errors: u64,
    /// Datagrams handed to the network (a document split in several counts several).
    pub datagrams: u64,
    /// Datagrams the daemon's address refused (ICMP port unreachable: nothing listens at the
    /// daemon's port), as its answers came back. These datagrams are among `datagrams`, and
    /// their documents among `sent` (the kernel took them), but never arrived. On Linux each
    /// answer is counted (hosts rate-limit them, loopback excepted; a run sent with
    /// segmentation offload that is refused before being cut up, as on loopback, gets one);
    /// elsewhere each time a send reports one, which may stand for several.
    pub refused: u64,
}

/// Something an emitter has to tell the user about a document it was handed. Emitters may be
/// called while the segment's lock is held, where a `tracing` event could call back into the
/// segment (a subscriber that records on it) and deadlock: they note it here, and the
/// recorder reports it once the lock is released ([`report_deferred`]).
#[derive(Debug)]
pub(crate) enum Deferred {
    /// The queue was full (in documents or in bytes); `dropped` documents so far.
    QueueFull { dropped: u64 },
    /// A document did not fit in a datagram even after trimming.
    TooLarge { id: crate::EntityId, name: String },
}

thread_local! {
    static DEFERRED: std::cell::RefCell<Vec<Deferred>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Notes `what` for [`report_deferred`].
pub(crate) fn defer(what: Deferred) {
    let _ = DEFERRED.try_with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            // Bounded: one report per kind of problem is enough until the next report.
            if d.len() < 16 {
                d.push(what);
            }
        }
    });
}

/// Logs what emitters noted on this thread; called where no segment lock is held.
pub(crate) fn report_deferred() {
    // Almost always nothing: look before taking the list out.
    let empty = DEFERRED
        .try_with(|d| d.try_borrow().map_or(true, |d| d.is_empty()))
        .unwrap_or(true);
    if empty {
        return;
    }
    let pending = DEFERRED
        .try_with(|d| {
            d.try_borrow_mut()
                .map(|mut d| std::mem::take(&mut *d))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    for what in pending {
        match what {
            Deferred::QueueFull { dropped } => {
                tracing::warn!(
                    dropped,
                    "X-Ray emitter queue is full (documents or bytes); dropping segments"
                )
            }
            Deferred::TooLarge { id, name } => tracing::warn!(
                %id,
                name,
                "document does not fit in a datagram even after trimming; dropped"
            ),
        }
    }
}

/// Thread-safe counters behind [`EmitterStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) split: AtomicU64,
    pub(crate) trimmed: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) datagrams: AtomicU64,
    pub(crate) refused: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> EmitterStats {
        EmitterStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            split: self.split.load(Ordering::Relaxed),
            trimmed: self.trimmed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            datagrams: self.datagrams.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// An emitter that drops everything; used when the SDK is disabled.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopEmitter;

impl Emitter for NoopEmitter {
    fn emit(&self, _document: Document) {}
    fn emit_borrowed(&self, _document: &Document) -> bool {
        true
    }
}

impl<E: Emitter + ?Sized> Emitter for std::sync::Arc<E> {
    fn emit(&self, document: Document) {
        (**self).emit(document)
    }
    fn emit_borrowed(&self, document: &Document) -> bool {
        (**self).emit_borrowed(document)
    }
    fn flush(&self, timeout: Duration) -> bool {
        (**self).flush(timeout)
    }
    fn stats(&self) -> EmitterStats {
        (**self).stats()
    }
}
