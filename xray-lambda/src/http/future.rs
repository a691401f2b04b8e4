//! The response future of [`XRayHttp`](crate::XRayHttp).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use lambda_http::{Body, IntoResponse, Response};
use xray_core::context::Instrumented;
use xray_core::lifecycle::Exchange;

use super::TracedResponse;
use crate::invocation::Invocation;

type Converting = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

pin_project_lite::pin_project! {
    /// The future of one invocation traced by [`XRayHttp`](crate::XRayHttp).
    ///
    /// Runs the handler with the invocation's subsegment as the current entity and converts
    /// its response to a `Response<Body>`, then records the status and length, ends the
    /// subsegment and the invocation, and flushes the emitter. If the handler fails or
    /// panics, or this future is dropped first, the subsegment ends here too (see
    /// [`xray_core::lifecycle`] for how each case is recorded).
    pub struct HttpResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        converting: Option<Converting>,
        // Ends before the invocation: the subsegment is sent before the emitter is flushed.
        exchange: Exchange,
        invocation: Invocation,
    }
}

impl<F> HttpResponseFuture<F> {
    pub(crate) fn new(inner: Instrumented<F>, exchange: Exchange, invocation: Invocation) -> Self {
        Self {
            inner,
            converting: None,
            exchange,
            invocation,
        }
    }
}

impl<F> fmt::Debug for HttpResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponseFuture")
            .field("exchange", &self.exchange)
            .field("invocation", &self.invocation)
            .finish_non_exhaustive()
    }
}

impl<F, R, E> Future for HttpResponseFuture<F>
where
    F: Future<Output = Result<R, E>>,
    R: IntoResponse,
    E: fmt::Display,
{
    type Output = Result<TracedResponse, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let converting = match this.converting {
            Some(converting) => converting,
            None => {
                // The handler first; then `lambda_http`'s conversion of its response.
                let inner = this.inner.as_mut();
                let exchange = &mut *this.exchange;
                let polled = this
                    .invocation
                    .catch_panic(|| exchange.catch_panic(|| inner.poll(cx)));
                match ready!(polled) {
                    Ok(response) => this.converting.insert(response.into_response()),
                    Err(error) => {
                        this.exchange
                            .fail_display(&error, std::any::type_name::<E>());
                        this.invocation.finish();
                        return Poll::Ready(Err(error));
                    }
                }
            }
        };
        let exchange = &mut *this.exchange;
        let polled = this
            .invocation
            .catch_panic(|| exchange.catch_panic(|| converting.as_mut().poll(cx)));
        let response = ready!(polled);
        *this.converting = None;
        if this.exchange.is_sampled() {
            let length = body_length(response.body());
            this.exchange.respond(response.status().as_u16(), length);
        }
        this.exchange.complete();
        this.invocation.finish();
        Poll::Ready(Ok(TracedResponse::new(response)))
    }
}

/// The length of a converted body (`lambda_http` bodies are whole in memory).
fn body_length(body: &Body) -> Option<u64> {
    match body {
        Body::Empty => Some(0),
        Body::Text(text) => Some(text.len() as u64),
        Body::Binary(bytes) => Some(bytes.len() as u64),
        _ => None,
    }
}
