//! The UDP emitter: a bounded queue and one background thread that serializes and sends.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::encode::{encode_one, encode_one_cloning, Datagrams};
use super::{sendmany, Counters, Emitter, EmitterStats, MAX_DATAGRAM_BYTES};
use crate::daemon::{DaemonAddress, HostPort};
use crate::document::Document;

/// How many documents may wait to be sent, by default ([`UdpEmitterBuilder::queue_capacity`]).
pub const DEFAULT_QUEUE_CAPACITY: usize = 2048;

/// How many bytes of datagrams may wait to be sent, by default
/// ([`UdpEmitterBuilder::queue_bytes`]): 4 MiB, twice what the default 2048 documents of a
/// typical 1 KiB take, so the document count binds first for usual traffic while a run of
/// large documents (up to 64 000 bytes each, or split ones larger still) cannot hold more
/// than 4 MiB.
pub const DEFAULT_QUEUE_BYTES: usize = 4 << 20;

/// How often a busy emitter thread looks for new documents. Between looks, requests hand
/// documents over without waking it, so a busy service pays no context switch per request,
/// and each look sends what gathered in as few system calls as possible. 10 ms rather than
/// 2 ms: under the default rule (a few sampled requests per interval) the thread's wake-ups
/// and the caches they displaced cost the request thread more than the sends themselves. The
/// daemon batches for a second anyway, and a burst that fills half the queue wakes it early.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);

/// The interval while more documents arrive per [`BATCH_INTERVAL`] than one system call
/// takes: at 2 ms a round sends about a hundred datagrams even at 50 000 segments a second,
/// a few hundred microseconds of work, where a 10 ms round would hold a shared core for
/// milliseconds and show in the requests' p99.
const BUSY_INTERVAL: Duration = Duration::from_millis(2);

/// Serialization buffers kept for reuse, and the size each starts with (a typical segment is
/// well under 1 KiB; a larger one grows its buffer, which is kept up to 4 times this size).
const SPARE_BUFFERS: usize = 128;
const SPARE_CAPACITY: usize = 1024 + super::DATAGRAM_HEADER.len();

/// Refusals by the daemon's address are warned about when first seen, then at most this
/// often while they go on.
const REFUSED_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Documents waiting for the emitter thread.
#[derive(Debug, Default)]
struct Waiting {
    docs: VecDeque<Datagrams>,
    /// The datagrams' bytes.
    bytes: usize,
}

/// The hand-over point between requests and the emitter thread.
#[derive(Debug)]
struct Queue {
    waiting: Mutex<Waiting>,
    /// Most documents waiting.
    capacity: usize,
    /// Most bytes waiting (a document larger than this alone is taken when nothing waits).
    max_bytes: usize,
    /// Sent datagrams' buffers, handed back for the next documents to be serialized into, so
    /// that a buffer is neither allocated per segment nor freed by another thread than the
    /// one that allocated it (which costs glibc's allocator its per-thread fast path).
    spare: Mutex<Vec<Vec<u8>>>,
    /// The thread is parked with nothing to do and must be woken by the next document.
    idle: AtomicBool,
    /// Documents taken off the queue and fully processed (sent, dropped or failed).
    done: Mutex<u64>,
    done_cond: Condvar,
    /// Documents ever put on the queue.
    queued: AtomicU64,
    thread: Mutex<Option<Thread>>,
    closed: AtomicBool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another document may be encoded for the queue (checked again, with its size,
    /// before it is put there).
    fn has_room(&self) -> bool {
        let w = self.lock();
        w.docs.len() < self.capacity && w.bytes < self.max_bytes
    }

    /// Moves every waiting document to `batch` (which must be empty).
    fn take_all(&self, batch: &mut VecDeque<Datagrams>) {
        let mut w = self.lock();
        std::mem::swap(batch, &mut w.docs);
        w.bytes = 0;
    }

    fn spare_buffer(&self) -> Vec<u8> {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        spare.unwrap_or_else(|| Vec::with_capacity(SPARE_CAPACITY))
    }

    /// Keeps buffers of the usual size for reuse, up to [`SPARE_BUFFERS`].
    fn give_back(&self, buffers: &mut Vec<Vec<u8>>) {
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        for b in buffers.drain(..) {
            if spare.len() < SPARE_BUFFERS && b.capacity() <= SPARE_CAPACITY * 4 {
                spare.push(b);
            }
        }
    }

    fn wake(&self) {
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            t.unpark();
        }
    }
}

/// Sends documents to the X-Ray daemon over UDP.
///
/// [`emit`](Emitter::emit) serializes the document (split or trimmed to fit
/// [`MAX_DATAGRAM_BYTES`]) and puts the datagrams on a bounded queue; it never touches the
/// network. The queue holds at most 2048 documents and 4 MiB of datagrams (see
/// [`UdpEmitterBuilder::queue_capacity`] and [`UdpEmitterBuilder::queue_bytes`]); when either
/// is reached the document is dropped and counted, so a slow or absent daemon never blocks a
/// request or grows memory. A background thread named `xray-emitter` resolves the daemon's
/// address and sends. While documents keep coming it takes them in batches every 10 ms
/// (sooner when half the queue is full) and sends up to 64 datagrams per system call (with
/// UDP segmentation offload where Linux offers it: see
/// [`UdpEmitterBuilder::segmentation_offload`]); once idle it sleeps until the next one.
///
/// Where the daemon's host name resolves to several addresses (`localhost` to `::1` and
/// `127.0.0.1`, say), the first that takes a socket is used, and when datagrams sent to it are
/// refused (nothing listens there) the thread moves on to the next, round the list. What
/// happened to each document is counted in [`EmitterStats`] ([`stats`](Emitter::stats)).
#[derive(Debug, Clone)]
pub struct UdpEmitter {
    shared: Arc<Shared>,
}

/// Stops the thread when the last emitter handle goes away.
#[derive(Debug)]
struct Shared {
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    address: HostPort,
    budget: usize,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Release);
        self.queue.wake();
    }
}

/// Looks the daemon's address up.
type Lookup = fn(&HostPort) -> std::io::Result<Vec<SocketAddr>>;

/// Configures a [`UdpEmitter`].
#[derive(Debug, Clone)]
#[must_use]
pub struct UdpEmitterBuilder {
    address: HostPort,
    queue_capacity: usize,
    queue_bytes: usize,
    datagram_budget: usize,
    offload: bool,
    lookup: Lookup,
}

impl UdpEmitterBuilder {
    /// The daemon's UDP address (default `127.0.0.1:2000`).
    pub fn address(mut self, address: &DaemonAddress) -> Self {
        self.address = address.udp.clone();
        self
    }

    /// How many documents may wait to be sent ([`DEFAULT_QUEUE_CAPACITY`], 2048, by default).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// How many bytes of datagrams may wait to be sent ([`DEFAULT_QUEUE_BYTES`], 4 MiB, by
    /// default; at least 64 KiB). A document that would take the queue past it is dropped and
    /// counted; one larger than the whole bound is taken only when nothing else waits.
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes.max(64 << 10);
        self
    }

    /// Largest datagram in bytes, header line included (default and maximum 64 000).
    pub fn datagram_budget(mut self, bytes: usize) -> Self {
        self.datagram_budget = bytes.clamp(1024, MAX_DATAGRAM_BYTES);
        self
    }

    /// Whether runs of datagrams go to the kernel as one buffer with UDP segmentation offload
    /// (Linux 4.18 and later; default on). On loopback it measured about 1 µs of CPU per
    /// datagram against 3–4 µs with one datagram per buffer. Datagrams sent together must be
    /// of one length, so a shorter one is padded with spaces after its document (at most an
    /// eighth of its length, never over 1 KiB), which JSON ignores. Turn it off if something
    /// between this process and the X-Ray API compares document bytes. Where the kernel or
    /// the network device cannot segment, the first send finds out and the emitter goes back
    /// to one datagram per buffer.
    pub fn segmentation_offload(mut self, on: bool) -> Self {
        self.offload = on;
        self
    }

    /// Looks the daemon's address up with `lookup` instead of the system resolver.
    #[cfg(test)]
    fn lookup(mut self, lookup: Lookup) -> Self {
        self.lookup = lookup;
        self
    }

    /// Starts the background thread.
    pub fn build(self) -> UdpEmitter {
        let queue = Arc::new(Queue {
            waiting: Mutex::new(Waiting::default()),
            capacity: self.queue_capacity,
            max_bytes: self.queue_bytes,
            spare: Mutex::new(Vec::new()),
            idle: AtomicBool::new(false),
            done: Mutex::new(0),
            done_cond: Condvar::new(),
            queued: AtomicU64::new(0),
            thread: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            address: self.address.clone(),
            lookup: self.lookup,
            counters: counters.clone(),
            targets: Vec::new(),
            current: 0,
            socket: None,
            offload: self.offload,
            last_resolve: None,
            stale: false,
            failed_datagrams: 0,
            refused_warned: None,
            refused_unwarned: 0,
        };
        let q = queue.clone();
        match std::thread::Builder::new()
            .name("xray-emitter".into())
            .spawn(move || worker.run(&q))
        {
            Ok(handle) => {
                *queue.thread.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(handle.thread().clone());
            }
            Err(e) => {
                // Nobody takes documents off the queue: emit counts them as dropped.
                queue.closed.store(true, Ordering::Release);
                tracing::error!(error = %e, "could not start the X-Ray emitter thread; segments will be dropped");
            }
        }
        UdpEmitter {
            shared: Arc::new(Shared {
                queue,
                counters,
                address: self.address,
                budget: self.datagram_budget,
            }),
        }
    }
}

impl UdpEmitter {
    /// An emitter sending to `address` with default settings.
    pub fn new(address: &DaemonAddress) -> Self {
        Self::builder().address(address).build()
    }

    /// Configures an emitter.
    pub fn builder() -> UdpEmitterBuilder {
        UdpEmitterBuilder {
            address: DaemonAddress::default().udp,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            datagram_budget: MAX_DATAGRAM_BYTES,
            offload: true,
            lookup: lookup_host,
        }
    }

    /// Where datagrams go.
    pub fn address(&self) -> &HostPort {
        &self.shared.address
    }
}

impl UdpEmitter {
    /// Serializes with `encode` (given the datagram budget and a buffer) and queues the result.
    fn enqueue(&self, encode: impl FnOnce(usize, Vec<u8>) -> Datagrams) {
        let q = &self.shared.queue;
        let counters = &self.shared.counters;
        Counters::add(&counters.accepted, 1);
        // Serialized here, on the thread that ended the segment, so that the document's dozen
        // allocations are freed by the thread that made them; the emitter thread only sends
        // bytes. When the emitter thread freed whole documents, the request thread lost its
        // allocator's fast path: under the default rule (axum, one core) requests cost 13.4 µs
        // of CPU instead of 11.6 µs with the SDK disabled, for 0.2 µs of extra instructions.
        // Serializing here brought that to 11.5 µs against 10.5 µs.
        let mut half_full = false;
        let accepted = !q.closed.load(Ordering::Acquire) && q.has_room() && {
            let encoded = encode(self.shared.budget, q.spare_buffer());
            let size = encoded.bytes();
            let mut w = q.lock();
            // Checked again, with the size: other threads may have filled the queue meanwhile.
            if w.docs.len() < q.capacity && (w.bytes + size <= q.max_bytes || w.docs.is_empty()) {
                let half = q.max_bytes / 2;
                half_full = w.docs.len() + 1 == q.capacity.div_ceil(2)
                    || (w.bytes < half && w.bytes + size >= half);
                w.bytes += size;
                w.docs.push_back(encoded);
                true
            } else {
                drop(w);
                if let Datagrams::One(buf) = encoded {
                    q.give_back(&mut vec![buf]);
                }
                false
            }
        };
        if !accepted {
            let n = counters.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                super::defer(super::Deferred::QueueFull { dropped: n + 1 });
            }
            return;
        }
        q.queued.fetch_add(1, Ordering::Release);
        // Wake the thread only when it sleeps, or early when a burst has filled half the
        // queue; otherwise a busy thread finds the document on its next round by itself.
        if q.idle.swap(false, Ordering::AcqRel) || half_full {
            q.wake();
        }
    }
}

impl Emitter for UdpEmitter {
    fn emit(&self, document: Document) {
        self.enqueue(|budget, buf| encode_one(document, budget, buf));
    }

    fn emit_borrowed(&self, document: &Document) -> bool {
        self.enqueue(|budget, buf| encode_one_cloning(document, budget, buf));
        true
    }

    fn flush(&self, timeout: Duration) -> bool {
        let q = &self.shared.queue;
        let target = q.queued.load(Ordering::Acquire);
        let deadline = Instant::now() + timeout;
        q.idle.store(false, Ordering::Release);
        q.wake();
        let mut done = q.done.lock().unwrap_or_else(|p| p.into_inner());
        while *done < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || q.closed.load(Ordering::Acquire)
                    && q.thread.lock().unwrap_or_else(|p| p.into_inner()).is_none()
            {
                return false;
            }
            done = q
                .done_cond
                .wait_timeout(done, left.min(BATCH_INTERVAL))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            q.wake();
        }
        true
    }

    fn stats(&self) -> EmitterStats {
        self.shared.counters.snapshot()
    }
}

/// The system resolver, every address in its order, without repeats.
fn lookup_host(address: &HostPort) -> std::io::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in (address.host.as_str(), address.port).to_socket_addrs()? {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    Ok(addrs)
}

struct Worker {
    address: HostPort,
    lookup: Lookup,
    counters: Arc<Counters>,
    /// The daemon's addresses as last looked up, and the one in use.
    targets: Vec<SocketAddr>,
    current: usize,
    socket: Option<(UdpSocket, sendmany::Sender)>,
    /// Use UDP segmentation offload where the kernel offers it.
    offload: bool,
    last_resolve: Option<Instant>,
    /// A send failed in a way that suggests the address changed: look it up again.
    stale: bool,
    /// Datagrams that could not be sent, for warning ever more rarely.
    failed_datagrams: u64,
    /// When refusals were last warned about, and how many came since.
    refused_warned: Option<Instant>,
    refused_unwarned: u64,
}

impl Worker {
    fn run(mut self, q: &Queue) {
        let mut batch = VecDeque::new();
        let mut pending = Vec::new();
        // Where each document's datagrams end in `pending`, and whether encoding kept all of
        // the document.
        let mut ends = Vec::new();
        loop {
            q.take_all(&mut batch);
            if batch.is_empty() {
                if q.closed.load(Ordering::Acquire) {
                    return;
                }
                // Announce the sleep, then look once more so a document that arrived in
                // between is not left waiting.
                q.idle.store(true, Ordering::Release);
                if q.lock().docs.is_empty() && !q.closed.load(Ordering::Acquire) {
                    std::thread::park();
                }
                q.idle.store(false, Ordering::Release);
                continue;
            }
            let n = batch.len() as u64;
            while !batch.is_empty() {
                // Hand a run of documents' datagrams to the kernel together: one system call
                // per run instead of one per datagram.
                let take = batch.len().min(sendmany::PER_CALL);
                for doc in batch.drain(..take) {
                    let whole = self.take_datagrams(doc, &mut pending);
                    ends.push((pending.len(), whole));
                }
                let failed_at = self.send_pending(&pending);
                self.count_documents(&ends, &failed_at);
                ends.clear();
                q.give_back(&mut pending);
            }
            *q.done.lock().unwrap_or_else(|p| p.into_inner()) += n;
            q.done_cond.notify_all();
            // More than one system call's worth gathered: look again sooner, so that each
            // round stays short and requests sharing the core never wait long behind it.
            let interval = if n as usize > sendmany::PER_CALL {
                BUSY_INTERVAL
            } else {
                BATCH_INTERVAL
            };
            std::thread::park_timeout(interval);
        }
    }

    /// Counts what encoding did to a document and adds its datagrams to `pending`; returns
    /// whether every part of the document is among them.
    fn take_datagrams(&mut self, datagrams: Datagrams, pending: &mut Vec<Vec<u8>>) -> bool {
        let enc = match datagrams {
            Datagrams::One(d) => {
                pending.push(d);
                return true;
            }
            Datagrams::Many(enc) => enc,
        };
        if enc.split {
            Counters::add(&self.counters.split, 1);
        }
        Counters::add(&self.counters.trimmed, enc.trimmed);
        pending.extend(enc.datagrams);
        enc.failed == 0
    }

    /// Counts each document of a run once: sent when encoding kept all of it and the kernel
    /// took each of its datagrams, an error otherwise. `ends` as in [`run`](Self::run);
    /// `failed_at` the positions of the datagrams not sent, ascending.
    fn count_documents(&self, ends: &[(usize, bool)], failed_at: &[usize]) {
        let (mut sent, mut errors) = (0, 0);
        let mut failed = failed_at.iter().peekable();
        for &(end, whole) in ends {
            let mut lost = !whole;
            while failed.next_if(|&&i| i < end).is_some() {
                lost = true;
            }
            if lost {
                errors += 1;
            } else {
                sent += 1;
            }
        }
        Counters::add(&self.counters.sent, sent);
        Counters::add(&self.counters.errors, errors);
    }

    /// Sends `pending`; returns the positions of the datagrams not sent, ascending.
    fn send_pending(&mut self, pending: &[Vec<u8>]) -> Vec<usize> {
        if pending.is_empty() {
            return Vec::new();
        }
        // Refusals that came back since the last round (from a daemon farther away than
        // loopback): a refusing address is left before more is sent to it.
        let early = match &mut self.socket {
            Some((socket, sender)) => sender.take_refused(socket),
            None => 0,
        };
        if early > 0 {
            self.refused(early);
        }
        let outcome = match self.socket() {
            Ok((socket, sender)) => sender.send_all(socket, pending),
            Err(e) => sendmany::Outcome {
                failed: pending.len() as u64,
                failed_at: (0..pending.len()).collect(),
                other_errors: pending.len() as u64,
                last_error: Some(e),
                ..Default::default()
            },
        };
        Counters::add(&self.counters.datagrams, outcome.sent);
        if outcome.failed > 0 {
            let before = self.failed_datagrams;
            let after = before + outcome.failed;
            self.failed_datagrams = after;
            // Warn on the first failure and then ever more rarely (at powers of two).
            if before == 0 || (before + 1).next_power_of_two() <= after {
                if let Some(e) = &outcome.last_error {
                    tracing::warn!(error = %e, failed = after, daemon = %self.address, "could not send segments to the X-Ray daemon");
                }
            }
            // Any failure other than a refusal may mean the daemon moved (a DNS name): look
            // the address up again.
            if outcome.other_errors > 0 {
                self.stale = true;
            }
        }
        if outcome.refused > 0 {
            self.refused(outcome.refused);
        }
        outcome.failed_at
    }

    /// The address in use refused `n` datagrams: count and warn (the first time, then at most
    /// once a minute), and move on to the daemon's next address, if it has several.
    fn refused(&mut self, n: u64) {
        let total = self.counters.refused.fetch_add(n, Ordering::Relaxed) + n;
        self.refused_unwarned += n;
        let at = self
            .targets
            .get(self.current)
            .map(ToString::to_string)
            .unwrap_or_default();
        if self
            .refused_warned
            .is_none_or(|t| t.elapsed() >= REFUSED_WARNING_INTERVAL)
        {
            tracing::warn!(
                refused = self.refused_unwarned,
                total,
                daemon = %self.address,
                address = %at,
                "the X-Ray daemon's address refused datagrams: nothing listens there, and the \
                 segments they carried are lost (warned at most once a minute)"
            );
            self.refused_warned = Some(Instant::now());
            self.refused_unwarned = 0;
        }
        if self.targets.len() > 1 {
            self.current = (self.current + 1) % self.targets.len();
            self.socket = None;
            tracing::debug!(
                refused = %at,
                next = %self.targets[self.current],
                "trying the X-Ray daemon's next address"
            );
        }
    }

    /// Looks the daemon's address up when it never was, or when a send suggested it changed
    /// (at most once a second).
    fn resolve(&mut self) -> std::io::Result<()> {
        // Do not hammer a resolver: at most one lookup per second.
        let due = self
            .last_resolve
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if !due || (!self.stale && !self.targets.is_empty()) {
            return if self.targets.is_empty() {
                Err(std::io::Error::other("daemon address not resolved yet"))
            } else {
                Ok(())
            };
        }
        self.last_resolve = Some(Instant::now());
        let looked_up = (self.lookup)(&self.address).and_then(|addrs| {
            if addrs.is_empty() {
                Err(std::io::Error::other("daemon host resolved to no address"))
            } else {
                Ok(addrs)
            }
        });
        match looked_up {
            Ok(addrs) => {
                // Stay with the address in use if it is still among them.
                let in_use = self.targets.get(self.current).copied();
                self.current = in_use
                    .and_then(|a| addrs.iter().position(|b| *b == a))
                    .unwrap_or(0);
                if in_use != Some(addrs[self.current]) {
                    self.socket = None;
                }
                self.targets = addrs;
                self.stale = false;
                Ok(())
            }
            // Keep sending to the addresses we had until a lookup succeeds.
            Err(_) if !self.targets.is_empty() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The socket, bound and connected to the daemon's address in use, and its sender. When
    /// no socket can be opened to that address (IPv6 turned off, say), the next ones are
    /// tried in turn.
    fn socket(&mut self) -> std::io::Result<(&UdpSocket, &mut sendmany::Sender)> {
        self.resolve()?;
        if self.socket.is_none() {
            let mut last_error = None;
            for k in 0..self.targets.len() {
                let i = (self.current + k) % self.targets.len();
                match open_socket(self.targets[i]) {
                    Ok(socket) => {
                        self.current = i;
                        let sender = sendmany::Sender::new(&socket, self.offload);
                        self.socket = Some((socket, sender));
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, address = %self.targets[i], "cannot open a socket to the X-Ray daemon's address");
                        last_error = Some(e);
                    }
                }
            }
            if let Some(e) = last_error.filter(|_| self.socket.is_none()) {
                return Err(e);
            }
        }
        match &mut self.socket {
            Some((socket, sender)) => Ok((socket, sender)),
            None => Err(std::io::Error::other("no socket")),
        }
    }
}

/// A UDP socket connected to `target`: the kernel looks the route up once instead of on
/// every datagram, and reports the ICMP errors answering its datagrams.
fn open_socket(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(target)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::DaemonAddress;
    use crate::emitter::DATAGRAM_HEADER;

    #[test]
    fn sent_buffers_come_back_for_the_next_documents_and_every_datagram_arrives() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let addr = DaemonAddress::parse(&rx.local_addr().unwrap().to_string()).unwrap();
        let emitter = UdpEmitter::new(&addr);
        let doc = |i: usize| Document::new(format!("segment-{i}"));
        for i in 0..10 {
            emitter.emit(doc(i));
        }
        assert!(emitter.flush(Duration::from_secs(5)));
        let q = &emitter.shared.queue;
        // Ten buffers if the worker slept through the ten emits; fewer if it woke in between
        // and handed some back before the later emits took them again.
        let kept = q.spare.lock().unwrap().len();
        assert!((1..=10).contains(&kept), "{kept} buffers kept");
        // As many next documents are serialized into those buffers: none is allocated, and
        // all come back.
        for i in 10..10 + kept {
            emitter.emit(doc(i));
        }
        assert!(emitter.flush(Duration::from_secs(5)));
        assert_eq!(q.spare.lock().unwrap().len(), kept);
        let total = 10 + kept;
        let mut names = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..total {
            let n = rx.recv(&mut buf).unwrap();
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            let body = text.strip_prefix(DATAGRAM_HEADER).unwrap();
            let d: Document = serde_json::from_str(body).unwrap();
            names.push(d.name);
        }
        names.sort_by_key(|n| n[8..].parse::<usize>().unwrap());
        let want: Vec<String> = (0..total).map(|i| format!("segment-{i}")).collect();
        assert_eq!(names, want);
        assert_eq!(emitter.stats().sent, total as u64);
    }

    /// The addresses [`two_addresses`] gives: one nobody listens at, then the receiver's.
    static TWO: Mutex<Vec<SocketAddr>> = Mutex::new(Vec::new());

    fn two_addresses(_: &HostPort) -> std::io::Result<Vec<SocketAddr>> {
        Ok(TWO.lock().unwrap().clone())
    }

    fn names(rx: &UdpSocket, n: usize) -> Vec<String> {
        let mut buf = [0u8; 2048];
        (0..n)
            .map_while(|_| {
                let len = rx.recv(&mut buf).ok()?;
                let body = &buf[DATAGRAM_HEADER.len()..len];
                Some(
                    serde_json::from_slice::<Document>(body)
                        .unwrap()
                        .name
                        .to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn an_address_that_refuses_is_left_for_the_next_one_the_name_resolves_to() {
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dead = closed.local_addr().unwrap();
        drop(closed);
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        *TWO.lock().unwrap() = vec![dead, rx.local_addr().unwrap()];
        let emitter = UdpEmitter::builder().lookup(two_addresses).build();
        // The first document goes to the first address, which answers "port unreachable".
        emitter.emit(Document::new("lost"));
        assert!(emitter.flush(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(20));
        for i in 0..9 {
            emitter.emit(Document::new(format!("doc-{i}")));
        }
        assert!(emitter.flush(Duration::from_secs(5)));
        let want: Vec<String> = (0..9).map(|i| format!("doc-{i}")).collect();
        assert_eq!(
            names(&rx, 9),
            want,
            "every later document at the second address"
        );
        let s = emitter.stats();
        assert_eq!((s.accepted, s.sent, s.datagrams), (10, 10, 10), "{s:?}");
        assert_eq!(s.refused, 1, "{s:?}");
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_as_well_as_in_documents() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = DaemonAddress::parse(&rx.local_addr().unwrap().to_string()).unwrap();
        let emitter = UdpEmitter::builder()
            .address(&addr)
            .queue_capacity(1000)
            .queue_bytes(100 << 10)
            .build();
        let mut big = Document::new("big");
        big.annotations
            .insert("pad".into(), "p".repeat(40_000).into());
        let q = &emitter.shared.queue;
        // The emitter thread takes the first document, then waits for this lock to count it
        // done: the queue fills behind it.
        let held = q.done.lock().unwrap();
        emitter.emit(big.clone());
        while !q.lock().docs.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        // 40 KB each: two fit in 100 KiB, a third would pass it; a small one still fits.
        for _ in 0..4 {
            emitter.emit(big.clone());
        }
        emitter.emit(Document::new("small"));
        assert_eq!(q.lock().docs.len(), 3);
        let s = emitter.stats();
        assert_eq!((s.accepted, s.dropped), (6, 2), "{s:?}");
        drop(held);
        assert!(emitter.flush(Duration::from_secs(10)));
        let s = emitter.stats();
        assert_eq!((s.sent, s.errors, s.datagrams), (4, 0, 4), "{s:?}");
        // A document larger than the whole bound is taken when nothing else waits.
        big.annotations
            .insert("pad".into(), "p".repeat(60_000).into());
        let mut split = Document::new("split");
        split.trace_id = Some(crate::TraceId::new());
        split.subsegments = vec![big.clone(), big.clone()];
        emitter.emit(split);
        assert!(emitter.flush(Duration::from_secs(10)));
        let s = emitter.stats();
        assert_eq!(
            (s.accepted, s.sent, s.dropped, s.split),
            (7, 5, 2, 1),
            "{s:?}"
        );
    }
}
