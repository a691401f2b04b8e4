//! The recorder: configuration, segment creation, the current entity, and hand-over to the
//! emitter.
//!
//! - this module: [`Recorder`], which begins segments and passes finished documents to its
//!   emitter;
//! - `builder`: [`RecorderBuilder`], and the one place that reads the `AWS_XRAY_*`
//!   environment variables;
//! - `config`: the settings users choose ([`ContextMissing`], [`IncomingSampled`]);
//! - [`context`]: the current entity, carried across `.await`;
//! - `capture`: running a closure or future as a subsegment;
//! - `in_segment`: running work outside any request (a job, a consumer loop, a command) as a
//!   segment of its own.

mod builder;
pub(crate) mod capture;
mod config;
pub mod context;
pub(crate) mod in_segment;
pub(crate) mod panics;

pub use builder::RecorderBuilder;
pub use config::{ConfigError, ContextMissing, IncomingSampled};

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::daemon::DaemonAddress;
use crate::document::{Document, HttpRequest};
use crate::emitter::{Emitter, EmitterStats};
use crate::entity::{Entity, NewSegment};
use crate::header::{Sampled, TraceHeader};
use crate::id::{EntityId, TraceId};
use crate::plugins::RuntimeEnvironment;
use crate::sampling::{Sampler, SamplingRequest};

/// Origins the plugins set, indexed by `Inner::origin`.
const KNOWN_ORIGINS: [&str; 5] = [
    "AWS::EC2::Instance",
    "AWS::ECS::Container",
    "AWS::EKS::Container",
    "AWS::ElasticBeanstalk::Environment",
    "AWS::Lambda::Function",
];
const ORIGIN_NONE: u8 = u8::MAX;
const ORIGIN_OTHER: u8 = u8::MAX - 1;

/// The SDK name written in `aws.xray.sdk`.
pub const SDK_NAME: &str = "X-Ray for Rust";
/// This crate's version, written in `aws.xray.sdk_version`.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

struct Inner {
    service_name: String,
    /// `AWS_XRAY_TRACING_NAME`, read once here for every name chosen in code.
    name_override: Option<String>,
    /// Frames kept per exception for panics and backtraces.
    max_stack_frames: usize,
    /// Query parameters redacted from recorded URLs besides the built-in ones.
    redacted_query_params: Vec<String>,
    enabled: bool,
    sampler: Arc<dyn Sampler>,
    emitter: Arc<dyn Emitter>,
    context_missing: ContextMissing,
    incoming_sampled: IncomingSampled,
    streaming_threshold: usize,
    daemon: DaemonAddress,
    /// `aws.xray` block, built once.
    xray_block: Value,
    service_block: Map<String, Value>,
    environment: RwLock<Arc<RuntimeEnvironment>>,
    /// The environment's origin as an index into [`KNOWN_ORIGINS`], so that sampling
    /// decisions read it without a lock ([`ORIGIN_NONE`], or [`ORIGIN_OTHER`] for a custom
    /// one, read from `environment`).
    origin: std::sync::atomic::AtomicU8,
    /// The blocks every segment carries, rebuilt when the environment changes.
    decoration: RwLock<Arc<crate::document::Decoration>>,
    /// Set once the plugins have run (immediately when there are none).
    plugins_done: (Mutex<bool>, std::sync::Condvar),
}

/// Records segments and hands them to an emitter.
///
/// Cheap to clone. Most applications use the process-wide [`Recorder::global`], configured from
/// the environment or installed once with [`Recorder::set_global`]; tests build their own with
/// a [`MemoryEmitter`](crate::emitter::MemoryEmitter).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("service_name", &self.inner.service_name)
            .field("enabled", &self.inner.enabled)
            .field("daemon", &self.inner.daemon.to_string())
            .field("sampler", &self.inner.sampler)
            .field("emitter", &self.inner.emitter)
            .finish()
    }
}

static GLOBAL: OnceLock<Recorder> = OnceLock::new();

impl Recorder {
    /// Starts configuring a recorder.
    pub fn builder() -> RecorderBuilder {
        RecorderBuilder::default()
    }

    /// The process-wide recorder. Built on first use from the environment (SPEC §6) and
    /// defaults, unless [`set_global`](Self::set_global) installed one before.
    pub fn global() -> &'static Recorder {
        GLOBAL.get_or_init(|| match Recorder::builder().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "invalid X-Ray configuration; using defaults");
                RecorderBuilder::default()
                    .ignore_invalid()
                    .build_infallible()
            }
        })
    }

    /// A recorder that records nothing, for the no-op segments handed out inside requests
    /// served with the SDK disabled ([`crate::context::current_or_disabled`]).
    pub(crate) fn disabled() -> &'static Recorder {
        static DISABLED: OnceLock<Recorder> = OnceLock::new();
        DISABLED.get_or_init(|| {
            RecorderBuilder::default()
                .enabled(false)
                .ignore_env()
                .ignore_invalid()
                .build_infallible()
        })
    }

    /// Installs the process-wide recorder. Fails, giving the recorder back, when one is
    /// already installed or was already used.
    pub fn set_global(recorder: Recorder) -> Result<(), Recorder> {
        GLOBAL.set(recorder)
    }

    /// The default service (segment) name.
    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    /// `AWS_XRAY_TRACING_NAME` when it is set (and the environment is read): it replaces the
    /// segment names given in code.
    pub fn tracing_name_override(&self) -> Option<&str> {
        self.inner.name_override.as_deref()
    }

    /// The query parameters redacted from recorded URLs besides
    /// [`REDACTED_QUERY_PARAMS`](crate::http::REDACTED_QUERY_PARAMS).
    pub fn redacted_query_params(&self) -> &[String] {
        &self.inner.redacted_query_params
    }

    /// How many stack frames recorded panics and backtraces keep per exception.
    pub fn max_stack_frames(&self) -> usize {
        self.inner.max_stack_frames
    }

    /// False when the SDK is disabled (`AWS_XRAY_SDK_ENABLED=false`).
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
    }

    /// The context-missing strategy.
    pub fn context_missing(&self) -> ContextMissing {
        self.inner.context_missing
    }

    /// The daemon address.
    pub fn daemon_address(&self) -> &DaemonAddress {
        &self.inner.daemon
    }

    /// The sampler.
    pub fn sampler(&self) -> &Arc<dyn Sampler> {
        &self.inner.sampler
    }

    /// The emitter's counters.
    pub fn emitter_stats(&self) -> EmitterStats {
        self.inner.emitter.stats()
    }

    /// Waits until documents emitted so far are sent, at most `timeout`. Returns false if time
    /// ran out.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.inner.emitter.flush(timeout)
    }

    /// Stops the sampler's background work and sends the documents emitted so far, returning
    /// within `timeout` in all: one deadline for both, not one each. Call it once the server
    /// has stopped taking requests.
    ///
    /// The sampler is told to stop at once, on a thread of its own, while this thread waits
    /// for the emitter to send what it holds ([`flush`](Self::flush)); then it waits for the
    /// sampler until the deadline. A [`CentralizedSampler`](crate::sampling::CentralizedSampler)
    /// makes no further call to the daemon; one in flight (to a daemon that does not answer,
    /// say) ends on the poller's thread at the call's own timeout, after this returns.
    ///
    /// Returns whether every document emitted before the call was sent in time. Documents
    /// emitted afterwards are still sent.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let sampler = self.inner.sampler.clone();
        let (stopped_tx, stopped) = std::sync::mpsc::channel();
        let stopping = std::thread::Builder::new()
            .name("xray-shutdown".into())
            .spawn(move || {
                sampler.shutdown();
                let _ = stopped_tx.send(());
            });
        let stopped = match stopping {
            Ok(_) => Some(stopped),
            Err(e) => {
                tracing::debug!(error = %e, "cannot start a thread to stop the sampler; stopping it here");
                self.inner.sampler.shutdown();
                None
            }
        };
        let flushed = self.flush(timeout);
        if let Some(stopped) = stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if stopped.recv_timeout(left).is_err() {
                tracing::debug!("the X-Ray sampler had not stopped by the shutdown deadline; it stops on its own thread");
            }
        }
        flushed
    }

    /// The subsegment count above which completed subsegments are sent early.
    pub fn streaming_threshold(&self) -> usize {
        self.inner.streaming_threshold
    }

    /// Sets what plugins found about the runtime environment; applied to every segment sent
    /// from now on.
    pub fn set_runtime_environment(&self, env: RuntimeEnvironment) {
        let decoration = Arc::new(Self::build_decoration(&self.inner, &env));
        let origin = match env.origin.as_deref() {
            None => ORIGIN_NONE,
            Some(o) => KNOWN_ORIGINS
                .iter()
                .position(|k| *k == o)
                .map_or(ORIGIN_OTHER, |i| i as u8),
        };
        *self
            .inner
            .environment
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(env);
        *self
            .inner
            .decoration
            .write()
            .unwrap_or_else(|p| p.into_inner()) = decoration;
        self.inner
            .origin
            .store(origin, std::sync::atomic::Ordering::Release);
    }

    /// The origin (service type) sampling rules see, read without a lock for the origins the
    /// plugins set.
    fn origin_for_sampling(&self) -> Option<std::borrow::Cow<'static, str>> {
        match self.inner.origin.load(std::sync::atomic::Ordering::Acquire) {
            ORIGIN_NONE => None,
            ORIGIN_OTHER => self
                .runtime_environment()
                .origin
                .clone()
                .map(std::borrow::Cow::Owned),
            i => KNOWN_ORIGINS
                .get(usize::from(i))
                .map(|o| std::borrow::Cow::Borrowed(*o)),
        }
    }

    /// Waits until the plugins have looked at the environment, at most `timeout`. Returns
    /// true when they are done (at once when none were enabled).
    pub fn wait_for_plugins(&self, timeout: Duration) -> bool {
        let (lock, cond) = &self.inner.plugins_done;
        let g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = cond
            .wait_timeout_while(g, timeout, |done| !*done)
            .unwrap_or_else(|p| p.into_inner());
        *g
    }

    /// What plugins found about the runtime environment.
    pub fn runtime_environment(&self) -> Arc<RuntimeEnvironment> {
        self.inner
            .environment
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Begins a segment, continuing the trace of `header` when given. Sampling follows the
    /// caller's decision, else the sampler decides with the service name only.
    pub fn begin_segment(&self, name: &str, header: Option<&TraceHeader>) -> Entity {
        self.begin_segment_with(name, header, &SamplingRequest::new(name))
    }

    /// Begins a segment, giving the sampler the request's details.
    pub fn begin_segment_with(
        &self,
        name: &str,
        header: Option<&TraceHeader>,
        request: &SamplingRequest<'_>,
    ) -> Entity {
        self.begin_segment_w3c(name, header, request, None, || None)
    }

    /// [`begin_segment_with`](Self::begin_segment_with), keeping the W3C `tracestate` that
    /// came with the trace so that outbound calls forward it. A sampled segment starts with
    /// the `http.request` block `http` returns (asked only then).
    pub(crate) fn begin_segment_w3c(
        &self,
        name: &str,
        header: Option<&TraceHeader>,
        request: &SamplingRequest<'_>,
        tracestate: Option<&str>,
        http: impl FnOnce() -> Option<HttpRequest>,
    ) -> Entity {
        let sampled = self.decide(header.and_then(|h| h.sampled), request);
        self.begin_segment_decided(name, header, sampled, tracestate, http)
    }

    /// Whether a request is sampled, given the caller's `Sampled=` and, when the caller did
    /// not decide, the sampler's answer. Asks the sampler at most once (its reservoirs and
    /// statistics count each call).
    pub(crate) fn decide(&self, incoming: Option<Sampled>, request: &SamplingRequest<'_>) -> bool {
        match (incoming, &self.inner.incoming_sampled) {
            _ if !self.inner.enabled => false,
            (Some(Sampled::No), _) => false,
            (Some(Sampled::Yes), IncomingSampled::Trust) => true,
            (Some(Sampled::Yes), IncomingSampled::Cap(cap)) if cap.admit() => true,
            _ => match self.origin_for_sampling() {
                Some(origin) if request.service_type.is_none() => {
                    self.inner.sampler.sample(&SamplingRequest {
                        service_type: Some(&origin),
                        ..*request
                    })
                }
                _ => self.inner.sampler.sample(request),
            },
        }
    }

    /// [`begin_segment_w3c`](Self::begin_segment_w3c) once the decision is made.
    pub(crate) fn begin_segment_decided(
        &self,
        name: &str,
        header: Option<&TraceHeader>,
        sampled: bool,
        tracestate: Option<&str>,
        http: impl FnOnce() -> Option<HttpRequest>,
    ) -> Entity {
        if header.is_none() && tracestate.is_none() && !sampled {
            return Entity::new_light_segment(self.clone(), TraceId::new());
        }
        let (trace_id, parent_id, extra) = match header {
            Some(h) if h.root.is_some() => (h.root.unwrap_or_default(), h.parent, h.extra.clone()),
            Some(h) => (TraceId::new(), None, h.extra.clone()),
            None => (TraceId::new(), None, Vec::new()),
        };
        Entity::new_segment(
            self.clone(),
            NewSegment {
                name,
                trace_id,
                parent_id,
                sampled,
                sampled_requested: header.and_then(|h| h.sampled) == Some(Sampled::Requested),
                extra,
                tracestate: tracestate.map(Box::from),
                facade: false,
                id: None,
            },
            http,
        )
    }

    /// Begins a facade segment for an invocation whose segment is recorded by someone else
    /// (AWS Lambda): the facade is never sent, and subsegments begun under it are sent as
    /// independent subsegments with the facade's id (the header's `Parent`) as parent.
    ///
    /// Without a usable `Root` and `Parent` the facade is unsampled.
    pub fn begin_facade_segment(&self, header: &TraceHeader) -> Entity {
        let (root, parent) = match (header.root, header.parent) {
            (Some(r), Some(p)) => (r, p),
            _ => (TraceId::new(), EntityId::new()),
        };
        let sampled = self.inner.enabled
            && header.root.is_some()
            && header.parent.is_some()
            && header.sampled == Some(Sampled::Yes);
        Entity::new_segment(
            self.clone(),
            NewSegment {
                name: "facade",
                trace_id: root,
                parent_id: None,
                sampled,
                sampled_requested: false,
                extra: header.extra.clone(),
                tracestate: None,
                facade: true,
                id: Some(parent),
            },
            || None,
        )
    }

    /// Whether the sampler looks at the request's host, method or path.
    pub(crate) fn sampler_reads_request(&self) -> bool {
        self.inner.sampler.reads_request()
    }

    fn mark_plugins_done(&self) {
        let (lock, cond) = &self.inner.plugins_done;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cond.notify_all();
    }

    /// See [`Emitter::emit_borrowed`].
    pub(crate) fn emit_borrowed(&self, doc: &Document) -> bool {
        self.inner.emitter.emit_borrowed(doc)
    }

    pub(crate) fn emit(&self, doc: Document) {
        self.inner.emitter.emit(doc);
        crate::emitter::report_deferred();
    }

    /// Adds the blocks every segment carries: `aws.xray`, `service`, and plugin data.
    /// Attaches them by reference, rendered once: the emitter copies the rendered text when
    /// it serializes the document.
    pub(crate) fn decorate_segment(&self, doc: &mut Document) {
        doc.decoration = Some(
            self.inner
                .decoration
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        );
    }

    fn build_decoration(inner: &Inner, env: &RuntimeEnvironment) -> crate::document::Decoration {
        let mut aws = Map::new();
        aws.insert("xray".into(), inner.xray_block.clone());
        for (k, v) in &env.aws {
            aws.insert(k.clone(), v.clone());
        }
        crate::document::Decoration::new(aws, Some(inner.service_block.clone()), env.origin.clone())
    }
}
