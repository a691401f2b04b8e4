//! One invocation: the facade segment built from its trace header, ended (and the emitter
//! flushed) exactly once.

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use xray_core::{Entity, Recorder, TraceHeader};

/// The environment variable Lambda sets to the current invocation's trace header.
pub const TRACE_ENV: &str = "_X_AMZN_TRACE_ID";

/// How long to wait for the emitter after each invocation unless told otherwise.
pub(crate) const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_millis(100);

/// True when running inside AWS Lambda (`LAMBDA_TASK_ROOT` and `AWS_LAMBDA_FUNCTION_NAME` set).
pub fn is_lambda() -> bool {
    std::env::var_os("LAMBDA_TASK_ROOT").is_some()
        && std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

/// Begins the facade segment of one invocation from its trace header.
///
/// `trace_header` is the invocation's own (`Context::xray_trace_id`); without it the
/// `_X_AMZN_TRACE_ID` environment variable is read, which `lambda_runtime` sets for each
/// invocation when it runs them one at a time. Without a usable header (`Root` and `Parent`)
/// the facade is unsampled and nothing is recorded.
pub fn begin_invocation(recorder: &Recorder, trace_header: Option<&str>) -> Entity {
    let env_header = match trace_header {
        Some(_) => None,
        None => std::env::var(TRACE_ENV).ok(),
    };
    let raw = trace_header.or(env_header.as_deref());
    let header = TraceHeader::parse_or_warn(raw.map(str::as_bytes)).unwrap_or_default();
    recorder.begin_facade_segment(&header)
}

/// Ends the facade of an invocation and flushes the emitter, once: when the invocation's
/// future completes or panics, or when it is dropped unfinished. Lambda freezes the process
/// as soon as the handler's outcome is reported, so nothing may wait.
pub(crate) struct Invocation {
    /// `None` when the invocation's facade belongs to someone else (an outer layer).
    facade: Option<Entity>,
    flush_timeout: Duration,
}

impl Invocation {
    /// Begins an invocation: its facade (returned, to be made current) and the guard that
    /// ends it.
    pub(crate) fn begin(
        recorder: &Recorder,
        trace_header: Option<&str>,
        flush_timeout: Duration,
    ) -> (Entity, Self) {
        let facade = begin_invocation(recorder, trace_header);
        let guard = Self {
            facade: Some(facade.clone()),
            flush_timeout,
        };
        (facade, guard)
    }

    /// A guard for an invocation whose facade an outer layer ends: it does nothing.
    #[cfg(feature = "http")]
    pub(crate) fn nested() -> Self {
        Self {
            facade: None,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
        }
    }

    /// Runs `f` (a poll of the invocation's future); if it panics, ends the invocation before
    /// the panic goes on to the runtime, which reports it to Lambda right away.
    pub(crate) fn catch_panic<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(payload) => {
                self.finish();
                panic::resume_unwind(payload)
            }
        }
    }

    /// Ends the facade and waits for the emitter. Later calls do nothing.
    pub(crate) fn finish(&mut self) {
        let Some(facade) = self.facade.take() else {
            return;
        };
        facade.end();
        if facade.is_sampled() && !facade.recorder().flush(self.flush_timeout) {
            tracing::warn!("X-Ray emitter did not flush before the invocation ended");
        }
    }
}

impl Drop for Invocation {
    fn drop(&mut self) {
        self.finish();
    }
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("facade", &self.facade)
            .finish_non_exhaustive()
    }
}
