//! The futures returned by the services of this crate.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use xray_core::context::Instrumented;

use crate::invocation::Invocation;

#[cfg(feature = "http")]
pub use crate::http::future::HttpResponseFuture;

pin_project_lite::pin_project! {
    /// The future of one invocation traced by [`XRayLambda`](crate::XRayLambda).
    ///
    /// Runs the handler with the invocation's facade segment as the current entity, then ends
    /// the facade and flushes the emitter before handing the handler's output back (also when
    /// the handler panics or the future is dropped).
    pub struct InvocationFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        invocation: Invocation,
    }
}

impl<F> InvocationFuture<F> {
    pub(crate) fn new(inner: Instrumented<F>, invocation: Invocation) -> Self {
        Self { inner, invocation }
    }
}

impl<F> fmt::Debug for InvocationFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvocationFuture")
            .field("invocation", &self.invocation)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for InvocationFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        let out = ready!(this.invocation.catch_panic(|| inner.poll(cx)));
        this.invocation.finish();
        Poll::Ready(out)
    }
}
