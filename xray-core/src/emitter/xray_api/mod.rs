//! The X-Ray API emitter (cargo feature `xray-api`): documents go straight to the X-Ray
//! service with `PutTraceSegments`, through the AWS SDK for Rust, with no daemon.
//!
//! See [`XRayApiEmitter`]. The queue is in `queue.rs`, the cutting into calls in `batch.rs`,
//! the sending and retrying in `worker.rs`, the SDK client and its runtime in `sdk.rs`, and
//! the sampling API for the centralized sampler in `sampling.rs`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::encode::{encode_one, encode_one_cloning, Datagrams};
use super::{Counters, Emitter, EmitterStats, MAX_DATAGRAM_BYTES};
use crate::document::Document;
use crate::sampling::{CentralizedSampler, LocalSampler};

mod batch;
mod queue;
mod sampling;
mod sdk;
mod worker;

pub use batch::{DEFAULT_CALL_BYTES, MAX_DOCUMENTS_PER_CALL};

use queue::{Queue, Queued};
use sdk::{Sdk, Source};
use worker::{ApiCounters, Settings, Worker};

/// How many documents may wait to be sent, by default
/// ([`XRayApiEmitterBuilder::queue_capacity`]).
pub const DEFAULT_QUEUE_CAPACITY: usize = 2048;

/// How many bytes of documents may wait to be sent, by default
/// ([`XRayApiEmitterBuilder::queue_bytes`]): 4 MiB.
pub const DEFAULT_QUEUE_BYTES: usize = 4 << 20;

/// What the X-Ray API emitter's calls met so far, beside the documents' fates in
/// [`EmitterStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiStats {
    /// `PutTraceSegments` calls made (each attempt counts).
    pub calls: u64,
    /// Calls throttled (HTTP 429 or a throttling error code).
    pub throttled: u64,
    /// Calls answered with a server error (5xx).
    pub server_errors: u64,
    /// Calls not answered: no connection, time-out, unreadable answer.
    pub transport_errors: u64,
    /// Calls refused for good (4xx other than throttling); their documents count as errors.
    pub rejected: u64,
    /// Documents the API listed in `UnprocessedTraceSegments`.
    pub unprocessed: u64,
    /// Documents sent again after being returned unprocessed.
    pub resent: u64,
    /// In-progress segments returned unprocessed and not sent again because their completed
    /// version was delivered or waited to be sent (counted as sent).
    pub superseded: u64,
}

/// Sends documents to the X-Ray API (`PutTraceSegments`) through the AWS SDK for Rust.
///
/// [`emit`](Emitter::emit) serializes the document on the calling thread (split into
/// independent subsegments, or trimmed, when it exceeds the API's 64 KB document size, as for
/// the daemon) and puts it on a queue bounded in documents (2048) and bytes (4 MiB); when
/// either is reached the document is dropped and counted, so a slow or unreachable API never
/// blocks a request or grows memory. A thread named `xray-api-emitter` runs a current-thread
/// Tokio runtime with one `aws_sdk_xray::Client`; it gathers documents for up to 100 ms (or
/// until 50 wait, or a flush asks) and sends calls of at most [`MAX_DOCUMENTS_PER_CALL`]
/// documents and [`DEFAULT_CALL_BYTES`] bytes.
///
/// Calls that are throttled, fail with a 5xx status or get no answer are tried again up to
/// 4 times in all, after exponential back-offs with jitter (100 ms doubling, at most 5 s); once
/// a call got no answer at all, later calls get one attempt each until one is answered, so an
/// unreachable endpoint costs little time. Documents the API returns in
/// `UnprocessedTraceSegments` lead the next call, up to 3 more times, then count as errors.
/// In-progress segments are sent as they are (X-Ray shows them until the completed segment,
/// with the same id, replaces them); one returned unprocessed is not sent again once its
/// completed version was delivered or waits to be sent, so a late retry never hides the
/// completed segment.
///
/// [`stats`](Emitter::stats) counts each document once it is settled: `sent` (every part
/// accepted by the API), `errors` (a part refused, returned too often, or not delivered after
/// the retries) or `dropped` (queue full, or the emitter gone); after a flush
/// `sent + dropped + errors == accepted`. [`api_stats`](Self::api_stats) counts the calls.
///
/// The SDK's own retries are turned off for these calls: the emitter retries within its own
/// bounds and counts what happened.
///
/// ```no_run
/// # async fn example() {
/// use xray_core::emitter::XRayApiEmitter;
/// use xray_core::sampling::LocalSampler;
/// use xray_core::Recorder;
///
/// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
/// let emitter = XRayApiEmitter::builder().sdk_config(&config).build().unwrap();
/// let sampler = emitter.centralized_sampler(LocalSampler::default());
/// sampler.start();
/// let recorder = Recorder::builder().emitter(emitter).sampler(sampler).build().unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct XRayApiEmitter {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    api: Arc<ApiCounters>,
    sdk: Arc<Sdk>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The worker sends what is left, then stops, and its runtime with it.
        self.queue.closed.store(true, Ordering::Release);
        self.queue.notify.notify_one();
    }
}

/// Configures an [`XRayApiEmitter`].
#[derive(Debug)]
#[must_use]
pub struct XRayApiEmitterBuilder {
    source: Source,
    queue_capacity: usize,
    queue_bytes: usize,
    settings: Settings,
}

impl XRayApiEmitterBuilder {
    /// Sends with this client (its region, credentials and endpoint). Its retry settings are
    /// overridden per call: the emitter retries by itself.
    pub fn client(mut self, client: aws_sdk_xray::Client) -> Self {
        self.source = Source::Client(client);
        self
    }

    /// Sends with a client made from this shared AWS configuration.
    pub fn sdk_config(self, config: &aws_config::SdkConfig) -> Self {
        self.client(aws_sdk_xray::Client::new(config))
    }

    /// How many documents may wait to be sent ([`DEFAULT_QUEUE_CAPACITY`], 2048, by default).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// How many bytes of serialized documents may wait ([`DEFAULT_QUEUE_BYTES`], 4 MiB, by
    /// default; at least 64 KiB). A document larger than the bound is taken only when nothing
    /// else waits.
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes.max(64 << 10);
        self
    }

    /// Most bytes of documents in one call ([`DEFAULT_CALL_BYTES`], 1 MiB, by default; at
    /// least 64 KiB). A call never holds more than [`MAX_DOCUMENTS_PER_CALL`] documents.
    pub fn call_bytes(mut self, bytes: usize) -> Self {
        self.settings.call_bytes = bytes.max(64 << 10);
        self
    }

    /// Time allowed for one call (default 2 s, as the daemon).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.request_timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// Attempts per call when it is throttled, fails with 5xx or gets no answer (default 4;
    /// at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.settings.attempts = n.max(1);
        self
    }

    /// Times a document returned in `UnprocessedTraceSegments` is sent again before it
    /// counts as an error (default 3).
    pub fn max_resends(mut self, n: u32) -> Self {
        self.settings.resends = n;
        self
    }

    /// How long the worker gathers documents before sending fewer than a full call (default
    /// 100 ms; a flush sends at once).
    pub fn batch_wait(mut self, wait: Duration) -> Self {
        self.settings.linger = wait;
        self
    }

    /// The first back-off between attempts (default 100 ms), doubled per attempt, at most 5 s;
    /// each wait is a random half to all of that.
    pub fn backoff(mut self, first: Duration) -> Self {
        self.settings.backoff = first.max(Duration::from_millis(1));
        self
    }

    /// Starts the emitter's thread and runtime. Without [`client`](Self::client) or
    /// [`sdk_config`](Self::sdk_config), the AWS configuration is loaded from the default
    /// chain on that thread when it first sends. Fails only when the runtime or the thread
    /// cannot be started.
    pub fn build(self) -> Result<XRayApiEmitter, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the X-Ray API emitter's runtime: {e}"))?;
        let queue = Arc::new(Queue::new(self.queue_capacity, self.queue_bytes));
        let counters = Arc::new(Counters::default());
        let api = Arc::new(ApiCounters::default());
        let sdk = Arc::new(Sdk::new(runtime.handle().clone(), self.source));
        let (q, c, a, k, settings) = (
            queue.clone(),
            counters.clone(),
            api.clone(),
            sdk.clone(),
            self.settings,
        );
        std::thread::Builder::new()
            .name("xray-api-emitter".into())
            .spawn(move || runtime.block_on(Worker::new(q, c, a, k, settings).run()))
            .map_err(|e| format!("cannot start the X-Ray API emitter's thread: {e}"))?;
        Ok(XRayApiEmitter {
            shared: Arc::new(Shared {
                queue,
                counters,
                api,
                sdk,
            }),
        })
    }
}

/// The SDK of the emitter [`XRayApiEmitter::from_env`] made last, for the recorder's default
/// sampler.
static FROM_ENV: Mutex<Option<Weak<Sdk>>> = Mutex::new(None);

impl XRayApiEmitter {
    /// Configures an emitter.
    pub fn builder() -> XRayApiEmitterBuilder {
        XRayApiEmitterBuilder {
            source: Source::Environment,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            settings: Settings {
                call_bytes: DEFAULT_CALL_BYTES,
                request_timeout: Duration::from_secs(2),
                attempts: 4,
                resends: 3,
                linger: Duration::from_millis(100),
                backoff: Duration::from_millis(100),
            },
        }
    }

    /// An emitter with default settings and the AWS SDK's default configuration chain:
    /// region (`AWS_REGION`, profile, instance metadata), credentials (environment, profile,
    /// web identity, container or instance roles) and endpoint (`AWS_ENDPOINT_URL_XRAY`,
    /// else `AWS_ENDPOINT_URL`), loaded on the emitter's thread when it first sends. This is
    /// what `XRAY_EXPORTER=xray-api` uses (see [`select`](crate::emitter::select)).
    pub fn from_env() -> Result<XRayApiEmitter, String> {
        let emitter = Self::builder().build()?;
        *FROM_ENV.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::downgrade(&emitter.shared.sdk));
        Ok(emitter)
    }

    /// A centralized sampler that calls `GetSamplingRules` and `GetSamplingTargets` through
    /// this emitter's client and runtime instead of the daemon, deciding with `fallback` until
    /// the rules first arrive. Call [`start`](CentralizedSampler::start) to begin polling
    /// (the recorder's [`shutdown`](crate::Recorder::shutdown) stops it). Once the emitter is
    /// dropped the sampler's calls fail and it keeps its last rules.
    pub fn centralized_sampler(&self, fallback: LocalSampler) -> CentralizedSampler {
        CentralizedSampler::with_api(
            Arc::new(sampling::SdkSampling {
                sdk: self.shared.sdk.clone(),
            }),
            fallback,
        )
    }

    /// What the calls met so far.
    pub fn api_stats(&self) -> ApiStats {
        let a = &self.shared.api;
        let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        ApiStats {
            calls: n(&a.calls),
            throttled: n(&a.throttled),
            server_errors: n(&a.server_errors),
            transport_errors: n(&a.transport_errors),
            rejected: n(&a.rejected),
            unprocessed: n(&a.unprocessed),
            resent: n(&a.resent),
            superseded: n(&a.superseded),
        }
    }

    /// Serializes with `encode` (given a buffer) and queues the result, or counts the
    /// document dropped.
    fn enqueue(&self, id: String, in_progress: bool, encode: impl FnOnce(Vec<u8>) -> Datagrams) {
        let s = &self.shared;
        Counters::add(&s.counters.accepted, 1);
        let taken = s.queue.has_room()
            && s.queue.push(Queued {
                id,
                in_progress,
                datagrams: encode(Vec::with_capacity(1024)),
            });
        if !taken {
            let n = s.counters.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                super::defer(super::Deferred::QueueFull { dropped: n + 1 });
            }
        }
    }
}

/// The centralized sampler the recorder uses by default when `XRAY_EXPORTER=xray-api` chose
/// the emitter: through the SDK of the emitter [`XRayApiEmitter::from_env`] made last, if it
/// is still alive; through the daemon otherwise.
pub(crate) fn env_sampler(
    daemon: &crate::daemon::DaemonAddress,
    fallback: LocalSampler,
) -> CentralizedSampler {
    let sdk = FROM_ENV
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .and_then(|w| w.upgrade());
    match sdk {
        Some(sdk) => {
            CentralizedSampler::with_api(Arc::new(sampling::SdkSampling { sdk }), fallback)
        }
        None => CentralizedSampler::new(daemon, fallback),
    }
}

impl Emitter for XRayApiEmitter {
    fn emit(&self, document: Document) {
        let (id, in_progress) = (document.id.to_string(), document.in_progress);
        self.enqueue(id, in_progress, |buf| {
            encode_one(document, MAX_DATAGRAM_BYTES, buf)
        });
    }

    fn emit_borrowed(&self, document: &Document) -> bool {
        self.enqueue(document.id.to_string(), document.in_progress, |buf| {
            encode_one_cloning(document, MAX_DATAGRAM_BYTES, buf)
        });
        true
    }

    fn flush(&self, timeout: Duration) -> bool {
        self.shared.queue.flush(timeout)
    }

    fn stats(&self) -> EmitterStats {
        self.shared.counters.snapshot()
    }
}
