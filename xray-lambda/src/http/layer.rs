//! The layer for `lambda_http` services.

use std::sync::Arc;
use std::time::Duration;

use xray_core::http::ServerTracing;
use xray_core::Recorder;

use crate::invocation::DEFAULT_FLUSH_TIMEOUT;
use crate::XRayHttp;

/// The subsegment name when neither the code nor the environment names one.
const FALLBACK_NAME: &str = "lambda_http";

/// Traces each invocation of a [`lambda_http`] function; one line where the function is built:
///
/// ```no_run
/// use lambda_http::{service_fn, tower::Layer, Error, Request};
/// use xray_lambda::XRayHttpLayer;
///
/// async fn handler(req: Request) -> Result<String, Error> {
///     Ok(format!("hello from {}", req.uri().path()))
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Error> {
///     lambda_http::run(XRayHttpLayer::new().layer(service_fn(handler))).await
/// }
/// ```
///
/// Lambda records the function's segment itself; each invocation gets a subsegment under it
/// (sent as an independent subsegment, with the function's segment as parent), following
/// Lambda's sampling decision. The subsegment records, like the server middlewares of
/// `xray-tower` and `xray-actix` (the same mapping, from [`xray_core::http`]):
///
/// - `http.request`: the method; the URL `scheme://host/path` that `lambda_http` built from
///   the event (the `Host` header or the API's domain name, the path, `X-Forwarded-Proto` or
///   `https`), without the query string unless [`record_query`](Self::record_query) is on;
///   the user agent; the client IP, which is the first address of `X-Forwarded-For` (with
///   `x_forwarded_for: true`), else the event's source IP (API Gateway's
///   `requestContext.identity.sourceIp` or `requestContext.http.sourceIp`);
/// - `http.response`: the status and the body's length;
/// - flags and cause by the rules of [`xray_core::lifecycle`]: 4xx `error`, 429 `error` and
///   `throttle`, 5xx `fault`; a handler error is a `fault` with the error as cause; a panic is
///   a `fault` with the panic's message (the panic goes on to the runtime).
///
/// The subsegment is current while the handler runs, so `xray_core::capture`, `xray-reqwest`
/// and `xray-aws-sdk` calls nest under it. After each invocation the emitter is flushed.
///
/// The trace header is the invocation's (`Context::xray_trace_id`), else the
/// `_X_AMZN_TRACE_ID` environment variable; never the request's `X-Amzn-Trace-Id`, whose
/// `Parent` is not the function's segment. When an entity is already current (the service
/// runs inside [`XRayLambdaLayer`](crate::XRayLambdaLayer)), the subsegment hangs under it
/// instead and that layer ends the invocation.
///
/// The handler's error type must implement `Display`, as `lambda_http::Error` and usual error
/// types do.
///
/// [`lambda_http`]: https://docs.rs/lambda_http
#[derive(Debug, Clone)]
#[must_use]
pub struct XRayHttpLayer {
    pub(crate) tracing: Arc<ServerTracing>,
    pub(crate) flush_timeout: Duration,
}

impl Default for XRayHttpLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl XRayHttpLayer {
    /// Subsegments named after the function (`AWS_LAMBDA_FUNCTION_NAME`, else
    /// `lambda_http`); `AWS_XRAY_TRACING_NAME`, when set, wins.
    pub fn new() -> Self {
        let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| FALLBACK_NAME.to_string());
        Self::named(name)
    }

    /// Subsegments named `name` (`AWS_XRAY_TRACING_NAME`, when set, wins).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            tracing: Arc::new(ServerTracing::new(name)),
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
        }
    }

    fn map_tracing(mut self, f: impl FnOnce(ServerTracing) -> ServerTracing) -> Self {
        self.tracing = Arc::new(f(Arc::unwrap_or_clone(self.tracing)));
        self
    }

    /// Uses this recorder instead of the process-wide one.
    pub fn with_recorder(self, recorder: Recorder) -> Self {
        self.map_tracing(|t| t.with_recorder(recorder))
    }

    /// Names subsegments after the request's host when it matches `pattern` (`*` and `?`,
    /// case ignored, port ignored).
    pub fn with_dynamic_naming(self, pattern: impl Into<String>) -> Self {
        self.map_tracing(|t| t.with_dynamic_naming(pattern))
    }

    /// Records the query string in `http.request.url` (off by default: queries often carry
    /// tokens and personal data; credential parameters are redacted either way).
    pub fn record_query(self, yes: bool) -> Self {
        self.map_tracing(|t| t.record_query(yes))
    }

    /// How long to wait for the emitter after each invocation (default 100 ms; sending to the
    /// local daemon takes microseconds).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }
}

impl<S> tower_layer::Layer<S> for XRayHttpLayer {
    type Service = XRayHttp<S>;

    fn layer(&self, inner: S) -> XRayHttp<S> {
        XRayHttp::new(inner, self.clone())
    }
}
