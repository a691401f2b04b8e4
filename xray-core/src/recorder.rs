//! The recorder: configuration, segment creation, and hand-over to the emitter.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::daemon::{DaemonAddress, DaemonAddressError};
use crate::document::Document;
use crate::emitter::{Emitter, EmitterStats, NoopEmitter, UdpEmitter};
use crate::entity::{Entity, NewSegment};
use crate::header::{Sampled, TraceHeader};
use crate::id::{EntityId, TraceId};
use crate::sampling::{LocalSampler, Sampler, SamplingRequest};

/// The SDK name written in `aws.xray.sdk`.
pub const SDK_NAME: &str = "X-Ray for Rust";
/// This crate's version, written in `aws.xray.sdk_version`.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What happens when code asks for the current segment where there is none
/// (`AWS_XRAY_CONTEXT_MISSING`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContextMissing {
    /// Log an error through `tracing` and carry on (the default, `LOG_ERROR`).
    #[default]
    LogError,
    /// Panic (`RUNTIME_ERROR`). Functions returning `Result`, such as
    /// [`try_current`](crate::try_current), return an error instead.
    RuntimeError,
    /// Carry on silently (`IGNORE_ERROR`).
    IgnoreError,
}

impl ContextMissing {
    /// Parses `LOG_ERROR`, `RUNTIME_ERROR` or `IGNORE_ERROR` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "LOG_ERROR" => Some(Self::LogError),
            "RUNTIME_ERROR" => Some(Self::RuntimeError),
            "IGNORE_ERROR" => Some(Self::IgnoreError),
            _ => None,
        }
    }
}

/// How an incoming `Sampled=1` from a caller is treated.
///
/// `Sampled=0` is followed whatever the policy.
///
/// ```
/// use xray_core::{IncomingSampled, Recorder};
///
/// // A public endpoint: follow at most 10 caller-forced samples per second.
/// let recorder = Recorder::builder()
///     .incoming_sampled(IncomingSampled::cap(10))
///     .ignore_env()
///     .build()
///     .unwrap();
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IncomingSampled {
    /// The caller's decision is followed (the X-Ray convention; the default).
    #[default]
    Trust,
    /// `Sampled=1` is treated like no decision: the local sampler decides. Use it on public
    /// endpoints, where callers could otherwise force every request to be traced.
    Ignore,
    /// `Sampled=1` is followed for at most so many requests per second; beyond that the
    /// sampler decides, as for [`Ignore`](Self::Ignore).
    Cap(crate::sampling::SampledCap),
}

impl IncomingSampled {
    /// [`Cap`](Self::Cap) with a new budget of `per_second` caller-forced samples per second.
    pub fn cap(per_second: u32) -> Self {
        Self::Cap(crate::sampling::SampledCap::new(per_second))
    }
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The daemon address given in code is invalid.
    #[error(transparent)]
    DaemonAddress(#[from] DaemonAddressError),
}

/// Data that plugins found about where the service runs.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct RuntimeEnvironment {
    /// `origin`, e.g. `AWS::ECS::Container`.
    pub origin: Option<String>,
    /// Blocks for `aws` (`ec2`, `ecs`, `eks`, `elastic_beanstalk`).
    pub aws: Map<String, Value>,
}

struct Inner {
    service_name: String,
    /// `AWS_XRAY_TRACING_NAME`, read once here for every name chosen in code.
    name_override: Option<String>,
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

    /// Waits until documents emitted so far are sent, at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.inner.emitter.flush(timeout)
    }

    /// Stops the sampler's background work and flushes the emitter.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.inner.sampler.shutdown();
        self.flush(timeout)
    }

    /// The subsegment count above which completed subsegments are sent early.
    pub fn streaming_threshold(&self) -> usize {
        self.inner.streaming_threshold
    }

    /// Sets what plugins found about the runtime environment; applied to every segment sent
    /// from now on.
    pub fn set_runtime_environment(&self, env: RuntimeEnvironment) {
        let decoration = Arc::new(Self::build_decoration(&self.inner, &env));
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
        self.begin_segment_w3c(name, header, request, None)
    }

    /// [`begin_segment_with`](Self::begin_segment_with), keeping the W3C `tracestate` that
    /// came with the trace so that outbound calls forward it.
    pub(crate) fn begin_segment_w3c(
        &self,
        name: &str,
        header: Option<&TraceHeader>,
        request: &SamplingRequest<'_>,
        tracestate: Option<&str>,
    ) -> Entity {
        let incoming = header.and_then(|h| h.sampled);
        let sampled = match (incoming, &self.inner.incoming_sampled) {
            _ if !self.inner.enabled => false,
            (Some(Sampled::No), _) => false,
            (Some(Sampled::Yes), IncomingSampled::Trust) => true,
            (Some(Sampled::Yes), IncomingSampled::Cap(cap)) if cap.admit() => true,
            _ => {
                let env = self.runtime_environment();
                let mut req = *request;
                if req.service_type.is_none() {
                    req.service_type = env.origin.as_deref();
                }
                self.inner.sampler.should_sample(&req).sampled
            }
        };
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
                sampled_requested: incoming == Some(Sampled::Requested),
                extra,
                tracestate: tracestate.map(Box::from),
                facade: false,
                id: None,
            },
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
        )
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
        self.inner.emitter.emit(doc)
    }

    /// Adds the blocks every segment carries: `aws.xray`, `service`, and plugin data.
    /// Attaches them by reference: the emitter writes them out, off the request path.
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

/// Builds a [`Recorder`]. Environment variables override what is set in code (SPEC §6);
/// invalid values in the environment are reported once and ignored.
#[derive(Default)]
#[must_use]
pub struct RecorderBuilder {
    service_name: Option<String>,
    service_version: Option<String>,
    daemon_address: Option<String>,
    sampler: Option<Arc<dyn Sampler>>,
    emitter: Option<Arc<dyn Emitter>>,
    context_missing: Option<ContextMissing>,
    incoming_sampled: IncomingSampled,
    streaming_threshold: Option<usize>,
    enabled: Option<bool>,
    ignore_env: bool,
    ignore_invalid: bool,
    plugins: Vec<crate::plugins::Plugin>,
    plugin_sources: Option<crate::plugins::PluginSources>,
}

impl fmt::Debug for RecorderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecorderBuilder")
            .field("service_name", &self.service_name)
            .field("daemon_address", &self.daemon_address)
            .finish_non_exhaustive()
    }
}

fn warn_once(var: &str, value: &str, expected: &str) {
    static WARNED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut g = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if g.get_or_insert_with(HashSet::new).insert(var.to_string()) {
        let shown: String = value.chars().take(100).collect();
        tracing::warn!("ignoring invalid {var}={shown:?}: expected {expected}");
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl RecorderBuilder {
    /// The default segment name (`AWS_XRAY_TRACING_NAME` overrides it).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// The service version written in each segment's `service.version`.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// The daemon address, `host:port` or `tcp:host:port udp:host:port`
    /// (`AWS_XRAY_DAEMON_ADDRESS` overrides it).
    pub fn daemon_address(mut self, address: impl Into<String>) -> Self {
        self.daemon_address = Some(address.into());
        self
    }

    /// The sampler (default: [`LocalSampler::default`]).
    pub fn sampler(mut self, sampler: impl Sampler) -> Self {
        self.sampler = Some(Arc::new(sampler));
        self
    }

    /// The sampler, shared.
    pub fn sampler_arc(mut self, sampler: Arc<dyn Sampler>) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// The emitter (default: [`UdpEmitter`] to the daemon address).
    pub fn emitter(mut self, emitter: impl Emitter) -> Self {
        self.emitter = Some(Arc::new(emitter));
        self
    }

    /// The context-missing strategy (`AWS_XRAY_CONTEXT_MISSING` overrides it).
    pub fn context_missing(mut self, strategy: ContextMissing) -> Self {
        self.context_missing = Some(strategy);
        self
    }

    /// How an incoming `Sampled=1` is treated (default: trusted).
    pub fn incoming_sampled(mut self, policy: IncomingSampled) -> Self {
        self.incoming_sampled = policy;
        self
    }

    /// Send completed subsegments early once a segment holds more than `n` (default 30).
    pub fn streaming_threshold(mut self, n: usize) -> Self {
        self.streaming_threshold = Some(n);
        self
    }

    /// Turns recording on or off (`AWS_XRAY_SDK_ENABLED` overrides it).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }

    /// Detects where the service runs (see [`plugins`](crate::plugins)); resolved in the
    /// background after `build`.
    pub fn plugins(mut self, plugins: impl IntoIterator<Item = crate::plugins::Plugin>) -> Self {
        self.plugins.extend(plugins);
        self
    }

    /// Where the plugins look (metadata endpoints, files); defaults to the real locations.
    pub fn plugin_sources(mut self, sources: crate::plugins::PluginSources) -> Self {
        self.plugin_sources = Some(sources);
        self
    }

    /// Ignores the environment variables; for tests that must not depend on them.
    pub fn ignore_env(mut self) -> Self {
        self.ignore_env = true;
        self
    }

    fn ignore_invalid(mut self) -> Self {
        self.ignore_invalid = true;
        self
    }

    /// Builds the recorder. Fails only for an invalid daemon address given in code.
    pub fn build(self) -> Result<Recorder, ConfigError> {
        if !self.ignore_invalid {
            if let Some(a) = &self.daemon_address {
                DaemonAddress::parse(a)?;
            }
        }
        Ok(self.build_infallible())
    }

    fn build_infallible(self) -> Recorder {
        let from_env = !self.ignore_env;
        let mut enabled = self.enabled.unwrap_or(true);
        let mut service_name = self.service_name.unwrap_or_else(|| "service".to_string());
        let mut context_missing = self.context_missing.unwrap_or_default();
        let mut name_override = None;
        let mut daemon = self
            .daemon_address
            .as_deref()
            .and_then(|a| DaemonAddress::parse(a).ok())
            .unwrap_or_default();
        if from_env {
            if let Some(v) = env_var("AWS_XRAY_SDK_ENABLED") {
                match v.trim().to_ascii_lowercase().as_str() {
                    "false" | "0" | "no" => enabled = false,
                    "true" | "1" | "yes" => enabled = true,
                    _ => warn_once("AWS_XRAY_SDK_ENABLED", &v, "true or false"),
                }
            }
            if let Some(v) = env_var("AWS_XRAY_TRACING_NAME") {
                service_name.clone_from(&v);
                name_override = Some(v);
            }
            if let Some(v) = env_var("AWS_XRAY_CONTEXT_MISSING") {
                match ContextMissing::parse(&v) {
                    Some(c) => context_missing = c,
                    None => warn_once(
                        "AWS_XRAY_CONTEXT_MISSING",
                        &v,
                        "LOG_ERROR, RUNTIME_ERROR or IGNORE_ERROR",
                    ),
                }
            }
            if let Some(v) = env_var("AWS_XRAY_DAEMON_ADDRESS") {
                match DaemonAddress::parse(&v) {
                    Ok(a) => daemon = a,
                    Err(e) => warn_once("AWS_XRAY_DAEMON_ADDRESS", &v, &e.to_string()),
                }
            }
        }
        let emitter: Arc<dyn Emitter> = match (enabled, self.emitter) {
            (false, _) => Arc::new(NoopEmitter),
            (true, Some(e)) => e,
            (true, None) => Arc::new(UdpEmitter::new(&daemon)),
        };
        let sampler = self
            .sampler
            .unwrap_or_else(|| Arc::new(LocalSampler::default()));
        let mut service_block = Map::new();
        if let Some(v) = self.service_version {
            service_block.insert("version".into(), Value::String(v));
        }
        service_block.insert("runtime".into(), Value::String("rust".into()));
        service_block.insert(
            "runtime_version".into(),
            Value::String(env!("XRAY_RUSTC_VERSION").into()),
        );
        let recorder = Recorder {
            inner: Arc::new(Inner {
                service_name,
                name_override,
                enabled,
                sampler,
                emitter,
                context_missing,
                incoming_sampled: self.incoming_sampled,
                streaming_threshold: self.streaming_threshold.unwrap_or(30),
                daemon,
                xray_block: json!({"sdk": SDK_NAME, "sdk_version": SDK_VERSION}),
                service_block,
                environment: RwLock::new(Arc::new(RuntimeEnvironment::default())),
                decoration: RwLock::new(Arc::default()),
                plugins_done: (
                    Mutex::new(self.plugins.is_empty()),
                    std::sync::Condvar::new(),
                ),
            }),
        };
        recorder.set_runtime_environment(RuntimeEnvironment::default());
        if !self.plugins.is_empty() {
            let plugins = self.plugins;
            let sources = self.plugin_sources.unwrap_or_default();
            let r = recorder.clone();
            let spawned = std::thread::Builder::new()
                .name("xray-plugins".into())
                .spawn(move || {
                    let env = crate::plugins::resolve(&plugins, &sources);
                    r.set_runtime_environment(env);
                    r.mark_plugins_done();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start X-Ray plugin resolution");
                recorder.mark_plugins_done();
            }
        }
        recorder
    }
}
