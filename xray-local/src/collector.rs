//! The UDP collector: receives daemon datagrams, keeps them, validates them and assembles
//! them into traces.
//!
//! A trace is reported complete when nothing in it is in progress, every independent
//! subsegment found its parent, and no new document arrived for the quiet period (150 ms by
//! default). Complete traces are handed to [`Collector::on_trace_complete`] callbacks and
//! [`Collector::subscribe`] channels, and are what [`Collector::wait_for_trace`] looks at.
//!
//! Everything the collector keeps is bounded (see [`limits`](crate::limits)): the datagrams
//! waiting for the worker, the datagrams kept, the traces, the documents of one trace and the
//! violations, by count and by bytes. What a limit drops or forgets is counted in
//! [`Collector::stats`].
//!
//! ```
//! use std::time::Duration;
//! use xray_local::Collector;
//!
//! let collector = Collector::start().unwrap();
//! let recorder = collector.recorder("checkout");
//! let segment = recorder.begin_segment("checkout", None);
//! segment.begin_subsegment("price").end();
//! segment.end();
//!
//! let trace = collector
//!     .wait_for_trace(|t| t.find("checkout").is_some(), Duration::from_secs(5))
//!     .expect("the trace arrives");
//! assert_eq!(trace.outline(), "checkout\n  price\n");
//! assert!(collector.violations().is_empty());
//! ```

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;
use xray_core::sampling::{AlwaysSample, LocalRules};
use xray_core::{Document, Recorder, TraceId};

use crate::escape::escape_control;
use crate::forward::Forwarder;
use crate::limits::{
    document_size, DEFAULT_MAX_BYTES_PER_TRACE, DEFAULT_MAX_DATAGRAMS, DEFAULT_MAX_DATAGRAM_BYTES,
    DEFAULT_MAX_DOCUMENTS_PER_TRACE, DEFAULT_MAX_TRACES, DEFAULT_MAX_TRACE_BYTES, MAX_VIOLATIONS,
    MAX_VIOLATIONS_PER_TRACE, QUEUE_BYTES, QUEUE_DATAGRAMS, SUBSCRIBER_BACKLOG,
};
use crate::sampling_api::SamplingApi;
use crate::trace::Trace;
use crate::validate::{check_datagram, header_ok, Violation};

/// One datagram as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The raw bytes.
    pub bytes: Vec<u8>,
    /// The parsed document, when the datagram was well formed.
    pub document: Option<Document>,
    /// When it arrived.
    pub at: Instant,
}

/// The default quiet period of a library collector.
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::from_millis(150);

/// What the collector received, and what its limits made it drop or forget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CollectorStats {
    /// Datagrams taken off the socket.
    pub received: u64,
    /// Datagrams dropped before they were looked at, because the queue to the worker was full
    /// ([`QUEUE_DATAGRAMS`],
    /// [`QUEUE_BYTES`]).
    pub dropped: u64,
    /// Datagrams that were not well-formed daemon datagrams.
    pub garbage: u64,
    /// Datagrams forwarded to the `forward` address.
    pub forwarded: u64,
    /// Datagrams forgotten from [`Collector::received`] to stay within
    /// [`CollectorBuilder::max_datagrams`] and [`CollectorBuilder::max_datagram_bytes`].
    pub datagrams_forgotten: u64,
    /// Traces forgotten to stay within [`CollectorBuilder::max_traces`] and
    /// [`CollectorBuilder::max_trace_bytes`].
    pub traces_forgotten: u64,
    /// Documents not assembled into their trace because the trace reached
    /// [`CollectorBuilder::max_documents_per_trace`] or
    /// [`CollectorBuilder::max_bytes_per_trace`] (they are still in [`Collector::received`]).
    pub documents_refused: u64,
    /// Violations not kept in [`Collector::violations`] (callbacks saw them all).
    pub violations_forgotten: u64,
    /// Complete traces a [`Collector::subscribe`] channel missed because
    /// [`SUBSCRIBER_BACKLOG`] of them were waiting unread.
    pub subscriber_misses: u64,
}

type TraceCallback = Arc<dyn Fn(&Trace) + Send + Sync>;
type ViolationCallback = Arc<dyn Fn(&Violation) + Send + Sync>;

/// The documents of one trace, as they arrive.
struct Pending {
    /// The documents in arrival order, unless they were moved into `completed`.
    docs: Vec<Document>,
    /// The documents live in `completed` (moved there, not copied, when it completed).
    docs_in_completed: bool,
    /// Documents assembled, and their size ([`document_size`]).
    count: usize,
    bytes: usize,
    /// `bytes` when `completed` was assembled.
    completed_bytes: usize,
    /// When the worker last stored a document of this trace.
    last: Instant,
    /// `count` when last assembled by the quiet-period check.
    checked: usize,
    /// The last assembly reported complete.
    completed: Option<Arc<Trace>>,
    /// Violations kept for this trace.
    violations: usize,
    /// A document was refused for the per-trace limits (reported once).
    refused: bool,
}

impl Pending {
    fn new(now: Instant) -> Self {
        Self {
            docs: Vec::new(),
            docs_in_completed: false,
            count: 0,
            bytes: 0,
            completed_bytes: 0,
            last: now,
            checked: 0,
            completed: None,
            violations: 0,
            refused: false,
        }
    }

    fn documents(&self) -> &[Document] {
        match (&self.completed, self.docs_in_completed) {
            (Some(t), true) => t.documents(),
            _ => &self.docs,
        }
    }

    /// The documents, to add to: copied back out of `completed` if they were moved there.
    fn documents_mut(&mut self) -> &mut Vec<Document> {
        if self.docs_in_completed {
            self.docs = self
                .completed
                .as_ref()
                .map(|t| t.documents().to_vec())
                .unwrap_or_default();
            self.docs_in_completed = false;
        }
        &mut self.docs
    }

    /// What the trace counts against the trace store: its documents once, plus the
    /// assembled complete trace (its documents and its entities) unless the documents were
    /// moved into it.
    fn cost(&self) -> usize {
        let docs = if self.docs_in_completed {
            0
        } else {
            self.bytes
        };
        let completed = if self.completed.is_some() {
            2 * self.completed_bytes
        } else {
            0
        };
        docs + completed
    }
}

/// A datagram kept for [`Collector::received`]; its document, if any, is in
/// `State::documents`.
struct Stored {
    bytes: Vec<u8>,
    at: Instant,
    has_document: bool,
    /// Wire size plus document size.
    cost: usize,
}

#[derive(Default)]
struct State {
    received: Vec<Stored>,
    /// The documents of `received`, in order; also what waiting looks at.
    documents: Vec<Document>,
    /// Sum of `received[..].cost`.
    received_bytes: usize,
    traces: HashMap<TraceId, Pending>,
    order: VecDeque<TraceId>,
    /// Sum of the traces' `cost()`.
    trace_bytes: usize,
    violations: VecDeque<Violation>,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    dropped: AtomicU64,
    garbage: AtomicU64,
    datagrams_forgotten: AtomicU64,
    traces_forgotten: AtomicU64,
    documents_refused: AtomicU64,
    violations_forgotten: AtomicU64,
    subscriber_misses: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) -> u64 {
        counter.fetch_add(n, Ordering::Relaxed) + n
    }
}

/// The limits a collector holds to.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_datagrams: usize,
    max_datagram_bytes: usize,
    max_traces: usize,
    max_trace_bytes: usize,
    max_documents_per_trace: usize,
    max_bytes_per_trace: usize,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    counters: Counters,
    /// Bytes of datagrams waiting for the worker.
    queued_bytes: AtomicUsize,
    stop: AtomicBool,
    quiet: Duration,
    limits: Limits,
    forwarder: Option<Forwarder>,
    on_trace: Mutex<Vec<TraceCallback>>,
    subscribers: Mutex<Vec<mpsc::SyncSender<Trace>>>,
    on_violation: Mutex<Vec<ViolationCallback>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Listens for daemon datagrams on a UDP socket and keeps what arrives.
pub struct Collector {
    addr: SocketAddr,
    shared: Arc<Shared>,
    sampling: Option<SamplingApi>,
    #[cfg(feature = "otlp")]
    otlp: Option<crate::otlp::OtlpReceiver>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("addr", &self.addr)
            .field("sampling", &self.sampling.as_ref().map(|s| s.addr()))
            .finish()
    }
}

/// Splits a datagram into its header line and document. `None` when it is not a daemon
/// datagram (missing or wrong header line, or a body that is not a document).
///
/// Read as the collector (and the validator) read it: the header line as JSON, as the X-Ray
/// daemon does (`{"format":"json","version":1}`, white space allowed), and the body as JSON
/// first, so that a key given twice counts once, with its last value.
pub fn parse_datagram(bytes: &[u8]) -> Option<Document> {
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    if !header_ok(&bytes[..newline]) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes[newline + 1..]).ok()?;
    Document::deserialize(&value).ok()
}

/// Configures a [`Collector`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct CollectorBuilder {
    listen: SocketAddr,
    quiet_period: Duration,
    forward: Option<SocketAddr>,
    sampling_rules: Option<LocalRules>,
    #[cfg(feature = "otlp")]
    otlp_listen: Option<SocketAddr>,
    limits: Limits,
}

impl Default for CollectorBuilder {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            quiet_period: DEFAULT_QUIET_PERIOD,
            forward: None,
            sampling_rules: None,
            #[cfg(feature = "otlp")]
            otlp_listen: None,
            limits: Limits {
                max_datagrams: DEFAULT_MAX_DATAGRAMS,
                max_datagram_bytes: DEFAULT_MAX_DATAGRAM_BYTES,
                max_traces: DEFAULT_MAX_TRACES,
                max_trace_bytes: DEFAULT_MAX_TRACE_BYTES,
                max_documents_per_trace: DEFAULT_MAX_DOCUMENTS_PER_TRACE,
                max_bytes_per_trace: DEFAULT_MAX_BYTES_PER_TRACE,
            },
        }
    }
}

impl CollectorBuilder {
    /// Also receives spans over OTLP/HTTP (`POST /v1/traces`, protobuf) on this TCP address
    /// (port 0 picks one): each span is read back as a document (see
    /// [`xray_core::emitter::otlp`]) and assembled with the datagrams. See
    /// [`otlp`](crate::otlp) for its limits.
    #[cfg(feature = "otlp")]
    pub fn otlp_listen(mut self, addr: SocketAddr) -> Self {
        self.otlp_listen = Some(addr);
        self
    }

    /// The UDP address to listen on; default an ephemeral loopback port.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// How long a trace must stay unchanged, with nothing in progress, to be complete.
    pub fn quiet_period(mut self, quiet: Duration) -> Self {
        self.quiet_period = quiet;
        self
    }

    /// Sends every datagram, unchanged, on to `addr` as well.
    pub fn forward(mut self, addr: SocketAddr) -> Self {
        self.forward = Some(addr);
        self
    }

    /// Serves the daemon's sampling API from these rules on the TCP port of the listening
    /// address.
    pub fn sampling_rules(mut self, rules: LocalRules) -> Self {
        self.sampling_rules = Some(rules);
        self
    }

    /// Keeps at most `n` raw datagrams (the oldest are forgotten first);
    /// [`DEFAULT_MAX_DATAGRAMS`] by default.
    pub fn max_datagrams(mut self, n: usize) -> Self {
        self.limits.max_datagrams = n.max(1);
        self
    }

    /// Keeps at most `bytes` of raw datagrams, counting each datagram's length plus the size
    /// of its parsed document ([`document_size`]);
    /// [`DEFAULT_MAX_DATAGRAM_BYTES`] by default.
    pub fn max_datagram_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_datagram_bytes = bytes;
        self
    }

    /// Keeps at most `n` traces (the oldest are forgotten first);
    /// [`DEFAULT_MAX_TRACES`] by default.
    pub fn max_traces(mut self, n: usize) -> Self {
        self.limits.max_traces = n.max(1);
        self
    }

    /// Keeps at most `bytes` of traces (the oldest are forgotten first): each document
    /// counted once while its trace is open, twice once the trace is complete (the assembled
    /// trace holds the documents and their entities);
    /// [`DEFAULT_MAX_TRACE_BYTES`] by default.
    pub fn max_trace_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_trace_bytes = bytes;
        self
    }

    /// Assembles at most `n` documents into one trace; later ones are only kept as datagrams,
    /// counted ([`CollectorStats::documents_refused`]) and reported once as a violation;
    /// [`DEFAULT_MAX_DOCUMENTS_PER_TRACE`] by
    /// default.
    pub fn max_documents_per_trace(mut self, n: usize) -> Self {
        self.limits.max_documents_per_trace = n.max(1);
        self
    }

    /// Assembles at most `bytes` of documents into one trace;
    /// [`DEFAULT_MAX_BYTES_PER_TRACE`] by default.
    pub fn max_bytes_per_trace(mut self, bytes: usize) -> Self {
        self.limits.max_bytes_per_trace = bytes;
        self
    }

    /// Binds the socket(s) and starts receiving.
    pub fn start(self) -> io::Result<Collector> {
        let (socket, sampling) = bind_daemon_ports(self.listen, self.sampling_rules)?;
        let tick =
            (self.quiet_period / 2).clamp(Duration::from_millis(5), Duration::from_millis(50));
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let forwarder = match self.forward {
            Some(target) => Some(Forwarder::new(target)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
            counters: Counters::default(),
            queued_bytes: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            quiet: self.quiet_period,
            limits: self.limits,
            forwarder,
            on_trace: Mutex::new(Vec::new()),
            subscribers: Mutex::new(Vec::new()),
            on_violation: Mutex::new(Vec::new()),
        });
        let (tx, rx) = mpsc::sync_channel(QUEUE_DATAGRAMS);
        #[cfg(feature = "otlp")]
        let otlp = match self.otlp_listen {
            Some(at) => Some(crate::otlp::OtlpReceiver::serve(
                at,
                Ingest {
                    shared: shared.clone(),
                    to_worker: tx.clone(),
                },
            )?),
            None => None,
        };
        let s = shared.clone();
        std::thread::Builder::new()
            .name("xray-local-worker".into())
            .spawn(move || work_loop(s, rx, tick))?;
        let s = shared.clone();
        std::thread::Builder::new()
            .name("xray-local-udp".into())
            .spawn(move || receive_loop(socket, s, tx))?;
        Ok(Collector {
            addr,
            shared,
            sampling,
            #[cfg(feature = "otlp")]
            otlp,
        })
    }
}

impl Collector {
    /// Listens on an ephemeral loopback port.
    pub fn start() -> io::Result<Self> {
        Self::builder().start()
    }

    /// Listens on `addr`.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::builder().listen(addr).start()
    }

    /// A builder for the other options.
    pub fn builder() -> CollectorBuilder {
        CollectorBuilder::default()
    }

    /// The address datagrams should be sent to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as an `AWS_XRAY_DAEMON_ADDRESS` value (UDP, and TCP when the sampling
    /// API is served).
    pub fn daemon_address(&self) -> String {
        self.addr.to_string()
    }

    /// The OTLP/HTTP receiver, when started with
    /// [`otlp_listen`](CollectorBuilder::otlp_listen).
    #[cfg(feature = "otlp")]
    pub fn otlp(&self) -> Option<&crate::otlp::OtlpReceiver> {
        self.otlp.as_ref()
    }

    /// The sampling API server, when started with sampling rules.
    pub fn sampling_api(&self) -> Option<&SamplingApi> {
        self.sampling.as_ref()
    }

    /// A recorder that samples everything and sends here; environment variables ignored.
    pub fn recorder(&self, service_name: &str) -> Recorder {
        Recorder::builder()
            .service_name(service_name)
            .daemon_address(self.daemon_address())
            .sampler(AlwaysSample)
            .ignore_env()
            .build()
            .expect("a collector's own address is valid")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// Every datagram received so far (or the latest ones, see
    /// [`CollectorBuilder::max_datagrams`] and [`CollectorBuilder::max_datagram_bytes`]).
    pub fn received(&self) -> Vec<Received> {
        let s = self.state();
        let mut documents = s.documents.iter();
        s.received
            .iter()
            .map(|r| Received {
                bytes: r.bytes.clone(),
                document: if r.has_document {
                    documents.next().cloned()
                } else {
                    None
                },
                at: r.at,
            })
            .collect()
    }

    /// Every well-formed document received so far, in arrival order (or the latest ones,
    /// like [`Collector::received`]).
    pub fn documents(&self) -> Vec<Document> {
        self.state().documents.clone()
    }

    /// Datagrams that were not well-formed daemon datagrams.
    pub fn garbage_count(&self) -> u64 {
        self.shared.counters.garbage.load(Ordering::Relaxed)
    }

    /// Datagrams forwarded to the `forward` address.
    pub fn forwarded_count(&self) -> u64 {
        self.shared.forwarder.as_ref().map_or(0, Forwarder::sent)
    }

    /// What was received, and what the limits dropped or forgot.
    pub fn stats(&self) -> CollectorStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CollectorStats {
            received: get(&c.received),
            dropped: get(&c.dropped),
            garbage: get(&c.garbage),
            forwarded: self.forwarded_count(),
            datagrams_forgotten: get(&c.datagrams_forgotten),
            traces_forgotten: get(&c.traces_forgotten),
            documents_refused: get(&c.documents_refused),
            violations_forgotten: get(&c.violations_forgotten),
            subscriber_misses: get(&c.subscriber_misses),
        }
    }

    /// Every rule violation found so far, in arrival order; at most
    /// [`MAX_VIOLATIONS`] (the latest) and
    /// [`MAX_VIOLATIONS_PER_TRACE`] per trace.
    pub fn violations(&self) -> Vec<Violation> {
        self.state().violations.iter().cloned().collect()
    }

    /// Forgets everything received: datagrams, traces and violations.
    pub fn clear(&self) {
        let mut s = self.state();
        *s = State::default();
    }

    /// Waits until `pred` holds for the documents received, at most `timeout`; returns the
    /// documents either way.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Document]) -> bool,
    ) -> Vec<Document> {
        let deadline = Instant::now() + timeout;
        let mut g = self.state();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if pred(&g.documents) || left.is_zero() {
                return g.documents.clone();
            }
            g = self.wait(g, left);
        }
    }

    fn wait<'a>(&'a self, g: MutexGuard<'a, State>, left: Duration) -> MutexGuard<'a, State> {
        self.shared
            .cond
            .wait_timeout(g, left.min(Duration::from_millis(50)))
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    /// Waits until at least `n` documents arrived.
    pub fn wait_for_documents(&self, n: usize, timeout: Duration) -> Vec<Document> {
        self.wait_until(timeout, |d| d.len() >= n)
    }

    /// Every trace seen so far, assembled from what has arrived (complete or not), in order
    /// of first arrival.
    pub fn traces(&self) -> Vec<Trace> {
        let s = self.state();
        s.order
            .iter()
            .filter_map(|id| s.traces.get(id))
            .map(|p| Trace::assemble(p.documents()))
            .collect()
    }

    /// The traces reported complete so far, in order of first arrival.
    pub fn completed_traces(&self) -> Vec<Trace> {
        let s = self.state();
        s.order
            .iter()
            .filter_map(|id| s.traces.get(id)?.completed.as_deref().cloned())
            .collect()
    }

    /// The trace with this id as assembled now, complete or not.
    pub fn trace(&self, trace_id: TraceId) -> Option<Trace> {
        self.state()
            .traces
            .get(&trace_id)
            .map(|p| Trace::assemble(p.documents()))
    }

    /// Waits for a complete trace for which `pred` holds, at most `timeout`.
    pub fn wait_for_trace(
        &self,
        mut pred: impl FnMut(&Trace) -> bool,
        timeout: Duration,
    ) -> Option<Trace> {
        let deadline = Instant::now() + timeout;
        let mut g = self.state();
        loop {
            let found = g
                .order
                .iter()
                .filter_map(|id| g.traces.get(id)?.completed.as_deref())
                .find(|t| pred(t))
                .cloned();
            if found.is_some() {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            g = self.wait(g, left);
        }
    }

    /// Waits for the trace with this id to be complete, at most `timeout`.
    pub fn wait_for_trace_id(&self, trace_id: TraceId, timeout: Duration) -> Option<Trace> {
        self.wait_for_trace(|t| t.trace_id() == Some(trace_id), timeout)
    }

    /// Calls `callback` with every trace once it is complete (and again if more documents
    /// complete it later). Runs on the receiving thread: keep it short.
    pub fn on_trace_complete(&self, callback: impl Fn(&Trace) + Send + Sync + 'static) {
        lock(&self.shared.on_trace).push(Arc::new(callback));
    }

    /// A channel that receives every trace once it is complete. At most
    /// [`SUBSCRIBER_BACKLOG`] traces wait in it; while it
    /// is full, traces are not sent to it (counted in [`CollectorStats::subscriber_misses`]).
    pub fn subscribe(&self) -> mpsc::Receiver<Trace> {
        let (tx, rx) = mpsc::sync_channel(SUBSCRIBER_BACKLOG);
        lock(&self.shared.subscribers).push(tx);
        rx
    }

    /// Calls `callback` with every violation found (also those not kept in
    /// [`Collector::violations`]). Runs on the receiving thread.
    pub fn on_violation(&self, callback: impl Fn(&Violation) + Send + Sync + 'static) {
        lock(&self.shared.on_violation).push(Arc::new(callback));
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Receive buffer asked for; the kernel may grant less (Linux caps it at `rmem_max`).
const RECV_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Binds the daemon's UDP socket and, with sampling rules, the sampling API on the same TCP
/// port, as a daemon answers both on one address. When the system picks the port (port 0), the
/// TCP side of the port it picked for UDP may be in use by another socket: another port is
/// tried then, a few times, rather than failing.
fn bind_daemon_ports(
    listen: SocketAddr,
    rules: Option<LocalRules>,
) -> io::Result<(UdpSocket, Option<SamplingApi>)> {
    const ATTEMPTS: usize = 16;
    let Some(rules) = rules else {
        return Ok((bind_udp(listen)?, None));
    };
    let mut attempt = 1;
    loop {
        let socket = bind_udp(listen)?;
        match SamplingApi::serve(socket.local_addr()?, rules.clone()) {
            Ok(api) => return Ok((socket, Some(api))),
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && listen.port() == 0
                    && attempt < ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Binds a UDP socket with a large receive buffer, so that bursts from a busy recorder wait
/// in the kernel instead of being dropped while the receiving thread is not scheduled.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER_BYTES) {
        tracing::debug!(error = %e, "xray-local: cannot enlarge the UDP receive buffer");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A datagram on its way to the worker.
type Queued = (Vec<u8>, Instant);

/// Counts a datagram dropped because the worker's queue is full; logs the first and then
/// every power of two.
fn dropped(shared: &Shared) {
    let n = Counters::add(&shared.counters.dropped, 1);
    if n.is_power_of_two() {
        tracing::warn!(
            dropped = n,
            "xray-local: the worker cannot keep up; datagrams dropped"
        );
    }
}

/// Takes datagrams off the socket as fast as possible; the work happens on the worker
/// thread, so a burst waits in memory rather than overflowing the socket buffer. The queue
/// is bounded ([`QUEUE_DATAGRAMS`], [`QUEUE_BYTES`]): when the worker falls that far behind,
/// datagrams are dropped and counted.
/// Hands datagrams that did not come through the UDP socket (documents received over OTLP)
/// to the worker, with the same accounting and limits as the socket's.
#[cfg(feature = "otlp")]
#[derive(Clone)]
pub(crate) struct Ingest {
    shared: Arc<Shared>,
    to_worker: mpsc::SyncSender<Queued>,
}

#[cfg(feature = "otlp")]
impl Ingest {
    /// Queues one datagram (header line and document); false when it was dropped because
    /// the worker's queue is full, or the collector stopped.
    pub(crate) fn submit(&self, datagram: Vec<u8>) -> bool {
        let shared = &self.shared;
        let n = datagram.len();
        Counters::add(&shared.counters.received, 1);
        if shared.stop.load(Ordering::Relaxed)
            || shared.queued_bytes.load(Ordering::Relaxed) + n > QUEUE_BYTES
        {
            dropped(shared);
            return false;
        }
        shared.queued_bytes.fetch_add(n, Ordering::Relaxed);
        match self.to_worker.try_send((datagram, Instant::now())) {
            Ok(()) => true,
            Err(_) => {
                shared.queued_bytes.fetch_sub(n, Ordering::Relaxed);
                dropped(shared);
                false
            }
        }
    }
}

fn receive_loop(socket: UdpSocket, shared: Arc<Shared>, to_worker: mpsc::SyncSender<Queued>) {
    let mut buf = vec![0u8; 65_536];
    while !shared.stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                Counters::add(&shared.counters.received, 1);
                if let Some(f) = &shared.forwarder {
                    f.forward(&buf[..n]);
                }
                if shared.queued_bytes.load(Ordering::Relaxed) + n > QUEUE_BYTES {
                    dropped(&shared);
                    continue;
                }
                shared.queued_bytes.fetch_add(n, Ordering::Relaxed);
                match to_worker.try_send((buf[..n].to_vec(), Instant::now())) {
                    Ok(()) => {}
                    Err(mpsc::TrySendError::Full(_)) => {
                        shared.queued_bytes.fetch_sub(n, Ordering::Relaxed);
                        dropped(&shared);
                    }
                    Err(mpsc::TrySendError::Disconnected(_)) => return,
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                tracing::warn!(error = %e, "xray-local: receive failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Validates, stores and assembles what the receiving thread took in, and reports traces
/// that went quiet. Ends when the receiving thread does.
fn work_loop(shared: Arc<Shared>, from_socket: mpsc::Receiver<Queued>, tick: Duration) {
    let mut last_check = Instant::now();
    let mut batch = Vec::new();
    loop {
        match from_socket.recv_timeout(tick) {
            Ok(first) => {
                // Take what else is waiting, so a burst costs one lock and one wake-up; but
                // not so much that the parsed batch is large.
                let mut bytes = first.0.len();
                batch.push(first);
                while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                    match from_socket.try_recv() {
                        Ok(next) => {
                            bytes += next.0.len();
                            batch.push(next);
                        }
                        Err(_) => break,
                    }
                }
                shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                handle_datagrams(&shared, &mut batch);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if last_check.elapsed() >= tick {
            last_check = Instant::now();
            report_complete(&shared);
        }
    }
}

/// Most datagrams stored under one lock.
const MAX_BATCH: usize = 256;
/// Most bytes of datagrams parsed for one batch.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// One datagram after checking.
struct Checked {
    bytes: Vec<u8>,
    at: Instant,
    document: Option<Document>,
    /// [`document_size`] of the document.
    size: usize,
    violations: Vec<Violation>,
}

fn check((bytes, at): Queued) -> Checked {
    let checked = check_datagram(&bytes);
    let valid = checked.violations.is_empty();
    for v in &checked.violations {
        let v = v.to_string();
        tracing::warn!(violation = %escape_control(&v), "xray-local: invalid segment document");
    }
    // The same rule as `parse_datagram`, without parsing the JSON a second time.
    let document = checked.document.filter(|_| checked.framed);
    let size = match (&document, &checked.body) {
        (Some(_), Some(v)) => document_size(v),
        _ => 0,
    };
    drop(checked.body);
    if document.is_some() {
        crate::document_log::record(&bytes, valid);
    }
    Checked {
        bytes,
        at,
        document,
        size,
        violations: checked.violations,
    }
}

fn handle_datagrams(shared: &Shared, batch: &mut Vec<Queued>) {
    let checked: Vec<Checked> = batch.drain(..).map(check).collect();
    let garbage = checked.iter().filter(|c| c.document.is_none()).count();
    Counters::add(&shared.counters.garbage, garbage as u64);
    let mut violations = Vec::new();
    {
        let mut s = lock(&shared.state);
        for mut c in checked {
            let found = std::mem::take(&mut c.violations);
            let (trace_id, refusal) = store(shared, &mut s, c);
            let first = violations.len();
            violations.extend(found);
            violations.extend(refusal);
            keep_violations(shared, &mut s, trace_id, &violations[first..]);
        }
    }
    shared.cond.notify_all();
    if !violations.is_empty() {
        let callbacks = lock(&shared.on_violation).clone();
        for v in &violations {
            for cb in &callbacks {
                guarded("on_violation", || cb(v));
            }
        }
    }
}

/// Keeps violations within [`MAX_VIOLATIONS_PER_TRACE`] for their trace and
/// [`MAX_VIOLATIONS`] in all (the oldest are forgotten).
fn keep_violations(
    shared: &Shared,
    s: &mut State,
    trace_id: Option<TraceId>,
    violations: &[Violation],
) {
    let mut forgotten = 0;
    for v in violations {
        if let Some(p) = trace_id.and_then(|t| s.traces.get_mut(&t)) {
            if p.violations >= MAX_VIOLATIONS_PER_TRACE {
                forgotten += 1;
                continue;
            }
            p.violations += 1;
        }
        s.violations.push_back(v.clone());
        if s.violations.len() > MAX_VIOLATIONS {
            s.violations.pop_front();
            forgotten += 1;
        }
    }
    Counters::add(&shared.counters.violations_forgotten, forgotten);
}

/// Stores one datagram: in the raw log, and its document in its trace unless the trace is at
/// its limits. Returns the document's trace and the violation reporting a refusal, if any.
fn store(shared: &Shared, s: &mut State, c: Checked) -> (Option<TraceId>, Option<Violation>) {
    let limits = &shared.limits;
    let mut trace = None;
    let mut refusal = None;
    if let Some(d) = &c.document {
        if let Some(trace_id) = d.trace_id {
            trace = Some(trace_id);
            let now = Instant::now();
            let p = match s.traces.entry(trace_id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    s.order.push_back(trace_id);
                    e.insert(Pending::new(now))
                }
            };
            if p.count >= limits.max_documents_per_trace
                || p.bytes + c.size > limits.max_bytes_per_trace
            {
                Counters::add(&shared.counters.documents_refused, 1);
                if !p.refused {
                    p.refused = true;
                    refusal = Some(Violation {
                        document_id: Some(d.id.to_string()),
                        path: "(trace)".to_string(),
                        message: format!(
                            "trace {trace_id} reached its limit ({} documents, {} MiB): this and \
                             later documents of this trace are not assembled",
                            limits.max_documents_per_trace,
                            limits.max_bytes_per_trace >> 20
                        ),
                    });
                }
            } else {
                let before = p.cost();
                p.documents_mut().push(d.clone());
                p.count += 1;
                p.bytes += c.size;
                // Quiet is measured from when the worker stored the document, not from when
                // it reached the socket: a worker that fell behind must not find a trace
                // quiet while its documents are still queued.
                p.last = now;
                let after = p.cost();
                s.trace_bytes = s.trace_bytes + after - before;
            }
            forget_traces(shared, s);
        }
    }
    let has_document = c.document.is_some();
    let cost = c.bytes.len() + c.size;
    if let Some(d) = c.document {
        s.documents.push(d);
    }
    s.received.push(Stored {
        bytes: c.bytes,
        at: c.at,
        has_document,
        cost,
    });
    s.received_bytes += cost;
    forget_datagrams(shared, s);
    (trace, refusal)
}

/// Forgets the oldest traces while the store is over its limits.
fn forget_traces(shared: &Shared, s: &mut State) {
    let limits = &shared.limits;
    let mut forgotten = 0;
    while s.order.len() > limits.max_traces || s.trace_bytes > limits.max_trace_bytes {
        let Some(old) = s.order.pop_front() else {
            break;
        };
        if let Some(p) = s.traces.remove(&old) {
            s.trace_bytes -= p.cost();
        }
        forgotten += 1;
    }
    Counters::add(&shared.counters.traces_forgotten, forgotten);
}

/// Forgets the oldest datagrams when the log is over its limits: a tenth more than needed at
/// once, rather than shifting the lists on every datagram.
fn forget_datagrams(shared: &Shared, s: &mut State) {
    let limits = &shared.limits;
    if s.received.len() <= limits.max_datagrams && s.received_bytes <= limits.max_datagram_bytes {
        return;
    }
    let keep_n = limits.max_datagrams - limits.max_datagrams / 10;
    let keep_bytes = limits.max_datagram_bytes - limits.max_datagram_bytes / 10;
    let mut excess = s.received.len().saturating_sub(keep_n);
    let mut bytes = s.received_bytes;
    for r in &s.received[..excess] {
        bytes -= r.cost;
    }
    while bytes > keep_bytes && excess < s.received.len() {
        bytes -= s.received[excess].cost;
        excess += 1;
    }
    let dropped_docs = s.received[..excess]
        .iter()
        .filter(|r| r.has_document)
        .count();
    s.received.drain(..excess);
    s.documents.drain(..dropped_docs);
    s.received_bytes = bytes;
    Counters::add(&shared.counters.datagrams_forgotten, excess as u64);
}

/// Runs a user callback; a panic in it is logged instead of stopping the collector.
fn guarded(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::warn!(callback = what, "xray-local: a callback panicked");
    }
}

/// Assembles the traces that went quiet and reports the newly complete ones.
fn report_complete(shared: &Shared) {
    let mut done: Vec<Arc<Trace>> = Vec::new();
    {
        let mut s = lock(&shared.state);
        let now = Instant::now();
        let mut change: isize = 0;
        for p in s.traces.values_mut() {
            if p.count > p.checked && now.duration_since(p.last) >= shared.quiet {
                p.checked = p.count;
                let before = p.cost() as isize;
                let docs = std::mem::take(p.documents_mut());
                let t = Trace::assemble_owned(docs);
                if t.is_complete() {
                    // The complete trace keeps the documents: moved, not copied.
                    let t = Arc::new(t);
                    p.completed = Some(t.clone());
                    p.completed_bytes = p.bytes;
                    p.docs_in_completed = true;
                    done.push(t);
                } else {
                    p.docs = t.into_documents();
                }
                change += p.cost() as isize - before;
            }
        }
        s.trace_bytes = s.trace_bytes.saturating_add_signed(change);
        forget_traces(shared, &mut s);
    }
    if done.is_empty() {
        return;
    }
    shared.cond.notify_all();
    done.sort_by_key(|t| t.start_time());
    let callbacks = lock(&shared.on_trace).clone();
    let mut subscribers = lock(&shared.subscribers);
    for t in &done {
        for cb in &callbacks {
            guarded("on_trace_complete", || cb(t));
        }
        subscribers.retain(|tx| match tx.try_send(Trace::clone(t)) {
            Ok(()) => true,
            Err(mpsc::TrySendError::Full(_)) => {
                Counters::add(&shared.counters.subscriber_misses, 1);
                true
            }
            Err(mpsc::TrySendError::Disconnected(_)) => false,
        });
    }
}
