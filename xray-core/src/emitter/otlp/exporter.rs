//! The OTLP emitter: documents mapped to spans on the request's thread, a bounded queue, and
//! one background thread that batches, posts and retries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use super::attrs::{kv, string};
use super::config::{self, DEFAULT_ENDPOINT};
use super::to_spans::document_to_spans;
use crate::document::Document;
use crate::emitter::{Counters, Emitter, EmitterStats};

/// Most spans waiting to be sent, by default ([`OtlpEmitterBuilder::max_queue_spans`]).
pub const DEFAULT_MAX_QUEUE_SPANS: usize = 8192;
/// Most bytes of encoded spans waiting to be sent, by default
/// ([`OtlpEmitterBuilder::max_queue_bytes`]): 8 MiB.
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 8 << 20;
/// Most spans per request, by default ([`OtlpEmitterBuilder::max_batch_spans`]).
pub const DEFAULT_MAX_BATCH_SPANS: usize = 512;
/// Most bytes per request, by default ([`OtlpEmitterBuilder::max_batch_bytes`]): 4 MiB, under
/// the 5 MB X-Ray's OTLP endpoint takes.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 << 20;
/// How long spans may wait for others to fill a batch, by default
/// ([`OtlpEmitterBuilder::batch_delay`]).
pub const DEFAULT_BATCH_DELAY: Duration = Duration::from_millis(200);
/// How long one request may take, by default ([`OtlpEmitterBuilder::request_timeout`]).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a batch is retried, by default ([`OtlpEmitterBuilder::max_retry_time`]).
pub const DEFAULT_MAX_RETRY_TIME: Duration = Duration::from_secs(30);

/// The instrumentation scope named in every request.
const SCOPE_NAME: &str = "xray-core";

/// Largest response body read (a partial-success message).
const MAX_RESPONSE: u64 = 64 << 10;

/// One document's spans, waiting.
#[derive(Debug)]
struct Item {
    resource: Arc<Vec<KeyValue>>,
    spans: Vec<Span>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Waiting {
    items: VecDeque<Item>,
    spans: usize,
    bytes: usize,
    /// When the oldest waiting item came.
    since: Option<Instant>,
}

#[derive(Debug)]
struct Queue {
    waiting: Mutex<Waiting>,
    /// Wakes the worker: a first item, a full batch, a flush, closing.
    work: Condvar,
    max_spans: usize,
    max_bytes: usize,
    batch_spans: usize,
    batch_bytes: usize,
    batch_delay: Duration,
    /// Documents ever queued, and those taken off and fully dealt with.
    queued: AtomicU64,
    done: Mutex<u64>,
    done_cond: Condvar,
    /// A flush waits: send what is there without waiting for a full batch.
    flushing: AtomicU64,
    closed: AtomicBool,
    running: AtomicBool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sends segments as OpenTelemetry spans over OTLP/HTTP (protobuf), to an OpenTelemetry
/// collector, the CloudWatch agent, or X-Ray's OTLP endpoint.
///
/// [`emit`](Emitter::emit) maps the document to spans on the calling thread (see
/// [`document_to_spans`]) and puts them on a queue bounded in spans and in bytes
/// ([`DEFAULT_MAX_QUEUE_SPANS`], [`DEFAULT_MAX_QUEUE_BYTES`]); it never touches the network
/// and never waits. When the queue is full the document is dropped and counted. A thread
/// named `xray-otlp` sends the spans in batches (at most [`DEFAULT_MAX_BATCH_SPANS`] spans and
/// [`DEFAULT_MAX_BATCH_BYTES`] per request; a batch leaves after [`DEFAULT_BATCH_DELAY`], or
/// at once when full or flushed), retries with exponential back-off what the receiver
/// refuses for now (429, 502, 503, 504, honouring `Retry-After`, and connection failures) for
/// at most [`DEFAULT_MAX_RETRY_TIME`], and never retries what it refuses for good (400 and
/// every other status). Documents still in progress are not sent: their complete version
/// follows.
///
/// [`EmitterStats`] counts documents: `sent` once the receiver accepted the request that
/// carried them (a document with nothing complete to send counts as sent), `dropped` when
/// the queue was full or the emitter shut down, `errors` when the receiver refused them, the
/// retries ran out, or they had no trace id. Once flushed,
/// `sent + dropped + errors == accepted`.
///
/// ```no_run
/// use xray_core::emitter::otlp::OtlpEmitter;
/// use xray_core::Recorder;
///
/// let recorder = Recorder::builder()
///     .emitter(
///         OtlpEmitter::builder()
///             .endpoint("http://collector:4318/v1/traces")
///             .header("x-team", "checkout")
///             .build(),
///     )
///     .build()
///     .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct OtlpEmitter {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    endpoint: String,
    service_name: Option<String>,
    extra_resource: Vec<KeyValue>,
    /// The resource of the last segment, for independent subsegments (which describe no
    /// service) and to share one resource among a service's segments.
    last_resource: Mutex<Arc<Vec<KeyValue>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Release);
        let _g = self.queue.lock();
        self.queue.work.notify_all();
    }
}

/// Configures an [`OtlpEmitter`]. Settings given here are the defaults that
/// [`from_env`](OtlpEmitterBuilder::from_env) lets the standard variables override.
#[derive(Debug, Clone)]
#[must_use]
pub struct OtlpEmitterBuilder {
    endpoint: String,
    headers: Vec<(String, String)>,
    service_name: Option<String>,
    resource: Vec<(String, String)>,
    max_queue_spans: usize,
    max_queue_bytes: usize,
    max_batch_spans: usize,
    max_batch_bytes: usize,
    batch_delay: Duration,
    request_timeout: Duration,
    max_retry_time: Duration,
    #[cfg(feature = "otlp-sigv4")]
    sigv4: Option<super::SigV4>,
}

impl Default for OtlpEmitterBuilder {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.into(),
            headers: Vec::new(),
            service_name: None,
            resource: Vec::new(),
            max_queue_spans: DEFAULT_MAX_QUEUE_SPANS,
            max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
            max_batch_spans: DEFAULT_MAX_BATCH_SPANS,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            batch_delay: DEFAULT_BATCH_DELAY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_retry_time: DEFAULT_MAX_RETRY_TIME,
            #[cfg(feature = "otlp-sigv4")]
            sigv4: None,
        }
    }
}

impl OtlpEmitterBuilder {
    /// The full URL spans are posted to (default [`DEFAULT_ENDPOINT`],
    /// `http://localhost:4318/v1/traces`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into();
        self
    }

    /// A base URL to which `/v1/traces` is appended, as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn base_endpoint(mut self, url: &str) -> Self {
        self.endpoint = config::traces_url(url);
        self
    }

    /// A header sent with every request (an API key, say).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The resource's `service.name` (default: each segment's name, which is what X-Ray
    /// names the segment after).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// A resource attribute added to every request (string value).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Most spans waiting to be sent ([`DEFAULT_MAX_QUEUE_SPANS`] by default; at least 1).
    pub fn max_queue_spans(mut self, n: usize) -> Self {
        self.max_queue_spans = n.max(1);
        self
    }

    /// Most bytes of encoded spans waiting to be sent ([`DEFAULT_MAX_QUEUE_BYTES`] by default;
    /// at least 1 KiB). A document larger than the whole bound is taken only when nothing
    /// else waits.
    pub fn max_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queue_bytes = bytes.max(1024);
        self
    }

    /// Most spans per request ([`DEFAULT_MAX_BATCH_SPANS`] by default; X-Ray's endpoint
    /// takes at most 10 000).
    pub fn max_batch_spans(mut self, n: usize) -> Self {
        self.max_batch_spans = n.clamp(1, 10_000);
        self
    }

    /// Most bytes per request ([`DEFAULT_MAX_BATCH_BYTES`] by default; a document larger than
    /// this is sent alone).
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes.max(1024);
        self
    }

    /// How long spans wait for others to fill a batch ([`DEFAULT_BATCH_DELAY`] by default).
    pub fn batch_delay(mut self, delay: Duration) -> Self {
        self.batch_delay = delay;
        self
    }

    /// How long one request may take, connecting included ([`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a batch is retried before its documents count as errors
    /// ([`DEFAULT_MAX_RETRY_TIME`]; zero turns retries off).
    pub fn max_retry_time(mut self, time: Duration) -> Self {
        self.max_retry_time = time;
        self
    }

    /// Signs every request with SigV4, as X-Ray's OTLP endpoint requires.
    #[cfg(feature = "otlp-sigv4")]
    pub fn sigv4(mut self, signer: super::SigV4) -> Self {
        self.sigv4 = Some(signer);
        self
    }

    /// Applies OpenTelemetry's standard variables (see [`config`](super::config)) over the
    /// settings given so far.
    pub fn from_env(self) -> Self {
        self.apply(config::read(|k| std::env::var(k).ok()))
    }

    fn apply(mut self, env: config::EnvConfig) -> Self {
        if let Some(e) = env.endpoint {
            self.endpoint = e;
        }
        for (k, v) in env.headers {
            self.headers
                .retain(|(old, _)| !old.eq_ignore_ascii_case(&k));
            self.headers.push((k, v));
        }
        if let Some(t) = env.timeout {
            self.request_timeout = t;
        }
        if let Some(n) = env.service_name {
            self.service_name = Some(n);
        }
        for (k, v) in env.resource {
            self.resource.retain(|(old, _)| *old != k);
            self.resource.push((k, v));
        }
        self
    }

    /// Checks the endpoint: an `http` or `https` URL this build can reach.
    fn check(&self) -> Result<(), String> {
        let uri: http::Uri = self
            .endpoint
            .parse()
            .map_err(|e| format!("invalid OTLP endpoint {:?}: {e}", self.endpoint))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if cfg!(feature = "otlp-tls") => {}
            Some("https") => {
                return Err(format!(
                    "OTLP endpoint {:?} needs TLS: enable the cargo feature \"otlp-tls\" of \
                     xray-core",
                    self.endpoint
                ))
            }
            _ => {
                return Err(format!(
                    "OTLP endpoint {:?} is not an http:// or https:// URL",
                    self.endpoint
                ))
            }
        }
        if uri.host().is_none() {
            return Err(format!("OTLP endpoint {:?} has no host", self.endpoint));
        }
        for (k, v) in &self.headers {
            http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("invalid OTLP header name {k:?}"))?;
            http::HeaderValue::from_str(v)
                .map_err(|_| format!("invalid value for OTLP header {k:?}"))?;
        }
        Ok(())
    }

    /// Starts the background thread. An endpoint this build cannot use (not a URL, `https`
    /// without the `otlp-tls` feature) is logged as an error and every document then counts
    /// as an error; [`try_build`](Self::try_build) reports it instead.
    pub fn build(self) -> OtlpEmitter {
        if let Err(e) = self.check() {
            tracing::error!("{e}; spans will not be sent");
        }
        self.start()
    }

    /// Starts the background thread, or says why the endpoint or a header is unusable.
    pub fn try_build(self) -> Result<OtlpEmitter, String> {
        self.check()?;
        Ok(self.start())
    }

    fn start(self) -> OtlpEmitter {
        let queue = Arc::new(Queue {
            waiting: Mutex::new(Waiting::default()),
            work: Condvar::new(),
            max_spans: self.max_queue_spans,
            max_bytes: self.max_queue_bytes,
            batch_spans: self.max_batch_spans,
            batch_bytes: self.max_batch_bytes,
            batch_delay: self.batch_delay,
            queued: AtomicU64::new(0),
            done: Mutex::new(0),
            done_cond: Condvar::new(),
            flushing: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            running: AtomicBool::new(true),
        });
        let counters = Arc::new(Counters::default());
        let extra_resource: Vec<KeyValue> = self
            .resource
            .iter()
            .filter(|(k, _)| k != "service.name")
            .map(|(k, v)| kv(k.as_str(), string(v.as_str())))
            .collect();
        let mut base = vec![kv(
            super::attrs::SERVICE_NAME,
            string(self.service_name.as_deref().unwrap_or("unknown_service")),
        )];
        base.extend(extra_resource.iter().cloned());
        #[cfg(feature = "otlp-sigv4")]
        let signer = self.sigv4.clone();
        #[cfg(feature = "otlp-sigv4")]
        if signer.is_none() && config::xray_region(&self.endpoint).is_some() {
            tracing::warn!(endpoint = %self.endpoint, "X-Ray's OTLP endpoint needs SigV4: give OtlpEmitterBuilder::sigv4 a signer");
        }
        #[cfg(not(feature = "otlp-sigv4"))]
        if config::xray_region(&self.endpoint).is_some() {
            tracing::warn!(endpoint = %self.endpoint, "X-Ray's OTLP endpoint needs SigV4: enable the cargo feature \"otlp-sigv4\" of xray-core");
        }
        let worker = Worker {
            endpoint: self.endpoint.clone(),
            valid: self.check().is_ok(),
            headers: self.headers.clone(),
            max_retry_time: self.max_retry_time,
            counters: counters.clone(),
            agent: agent(self.request_timeout),
            #[cfg(feature = "otlp-sigv4")]
            signer,
            warned_failures: 0,
        };
        let q = queue.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("xray-otlp".into())
            .spawn(move || worker.run(&q))
        {
            queue.closed.store(true, Ordering::Release);
            queue.running.store(false, Ordering::Release);
            tracing::error!(error = %e, "could not start the OTLP emitter thread; segments will be dropped");
        }
        OtlpEmitter {
            shared: Arc::new(Shared {
                queue,
                counters,
                endpoint: self.endpoint,
                service_name: self.service_name,
                extra_resource,
                last_resource: Mutex::new(Arc::new(base)),
            }),
        }
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("xray-rust/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

impl OtlpEmitter {
    /// Configures an emitter.
    pub fn builder() -> OtlpEmitterBuilder {
        OtlpEmitterBuilder::default()
    }

    /// An emitter configured by OpenTelemetry's standard variables (see
    /// [`config`](super::config)), or why they cannot be used. With the `otlp-sigv4` feature,
    /// requests to X-Ray's own endpoint (`https://xray.<region>.amazonaws.com/v1/traces`) are
    /// signed with the credentials of `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Self, String> {
        let builder = Self::builder().from_env();
        #[cfg(feature = "otlp-sigv4")]
        let builder = match config::xray_region(&builder.endpoint) {
            Some(region) => {
                let signer = super::SigV4::from_env(Some(region))
                    .map_err(|e| format!("cannot sign for X-Ray's OTLP endpoint: {e}"))?;
                builder.sigv4(signer)
            }
            None => builder,
        };
        builder.try_build()
    }

    /// Where spans are posted.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    fn enqueue(&self, doc: &Document) {
        let shared = &*self.shared;
        let q = &*shared.queue;
        let counters = &*shared.counters;
        Counters::add(&counters.accepted, 1);
        let has_room = !q.closed.load(Ordering::Acquire) && {
            let w = q.lock();
            w.spans < q.max_spans && w.bytes < q.max_bytes
        };
        if !has_room {
            self.dropped();
            return;
        }
        let mapped = document_to_spans(doc, shared.service_name.as_deref());
        if mapped.spans.is_empty() {
            // In progress (sent again once complete), or no trace id to send it under.
            if doc.trace_id.is_some() {
                Counters::add(&counters.sent, 1);
            } else {
                Counters::add(&counters.errors, 1);
            }
            return;
        }
        let resource = self.resource(mapped.resource);
        let bytes: usize = mapped.spans.iter().map(Message::encoded_len).sum();
        let n = mapped.spans.len();
        let mut w = q.lock();
        let fits =
            w.items.is_empty() || (w.spans + n <= q.max_spans && w.bytes + bytes <= q.max_bytes);
        if !fits || q.closed.load(Ordering::Acquire) {
            drop(w);
            self.dropped();
            return;
        }
        let first = w.items.is_empty();
        let was_below = w.spans < q.batch_spans && w.bytes < q.batch_bytes;
        w.spans += n;
        w.bytes += bytes;
        w.items.push_back(Item {
            resource,
            spans: mapped.spans,
            bytes,
        });
        if first {
            w.since = Some(Instant::now());
        }
        let full = w.spans >= q.batch_spans || w.bytes >= q.batch_bytes;
        q.queued.fetch_add(1, Ordering::Release);
        drop(w);
        if first || (was_below && full) {
            q.work.notify_one();
        }
    }

    fn dropped(&self) {
        let n = self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
        if n.is_power_of_two() {
            crate::emitter::defer(crate::emitter::Deferred::QueueFull { dropped: n + 1 });
        }
    }

    /// The resource of a document's spans, shared with the previous document's when equal.
    fn resource(&self, mut mapped: Vec<KeyValue>) -> Arc<Vec<KeyValue>> {
        let shared = &*self.shared;
        let mut last = shared
            .last_resource
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if mapped.is_empty() {
            return last.clone();
        }
        for extra in &shared.extra_resource {
            mapped.retain(|a| a.key != extra.key);
            mapped.push(extra.clone());
        }
        if **last != mapped {
            *last = Arc::new(mapped);
        }
        last.clone()
    }
}

impl Emitter for OtlpEmitter {
    fn emit(&self, document: Document) {
        self.enqueue(&document);
    }

    fn emit_borrowed(&self, document: &Document) -> bool {
        self.enqueue(document);
        true
    }

    fn flush(&self, timeout: Duration) -> bool {
        let q = &*self.shared.queue;
        let target = q.queued.load(Ordering::Acquire);
        let deadline = Instant::now() + timeout;
        q.flushing.fetch_add(1, Ordering::AcqRel);
        {
            let _g = q.lock();
            q.work.notify_all();
        }
        let mut done = q.done.lock().unwrap_or_else(|p| p.into_inner());
        let ok = loop {
            if *done >= target {
                break true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !q.running.load(Ordering::Acquire) {
                break false;
            }
            done = q
                .done_cond
                .wait_timeout(done, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        drop(done);
        q.flushing.fetch_sub(1, Ordering::AcqRel);
        ok
    }

    fn stats(&self) -> EmitterStats {
        self.shared.counters.snapshot()
    }
}

/// What a request came to.
#[derive(Debug)]
enum Outcome {
    Sent,
    /// Refused for good (or the endpoint is unusable).
    Failed(String),
    /// Refused for now; retry after the delay the receiver asked for, if any.
    Retry(String, Option<Duration>),
}

struct Worker {
    endpoint: String,
    valid: bool,
    headers: Vec<(String, String)>,
    max_retry_time: Duration,
    counters: Arc<Counters>,
    agent: ureq::Agent,
    #[cfg(feature = "otlp-sigv4")]
    signer: Option<super::SigV4>,
    warned_failures: u64,
}

impl Worker {
    fn run(mut self, q: &Queue) {
        let mut taken = Vec::new();
        loop {
            {
                let mut w = q.lock();
                loop {
                    let closed = q.closed.load(Ordering::Acquire);
                    if w.items.is_empty() {
                        if closed {
                            drop(w);
                            q.running.store(false, Ordering::Release);
                            q.done_cond.notify_all();
                            return;
                        }
                        w = q.work.wait(w).unwrap_or_else(|p| p.into_inner());
                        continue;
                    }
                    let waited = w.since.map_or(Duration::MAX, |t| t.elapsed());
                    if closed
                        || q.flushing.load(Ordering::Acquire) > 0
                        || w.spans >= q.batch_spans
                        || w.bytes >= q.batch_bytes
                        || waited >= q.batch_delay
                    {
                        break;
                    }
                    w = q
                        .work
                        .wait_timeout(w, q.batch_delay - waited)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                taken.extend(w.items.drain(..));
                w.spans = 0;
                w.bytes = 0;
                w.since = None;
            }
            let n = taken.len() as u64;
            let mut items = taken.drain(..).peekable();
            while items.peek().is_some() {
                // One request: items up to the batch limits (at least one).
                let mut batch = Vec::new();
                let (mut spans, mut bytes) = (0, 0);
                while let Some(next) = items.peek() {
                    if !batch.is_empty()
                        && (spans + next.spans.len() > q.batch_spans
                            || bytes + next.bytes > q.batch_bytes)
                    {
                        break;
                    }
                    spans += next.spans.len();
                    bytes += next.bytes;
                    batch.extend(items.next());
                }
                let docs = batch.len() as u64;
                let body = encode(batch);
                match self.send_with_retries(q, &body) {
                    Ok(()) => Counters::add(&self.counters.sent, docs),
                    Err(e) => {
                        Counters::add(&self.counters.errors, docs);
                        self.warn_failure(docs, &e);
                    }
                }
            }
            *q.done.lock().unwrap_or_else(|p| p.into_inner()) += n;
            q.done_cond.notify_all();
        }
    }

    fn warn_failure(&mut self, docs: u64, error: &str) {
        let before = self.warned_failures;
        self.warned_failures += docs;
        // The first failure, then ever more rarely (at powers of two).
        if before == 0 || (before + 1).next_power_of_two() <= self.warned_failures {
            tracing::warn!(
                endpoint = %self.endpoint,
                failed = self.warned_failures,
                "could not send segments over OTLP: {error}"
            );
        }
    }

    /// Posts `body`, retrying what the receiver refuses for now with exponential back-off
    /// (100 ms doubling to 5 s, with jitter) or after its `Retry-After`, for at most the
    /// retry time; waits are cut short when the emitter shuts down.
    fn send_with_retries(&mut self, q: &Queue, body: &[u8]) -> Result<(), String> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.post(body) {
                Outcome::Sent => return Ok(()),
                Outcome::Failed(e) => return Err(e),
                Outcome::Retry(e, after) => {
                    let jittered = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
                    let wait = after.unwrap_or(jittered);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if started.elapsed() + wait > self.max_retry_time {
                        return Err(format!("{e}; gave up retrying"));
                    }
                    if q.closed.load(Ordering::Acquire) {
                        return Err(format!("{e}; not retried: the emitter shut down"));
                    }
                    tracing::debug!(endpoint = %self.endpoint, "OTLP request refused for now ({e}); retrying in {wait:?}");
                    // Sleep, but wake when the emitter is dropped.
                    let w = q.lock();
                    let _ = q
                        .work
                        .wait_timeout_while(w, wait, |_| !q.closed.load(Ordering::Acquire));
                }
            }
        }
    }

    fn post(&mut self, body: &[u8]) -> Outcome {
        if !self.valid {
            return Outcome::Failed(format!("unusable OTLP endpoint {:?}", self.endpoint));
        }
        let mut builder = http::Request::builder()
            .method("POST")
            .uri(self.endpoint.as_str())
            .header("content-type", "application/x-protobuf");
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        #[allow(unused_mut)]
        let mut request = match builder.body(body.to_vec()) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("cannot build the request: {e}")),
        };
        #[cfg(feature = "otlp-sigv4")]
        if let Some(signer) = &self.signer {
            if let Err(e) = signer.sign(&mut request) {
                return Outcome::Failed(format!("cannot sign the request: {e}"));
            }
        }
        let mut response = match self.agent.run(request) {
            Ok(r) => r,
            Err(e) => {
                // The receiver could not be reached or did not answer in time: transient.
                return match e {
                    ureq::Error::Io(_)
                    | ureq::Error::Timeout(_)
                    | ureq::Error::HostNotFound
                    | ureq::Error::ConnectionFailed => Outcome::Retry(e.to_string(), None),
                    other => Outcome::Failed(other.to_string()),
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(300)));
        let reply = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .unwrap_or_default();
        match status {
            200..=299 => {
                if let Ok(r) = ExportTraceServiceResponse::decode(reply.as_slice()) {
                    if let Some(p) = r.partial_success.filter(|p| p.rejected_spans > 0) {
                        let message: String = p.error_message.chars().take(200).collect();
                        tracing::warn!(
                            endpoint = %self.endpoint,
                            rejected_spans = p.rejected_spans,
                            "the OTLP receiver rejected spans: {message}"
                        );
                    }
                }
                Outcome::Sent
            }
            429 | 502 | 503 | 504 => Outcome::Retry(format!("HTTP {status}"), retry_after),
            _ => {
                let text: String = String::from_utf8_lossy(&reply).chars().take(200).collect();
                Outcome::Failed(format!("HTTP {status} {text}"))
            }
        }
    }
}

/// One request holding `items`' spans; consecutive items of one resource share its
/// `ResourceSpans`.
fn encode(items: Vec<Item>) -> Vec<u8> {
    let scope = || {
        Some(InstrumentationScope {
            name: SCOPE_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        })
    };
    let mut request = ExportTraceServiceRequest::default();
    let mut current: Option<Arc<Vec<KeyValue>>> = None;
    for item in items {
        let same = current
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &item.resource) || **c == *item.resource);
        if !same {
            request.resource_spans.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: (*item.resource).clone(),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: scope(),
                    ..Default::default()
                }],
                ..Default::default()
            });
            current = Some(item.resource.clone());
        }
        if let Some(ss) = request
            .resource_spans
            .last_mut()
            .and_then(|rs| rs.scope_spans.last_mut())
        {
            ss.spans.extend(item.spans);
        }
    }
    request.encode_to_vec()
}
