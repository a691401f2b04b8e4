//! The service for `lambda_runtime` handlers.

use std::task::{Context, Poll};

use lambda_runtime::LambdaEvent;
use xray_core::context;

use crate::future::InvocationFuture;
use crate::invocation::Invocation;
use crate::XRayLambdaLayer;

/// The service made by [`XRayLambdaLayer`].
#[derive(Debug, Clone)]
pub struct XRayLambda<S> {
    inner: S,
    layer: XRayLambdaLayer,
}

impl<S> XRayLambda<S> {
    pub(crate) fn new(inner: S, layer: XRayLambdaLayer) -> Self {
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
        let (facade, invocation) = Invocation::begin(
            self.layer.recorder(),
            event.context.xray_trace_id.as_deref(),
            self.layer.flush_timeout_or_default(),
        );
        let inner = &mut self.inner;
        let fut = context::sync_scope(facade.clone(), || inner.call(event));
        InvocationFuture::new(context::scope(facade, fut), invocation)
    }
}
