//! The hand-over point between the threads that end segments and the emitter's worker: a
//! queue bounded in documents and in bytes, and the count of documents dealt with, for
//! `flush`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::emitter::encode::Datagrams;

/// One document as `emit` left it: serialized (split and trimmed to fit the API's document
/// size when needed), with what the worker needs to know about it without parsing it again.
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) datagrams: Datagrams,
    /// The entity's id (of the whole document; a split document's parts have their own).
    pub(super) id: String,
    /// The document is an in-progress segment (no `end_time` yet).
    pub(super) in_progress: bool,
}

#[derive(Debug, Default)]
struct Waiting {
    docs: VecDeque<Queued>,
    bytes: usize,
}

/// Documents waiting for the worker.
#[derive(Debug)]
pub(super) struct Queue {
    waiting: Mutex<Waiting>,
    capacity: usize,
    max_bytes: usize,
    /// Wakes the worker: a document arrived on an idle queue, a flush was asked for, or the
    /// emitter was dropped.
    pub(super) notify: Notify,
    /// The worker waits for more documents before sending a partial batch; a flush stops that.
    pub(super) flush_requested: AtomicBool,
    /// Documents ever put on the queue.
    queued: AtomicU64,
    /// Documents the worker finished with (sent, failed or dropped).
    done: Mutex<u64>,
    done_cond: Condvar,
    /// No more documents are taken: the emitter was dropped or its worker could not start.
    pub(super) closed: AtomicBool,
}

impl Queue {
    pub(super) fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            waiting: Mutex::new(Waiting::default()),
            capacity,
            max_bytes,
            notify: Notify::new(),
            flush_requested: AtomicBool::new(false),
            queued: AtomicU64::new(0),
            done: Mutex::new(0),
            done_cond: Condvar::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another document may be serialized for the queue (checked again, with its
    /// size, by [`push`](Self::push)).
    pub(super) fn has_room(&self) -> bool {
        let w = self.lock();
        !self.closed.load(Ordering::Acquire)
            && w.docs.len() < self.capacity
            && w.bytes < self.max_bytes
    }

    /// Queues `doc` if it fits (a document larger than the byte bound is taken only when
    /// nothing else waits); returns whether it was taken. Never waits for anything but the
    /// queue's lock.
    pub(super) fn push(&self, doc: Queued) -> bool {
        let size = doc.datagrams.bytes();
        let mut w = self.lock();
        let fits =
            w.docs.len() < self.capacity && (w.bytes + size <= self.max_bytes || w.docs.is_empty());
        if !fits || self.closed.load(Ordering::Acquire) {
            return false;
        }
        w.bytes += size;
        w.docs.push_back(doc);
        let wake = w.docs.len() == 1 || w.docs.len() >= super::batch::MAX_DOCUMENTS_PER_CALL;
        drop(w);
        self.queued.fetch_add(1, Ordering::Release);
        if wake {
            self.notify.notify_one();
        }
        true
    }

    /// How many documents wait.
    pub(super) fn len(&self) -> usize {
        self.lock().docs.len()
    }

    /// Takes every waiting document.
    pub(super) fn take_all(&self) -> VecDeque<Queued> {
        let mut w = self.lock();
        w.bytes = 0;
        std::mem::take(&mut w.docs)
    }

    /// Counts `n` documents finished with, for `flush`.
    pub(super) fn finished(&self, n: u64) {
        if n == 0 {
            return;
        }
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) += n;
        self.done_cond.notify_all();
    }

    /// Waits until every document queued before the call is finished with, at most
    /// `timeout`; false when time ran out.
    pub(super) fn flush(&self, timeout: Duration) -> bool {
        let target = self.queued.load(Ordering::Acquire);
        let deadline = Instant::now() + timeout;
        self.flush_requested.store(true, Ordering::Release);
        self.notify.notify_one();
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while *done < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Woken when documents are finished with; the short wait also covers a worker
            // that is gone (its documents then never finish: the deadline ends the wait).
            done = self
                .done_cond
                .wait_timeout(done, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if *done < target {
                self.flush_requested.store(true, Ordering::Release);
                self.notify.notify_one();
            }
        }
        true
    }
}
