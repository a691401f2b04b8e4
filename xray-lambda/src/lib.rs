//! AWS X-Ray for functions on AWS Lambda.
//!
//! Lambda records the function's segment itself and hands each invocation a trace header
//! (`Root`, `Parent` = the function's segment, `Sampled`). [`XRayLambdaLayer`] turns that header
//! into a *facade* segment that is never sent: subsegments begun during the invocation —
//! [`capture`](xray_core::capture), `xray-reqwest` calls, `xray-aws-sdk` calls — are sent as
//! independent subsegments under the function's segment, following Lambda's sampling decision.
//! After each invocation the emitter is flushed, because Lambda freezes the process as soon as
//! the handler returns.
//!
//! ```no_run
//! use lambda_runtime::{service_fn, Error, LambdaEvent};
//! use tower::ServiceBuilder;
//! use xray_lambda::XRayLambdaLayer;
//!
//! async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<serde_json::Value, Error> {
//!     let n = xray_core::capture("compute", || 6 * 7);
//!     Ok(serde_json::json!({ "answer": n, "request": event.context.request_id }))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let service = ServiceBuilder::new()
//!         .layer(XRayLambdaLayer::new())
//!         .service(service_fn(handler));
//!     lambda_runtime::run(service).await
//! }
//! ```
//!
//! The trace header comes from the invocation's context (`Context::xray_trace_id`), else from
//! the `_X_AMZN_TRACE_ID` environment variable. Without a usable header (`Root` and `Parent`),
//! nothing is recorded and the handler runs unchanged.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use lambda_runtime::LambdaEvent;
use xray_core::{context, Entity, Recorder, TraceHeader};

pub use xray_core;

/// The environment variable Lambda sets to the current invocation's trace header.
pub const TRACE_ENV: &str = "_X_AMZN_TRACE_ID";

/// True when running inside AWS Lambda (`LAMBDA_TASK_ROOT` and `AWS_LAMBDA_FUNCTION_NAME` set).
pub fn is_lambda() -> bool {
    std::env::var_os("LAMBDA_TASK_ROOT").is_some()
        && std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

/// Begins the facade segment of one invocation from its trace header.
pub fn begin_invocation(recorder: &Recorder, trace_header: Option<&str>) -> Entity {
    let env_header = std::env::var(TRACE_ENV).ok();
    let raw = trace_header.or(env_header.as_deref());
    let header = TraceHeader::parse_or_warn(raw.map(str::as_bytes)).unwrap_or_default();
    recorder.begin_facade_segment(&header)
}

/// Traces each invocation of a `lambda_runtime` service; see the [crate docs](crate).
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
}

impl<S> tower_layer::Layer<S> for XRayLambdaLayer {
    type Service = XRayLambda<S>;
    fn layer(&self, inner: S) -> XRayLambda<S> {
        XRayLambda {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`XRayLambdaLayer`].
#[derive(Debug, Clone)]
pub struct XRayLambda<S> {
    inner: S,
    layer: XRayLambdaLayer,
}

impl<S> XRayLambda<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T> tower_service::Service<LambdaEvent<T>> for XRayLambda<S>
where
    S: tower_service::Service<LambdaEvent<T>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InvocationFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<T>) -> Self::Future {
        let recorder = self
            .layer
            .recorder
            .clone()
            .unwrap_or_else(|| Recorder::global().clone());
        let facade = begin_invocation(&recorder, event.context.xray_trace_id.as_deref());
        let fut = context::sync_scope(facade.clone(), || self.inner.call(event));
        InvocationFuture {
            inner: context::FutureExt::with_entity(fut, facade.clone()),
            facade: Some(facade),
            recorder,
            flush_timeout: self
                .layer
                .flush_timeout
                .unwrap_or(Duration::from_millis(100)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of one traced invocation.
    pub struct InvocationFuture<F> {
        #[pin]
        inner: context::Instrumented<F>,
        facade: Option<Entity>,
        recorder: Recorder,
        flush_timeout: Duration,
    }
}

impl<F> std::fmt::Debug for InvocationFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvocationFuture")
            .field("facade", &self.facade)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for InvocationFuture<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Some(facade) = this.facade.take() {
            facade.end();
            if facade.is_sampled() && !this.recorder.flush(*this.flush_timeout) {
                tracing::warn!("X-Ray emitter did not flush before the invocation ended");
            }
        }
        Poll::Ready(out)
    }
}
