//! The response body: ends the segment when the last byte has been handed to the server.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use xray_core::http::grpc::GrpcCode;
use xray_core::lifecycle::Exchange;

pin_project_lite::pin_project! {
    /// Response body of [`XRay`](crate::XRay).
    ///
    /// Forwards every frame of the inner body, polling it with the segment as the current
    /// entity (so streams that call other services still attach to the request). It ends
    /// the request's exchange when the inner body reports its end, after its last frame, on
    /// an error, on a panic (the panic then continues), or when it is dropped before the end
    /// (the client went away); [`xray_core::lifecycle`] says how each is recorded. For a
    /// gRPC call it records the `grpc-status` of the trailers frame.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        exchange: Exchange,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, exchange: Exchange) -> Self {
        Self { inner, exchange }
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The inner body, mutably.
    pub fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let exchange = this.exchange;
        // The poll is returned as it came (no unwrapping and wrapping again): a frame is large
        // enough that each move of it shows.
        let poll = exchange.catch_panic_in_scope(|| inner.as_mut().poll_frame(cx));
        if let Poll::Ready(result) = &poll {
            let grpc = exchange.is_grpc_call();
            record_frame(exchange, result, grpc, || inner.is_end_stream());
        }
        poll
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What one poll of a response body means for its exchange, on either side: bytes counted,
/// a gRPC status read from the trailers (when `grpc`), the end of the body (`None`, or
/// `is_end_stream` after the frame) completing it, an error failing it.
pub(crate) fn record_frame<D: Buf, E: fmt::Display>(
    exchange: &mut Exchange,
    result: &Option<Result<Frame<D>, E>>,
    grpc: bool,
    is_end_stream: impl FnOnce() -> bool,
) {
    match result {
        None => exchange.complete(),
        Some(Ok(frame)) => {
            if let Some(data) = frame.data_ref() {
                exchange.add_body_bytes(data.remaining() as u64);
            } else if grpc {
                if let Some(code) = frame.trailers_ref().and_then(GrpcCode::from_headers) {
                    exchange.record_grpc_status(code);
                }
            }
            if is_end_stream() {
                exchange.complete();
            }
        }
        Some(Err(error)) => exchange.fail_display(error, std::any::type_name::<E>()),
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}
