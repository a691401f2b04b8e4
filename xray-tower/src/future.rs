//! The response future returned by [`XRay`](crate::XRay).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::header::HeaderName;
use http::Response;
use http_body::Body;
use xray_core::http::content_length;
use xray_core::http::grpc::GrpcCode;
use xray_core::lifecycle::Exchange;

use crate::on_response::OnResponse;
use crate::ResponseBody;

pub use crate::client::ClientResponseFuture;

const TRACE_HEADER: HeaderName = HeaderName::from_static(xray_core::header::HEADER_NAME);

pin_project_lite::pin_project! {
    /// Response future of [`XRay`](crate::XRay).
    ///
    /// Runs the inner future with the segment as the current entity. When the response head
    /// is ready it records the status and length (and, for a gRPC call answered
    /// trailers-only, its `grpc-status`), adds the `X-Amzn-Trace-Id` response header
    /// and hands the request's [`Exchange`] to the [`ResponseBody`], which ends it. If the
    /// inner service fails or panics, or this future is dropped first, the exchange ends here
    /// (see [`xray_core::lifecycle`] for how each case is recorded).
    pub struct ResponseFuture<F, OnRes> {
        #[pin]
        inner: F,
        exchange: Exchange,
        on_response: OnRes,
    }
}

impl<F, OnRes> ResponseFuture<F, OnRes> {
    pub(crate) fn new(inner: F, exchange: Exchange, on_response: OnRes) -> Self {
        Self {
            inner,
            exchange,
            on_response,
        }
    }
}

impl<F, OnRes, B, E> Future for ResponseFuture<F, OnRes>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
    B: Body,
    OnRes: OnResponse<B>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        if this.exchange.entity().is_none() {
            // Nothing to record (the SDK is disabled): only the body wrapper to put in place.
            let result = ready!(this.exchange.sync_scope(|| inner.as_mut().poll(cx)));
            let exchange = this.exchange.take();
            return Poll::Ready(
                result.map(|res| res.map(|body| ResponseBody::new(body, exchange))),
            );
        }
        // The exchange lends its entity to the context for the poll: no clone of it to carry.
        let result = ready!(this
            .exchange
            .catch_panic_in_scope(|| inner.as_mut().poll(cx)));
        let mut exchange = this.exchange.take();
        match result {
            Ok(mut res) => {
                if let Some(value) = exchange.response_header_value() {
                    res.headers_mut().insert(TRACE_HEADER, value);
                }
                // Unsampled requests record nothing: do not even read the length.
                let length = if exchange.is_sampled() {
                    content_length(res.headers(), res.body().size_hint().exact())
                } else {
                    None
                };
                exchange.respond(res.status().as_u16(), length);
                if exchange.is_grpc_call() {
                    // A trailers-only response: the status is in the head.
                    if let Some(code) = GrpcCode::from_headers(res.headers()) {
                        exchange.record_grpc_status(code);
                    }
                }
                if let Some(segment) = exchange.entity().filter(|s| s.is_sampled()) {
                    this.on_response.on_response(&res, segment);
                }
                if res.body().is_end_stream() {
                    exchange.complete();
                }
                Poll::Ready(Ok(res.map(|body| ResponseBody::new(body, exchange))))
            }
            Err(error) => {
                exchange.fail_display(&error, std::any::type_name::<E>());
                Poll::Ready(Err(error))
            }
        }
    }
}

impl<F, OnRes> fmt::Debug for ResponseFuture<F, OnRes> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}
