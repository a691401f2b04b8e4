//! The service for `lambda_http` handlers.

use std::fmt;
use std::task::{Context, Poll};

use lambda_http::{IntoResponse, Request, RequestExt};
use tower_service::Service;
use xray_core::context;

use super::future::HttpResponseFuture;
use super::request::incoming;
use super::TracedResponse;
use crate::invocation::Invocation;
use crate::XRayHttpLayer;

/// The service made by [`XRayHttpLayer`].
#[derive(Debug, Clone)]
pub struct XRayHttp<S> {
    inner: S,
    layer: XRayHttpLayer,
}

impl<S> XRayHttp<S> {
    pub(crate) fn new(inner: S, layer: XRayHttpLayer) -> Self {
        Self { inner, layer }
    }

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

impl<S> Service<Request> for XRayHttp<S>
where
    S: Service<Request>,
    S::Response: IntoResponse,
    S::Error: fmt::Display,
{
    type Response = TracedResponse;
    type Error = S::Error;
    type Future = HttpResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let tracing = &self.layer.tracing;
        // Inside `XRayLambdaLayer` the invocation's facade is already current.
        let (parent, invocation) = match xray_core::current() {
            Some(current) => (current, Invocation::nested()),
            None => Invocation::begin(
                tracing.recorder(),
                req.lambda_context_ref()
                    .and_then(|c| c.xray_trace_id.as_deref()),
                self.layer.flush_timeout,
            ),
        };
        let exchange = tracing.begin_subsegment(&parent, &incoming(&req));
        let subsegment = exchange.entity().cloned();
        let inner = &mut self.inner;
        let fut = context::maybe_sync_scope(subsegment.clone(), || inner.call(req));
        HttpResponseFuture::new(context::maybe_scope(subsegment, fut), exchange, invocation)
    }
}
