//! The layer for `lambda_runtime` services.

use std::time::Duration;

use xray_core::Recorder;

use crate::invocation::DEFAULT_FLUSH_TIMEOUT;
use crate::XRayLambda;

/// Traces each invocation of a `lambda_runtime` service; see the [crate docs](crate).
///
/// Each invocation gets a facade segment from its trace header, current while the handler
/// runs, so that the subsegments begun in it are sent under the function's segment.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct XRayLambdaLayer {
    recorder: Option<Recorder>,
    flush_timeout: Option<Duration>,
}

impl XRayLambdaLayer {
    /// A layer using the process-wide recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses this recorder instead of the process-wide one.
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// How long to wait for the emitter after each invocation (default 100 ms; sending to the
    /// local daemon takes microseconds).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = Some(timeout);
        self
    }

    pub(crate) fn recorder(&self) -> &Recorder {
        self.recorder.as_ref().unwrap_or_else(|| Recorder::global())
    }

    pub(crate) fn flush_timeout_or_default(&self) -> Duration {
        self.flush_timeout.unwrap_or(DEFAULT_FLUSH_TIMEOUT)
    }
}

impl<S> tower_layer::Layer<S> for XRayLambdaLayer {
    type Service = XRayLambda<S>;

    fn layer(&self, inner: S) -> XRayLambda<S> {
        XRayLambda::new(inner, self.clone())
    }
}
