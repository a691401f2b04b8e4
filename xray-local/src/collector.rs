//! The UDP collector: receives daemon datagrams, keeps them, validates them and assembles
//! them into traces.
//!
//! A trace is reported complete when nothing in it is in progress, every independent
//! subsegment found its parent, and no new document arrived for the quiet period (150 ms by
//! default). Complete traces are handed to [`Collector::on_trace_complete`] callbacks and
//! [`Collector::subscribe`] channels, and are what [`Collector::wait_for_trace`] looks at.
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

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;
use xray_core::emitter::DATAGRAM_HEADER;
use xray_core::sampling::{AlwaysSample, LocalRules};
use xray_core::{Document, Recorder, TraceId};

use crate::forward::Forwarder;
use crate::sampling_api::SamplingApi;
use crate::trace::Trace;
use crate::validate::{check_datagram, Violation};

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

type TraceCallback = Arc<dyn Fn(&Trace) + Send + Sync>;
type ViolationCallback = Arc<dyn Fn(&Violation) + Send + Sync>;

/// The documents of one trace, as they arrive.
struct Pending {
    docs: Vec<Document>,
    last: Instant,
    /// `docs.len()` when last assembled by the quiet-period check.
    checked: usize,
    /// The last assembly reported complete.
    completed: Option<Trace>,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// The documents of `received`, kept apart so waiting does not clone them.
    documents: Vec<Document>,
    traces: HashMap<TraceId, Pending>,
    order: VecDeque<TraceId>,
    violations: Vec<Violation>,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    garbage: AtomicU64,
    stop: AtomicBool,
    quiet: Duration,
    max_datagrams: usize,
    max_traces: usize,
    forwarder: Option<Forwarder>,
    on_trace: Mutex<Vec<TraceCallback>>,
    subscribers: Mutex<Vec<mpsc::Sender<Trace>>>,
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
pub fn parse_datagram(bytes: &[u8]) -> Option<Document> {
    let body = bytes.strip_prefix(DATAGRAM_HEADER.as_bytes())?;
    serde_json::from_slice(body).ok()
}

/// Configures a [`Collector`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct CollectorBuilder {
    listen: SocketAddr,
    quiet_period: Duration,
    forward: Option<SocketAddr>,
    sampling_rules: Option<LocalRules>,
    max_datagrams: usize,
    max_traces: usize,
}

impl Default for CollectorBuilder {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            quiet_period: DEFAULT_QUIET_PERIOD,
            forward: None,
            sampling_rules: None,
            max_datagrams: usize::MAX,
            max_traces: 100_000,
        }
    }
}

impl CollectorBuilder {
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

    /// Keeps at most `n` raw datagrams (the oldest are forgotten first); unlimited by
    /// default. Long-running collectors should set it.
    pub fn max_datagrams(mut self, n: usize) -> Self {
        self.max_datagrams = n.max(1);
        self
    }

    /// Keeps at most `n` traces (the oldest are forgotten first); 100 000 by default.
    pub fn max_traces(mut self, n: usize) -> Self {
        self.max_traces = n.max(1);
        self
    }

    /// Binds the socket(s) and starts receiving.
    pub fn start(self) -> io::Result<Collector> {
        let socket = bind_udp(self.listen)?;
        let tick =
            (self.quiet_period / 2).clamp(Duration::from_millis(5), Duration::from_millis(50));
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let sampling = match self.sampling_rules {
            Some(rules) => Some(SamplingApi::serve(addr, rules)?),
            None => None,
        };
        let forwarder = match self.forward {
            Some(target) => Some(Forwarder::new(target)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
            garbage: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            quiet: self.quiet_period,
            max_datagrams: self.max_datagrams,
            max_traces: self.max_traces,
            forwarder,
            on_trace: Mutex::new(Vec::new()),
            subscribers: Mutex::new(Vec::new()),
            on_violation: Mutex::new(Vec::new()),
        });
        let (tx, rx) = mpsc::channel();
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
    /// [`CollectorBuilder::max_datagrams`]).
    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }

    /// Every well-formed document received so far, in arrival order.
    pub fn documents(&self) -> Vec<Document> {
        self.state().documents.clone()
    }

    /// Datagrams that were not well-formed daemon datagrams.
    pub fn garbage_count(&self) -> u64 {
        self.shared.garbage.load(Ordering::Relaxed)
    }

    /// Datagrams forwarded to the `forward` address.
    pub fn forwarded_count(&self) -> u64 {
        self.shared.forwarder.as_ref().map_or(0, Forwarder::sent)
    }

    /// Every rule violation found so far, in arrival order.
    pub fn violations(&self) -> Vec<Violation> {
        self.state().violations.clone()
    }

    /// Forgets everything received: datagrams, traces and violations.
    pub fn clear(&self) {
        let mut s = self.state();
        s.received.clear();
        s.documents.clear();
        s.traces.clear();
        s.order.clear();
        s.violations.clear();
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
            .map(|p| Trace::assemble(&p.docs))
            .collect()
    }

    /// The traces reported complete so far, in order of first arrival.
    pub fn completed_traces(&self) -> Vec<Trace> {
        let s = self.state();
        s.order
            .iter()
            .filter_map(|id| s.traces.get(id)?.completed.clone())
            .collect()
    }

    /// The trace with this id as assembled now, complete or not.
    pub fn trace(&self, trace_id: TraceId) -> Option<Trace> {
        self.state()
            .traces
            .get(&trace_id)
            .map(|p| Trace::assemble(&p.docs))
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
                .filter_map(|id| g.traces.get(id)?.completed.as_ref())
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

    /// A channel that receives every trace once it is complete.
    pub fn subscribe(&self) -> mpsc::Receiver<Trace> {
        let (tx, rx) = mpsc::channel();
        lock(&self.shared.subscribers).push(tx);
        rx
    }

    /// Calls `callback` with every violation found. Runs on the receiving thread.
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

/// Takes datagrams off the socket as fast as possible; the work happens on the worker
/// thread, so a burst waits in memory rather than overflowing the socket buffer.
fn receive_loop(
    socket: UdpSocket,
    shared: Arc<Shared>,
    to_worker: mpsc::Sender<(Vec<u8>, Instant)>,
) {
    let mut buf = vec![0u8; 65_536];
    while !shared.stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                if let Some(f) = &shared.forwarder {
                    f.forward(&buf[..n]);
                }
                if to_worker.send((buf[..n].to_vec(), Instant::now())).is_err() {
                    return;
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
fn work_loop(shared: Arc<Shared>, from_socket: mpsc::Receiver<(Vec<u8>, Instant)>, tick: Duration) {
    let mut last_check = Instant::now();
    let mut batch = Vec::new();
    loop {
        match from_socket.recv_timeout(tick) {
            Ok(first) => {
                // Take what else is waiting, so a burst costs one lock and one wake-up.
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match from_socket.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
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

/// One datagram after checking.
struct Checked {
    bytes: Vec<u8>,
    at: Instant,
    document: Option<Document>,
}

fn check(bytes: Vec<u8>, at: Instant, violations: &mut Vec<Violation>) -> Checked {
    let (found, body) = check_datagram(&bytes);
    let valid = found.is_empty();
    for v in &found {
        tracing::warn!(violation = %v, "xray-local: invalid segment document");
    }
    violations.extend(found);
    // The same rule as `parse_datagram`, without parsing the JSON a second time.
    let document = body
        .filter(|_| bytes.starts_with(DATAGRAM_HEADER.as_bytes()))
        .and_then(|v| Document::deserialize(&v).ok());
    if document.is_some() {
        crate::document_log::record(&bytes, valid);
    }
    Checked {
        bytes,
        at,
        document,
    }
}

fn handle_datagrams(shared: &Shared, batch: &mut Vec<(Vec<u8>, Instant)>) {
    let mut violations = Vec::new();
    let checked: Vec<Checked> = batch
        .drain(..)
        .map(|(bytes, at)| check(bytes, at, &mut violations))
        .collect();
    let garbage = checked.iter().filter(|c| c.document.is_none()).count();
    shared.garbage.fetch_add(garbage as u64, Ordering::Relaxed);
    {
        let mut s = lock(&shared.state);
        s.violations.extend(violations.iter().cloned());
        for c in checked {
            store(shared, &mut s, c);
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

fn store(shared: &Shared, s: &mut State, c: Checked) {
    if let Some(d) = &c.document {
        if let Some(trace_id) = d.trace_id {
            let fresh = !s.traces.contains_key(&trace_id);
            let p = s.traces.entry(trace_id).or_insert_with(|| Pending {
                docs: Vec::new(),
                last: c.at,
                checked: 0,
                completed: None,
            });
            p.docs.push(d.clone());
            p.last = c.at;
            if fresh {
                s.order.push_back(trace_id);
                while s.order.len() > shared.max_traces {
                    if let Some(old) = s.order.pop_front() {
                        s.traces.remove(&old);
                    }
                }
            }
        }
        s.documents.push(d.clone());
    }
    s.received.push(Received {
        bytes: c.bytes,
        document: c.document,
        at: c.at,
    });
    if s.received.len() > shared.max_datagrams {
        // Forget a tenth at once rather than shifting the list on every datagram.
        let excess = s.received.len() - shared.max_datagrams + shared.max_datagrams / 10;
        let excess = excess.min(s.received.len());
        let dropped_docs = s.received[..excess]
            .iter()
            .filter(|r| r.document.is_some())
            .count();
        s.received.drain(..excess);
        s.documents.drain(..dropped_docs);
    }
}

/// Runs a user callback; a panic in it is logged instead of stopping the collector.
fn guarded(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::warn!(callback = what, "xray-local: a callback panicked");
    }
}

/// Assembles the traces that went quiet and reports the newly complete ones.
fn report_complete(shared: &Shared) {
    let mut done = Vec::new();
    {
        let mut s = lock(&shared.state);
        let now = Instant::now();
        for p in s.traces.values_mut() {
            if p.docs.len() > p.checked && now.duration_since(p.last) >= shared.quiet {
                p.checked = p.docs.len();
                let t = Trace::assemble(&p.docs);
                if t.is_complete() {
                    p.completed = Some(t.clone());
                    done.push(t);
                }
            }
        }
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
        subscribers.retain(|tx| tx.send(t.clone()).is_ok());
    }
}
