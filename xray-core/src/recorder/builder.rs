//! Building a recorder, and reading its environment variables.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{json, Map, Value};

use crate::daemon::DaemonAddress;
use crate::emitter::{Emitter, NoopEmitter};
use crate::plugins::RuntimeEnvironment;
use crate::sampling::{CentralizedSampler, LocalSampler, Sampler};

use super::{ConfigError, ContextMissing, IncomingSampled, Inner, Recorder, SDK_NAME, SDK_VERSION};

/// Builds a [`Recorder`]. Environment variables override what is set in code (SPEC §6);
/// invalid values in the environment are reported once and ignored.
#[derive(Default)]
#[must_use]
pub struct RecorderBuilder {
    service_name: Option<String>,
    service_version: Option<String>,
    daemon_address: Option<String>,
    sampler: Option<Arc<dyn Sampler>>,
    fallback_rules: Option<LocalSampler>,
    max_stack_frames: Option<usize>,
    redacted_query_params: Vec<String>,
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

/// The default sampler: through the X-Ray API, with the emitter's own SDK client, when
/// `XRAY_EXPORTER=xray-api` made the default emitter (`env_emitter`); through the daemon
/// otherwise.
fn default_centralized(
    daemon: &DaemonAddress,
    fallback: LocalSampler,
    env_emitter: bool,
) -> CentralizedSampler {
    #[cfg(feature = "xray-api")]
    {
        use crate::emitter::select::{Exporter, EXPORTER_ENV};
        let api = env_emitter
            && env_var(EXPORTER_ENV).and_then(|v| Exporter::parse(&v)) == Some(Exporter::XRayApi);
        if api {
            return crate::emitter::xray_api::env_sampler(daemon, fallback);
        }
    }
    let _ = env_emitter;
    CentralizedSampler::new(daemon, fallback)
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

    /// The sampler, replacing the default: centralized sampling, as in the official SDKs (a
    /// [`CentralizedSampler`] polling the daemon's TCP address, deciding with the
    /// [`fallback_rules`](Self::fallback_rules) until the daemon answers and whenever it
    /// cannot be reached). Give a [`LocalSampler`] here to keep decisions local.
    pub fn sampler(mut self, sampler: impl Sampler) -> Self {
        self.sampler = Some(Arc::new(sampler));
        self
    }

    /// The local rules of the default centralized sampler: they decide until the daemon's
    /// sampling API first answers, and whenever it cannot be reached (default: the X-Ray
    /// default rule, 1 request per second then 5 %). Ignored when [`sampler`](Self::sampler)
    /// is given.
    pub fn fallback_rules(mut self, rules: LocalSampler) -> Self {
        self.fallback_rules = Some(rules);
        self
    }

    /// How many stack frames a recorded panic or backtrace keeps per exception (default 10,
    /// as Python's `max_trace_back`; 0 records none). Panics always give their file and line;
    /// further frames come from backtraces, captured only when `RUST_BACKTRACE` or
    /// `RUST_LIB_BACKTRACE` enables them.
    pub fn max_stack_frames(mut self, n: usize) -> Self {
        self.max_stack_frames = Some(n);
        self
    }

    /// More query parameters whose values are redacted from recorded URLs, besides
    /// [`REDACTED_QUERY_PARAMS`](crate::http::REDACTED_QUERY_PARAMS) (the AWS presigned and
    /// signature parameters, `sig`). Matched without regard to ASCII case.
    pub fn redact_query_params<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.redacted_query_params
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// The sampler, shared.
    pub fn sampler_arc(mut self, sampler: Arc<dyn Sampler>) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// The emitter (default: the transport `XRAY_EXPORTER` names, see
    /// [`select`](crate::emitter::select); without it, a
    /// [`UdpEmitter`](crate::emitter::UdpEmitter) to the daemon address).
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

    pub(super) fn ignore_invalid(mut self) -> Self {
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

    pub(super) fn build_infallible(self) -> Recorder {
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
        let default_emitter = self.emitter.is_none();
        let emitter: Arc<dyn Emitter> = match (enabled, self.emitter) {
            (false, _) => Arc::new(NoopEmitter),
            (true, Some(e)) => e,
            (true, None) => crate::emitter::select::default_emitter(&daemon, from_env),
        };
        let sampler: Arc<dyn Sampler> = match self.sampler {
            Some(s) => s,
            None => {
                let fallback = self.fallback_rules.unwrap_or_default();
                if enabled {
                    // No delay at start: the fallback decides until the first rules arrive;
                    // the poller stops when the recorder is shut down or dropped.
                    let centralized =
                        default_centralized(&daemon, fallback, default_emitter && from_env);
                    centralized.start();
                    Arc::new(centralized)
                } else {
                    Arc::new(fallback)
                }
            }
        };
        let mut service_block = Map::new();
        if let Some(v) = self.service_version {
            service_block.insert("version".into(), Value::String(v));
        }
        service_block.insert("runtime".into(), Value::String("rust".into()));
        service_block.insert(
            "runtime_version".into(),
            Value::String(env!("XRAY_RUSTC_VERSION").into()),
        );
        if enabled && self.max_stack_frames != Some(0) {
            super::panics::install_hook();
        }
        let recorder = Recorder {
            inner: Arc::new(Inner {
                service_name,
                name_override,
                max_stack_frames: self
                    .max_stack_frames
                    .unwrap_or(crate::stack::DEFAULT_MAX_FRAMES),
                redacted_query_params: self.redacted_query_params,
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
                origin: std::sync::atomic::AtomicU8::new(super::ORIGIN_NONE),
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
