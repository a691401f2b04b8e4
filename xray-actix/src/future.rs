//! The future returned by [`XRayMiddleware`](crate::XRayMiddleware).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::Error;
use xray_core::context::Instrumented;
use xray_core::document::{type_name_from_debug, Exception};
use xray_core::lifecycle::Exchange;

use crate::body::ResponseBody;

pin_project_lite::pin_project! {
    /// Runs the wrapped service's future with the request's segment as the current one, then
    /// records the response head and hands the request's [`Exchange`] on to the
    /// [`ResponseBody`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        // Declared after `inner` so that a cancelled handler's own subsegments end before the
        // segment does. Already ended when an outer `XRay` records the request.
        exchange: Exchange,
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn new(inner: Instrumented<F>, exchange: Exchange) -> Self {
        Self { inner, exchange }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<ResponseBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // actix-web does not catch handler panics: the connection's task unwinds and the
        // connection is dropped. The exchange records the panic while its message is at hand.
        let mut inner = this.inner;
        let result = ready!(this.exchange.catch_panic(|| inner.as_mut().poll(cx)));
        let mut exchange = this.exchange.take();
        match result {
            Ok(mut res) => {
                let status = res.status();
                let size = res.response().body().size();
                let content_length = match size {
                    BodySize::None => Some(0),
                    BodySize::Sized(n) => Some(n),
                    BodySize::Stream => None,
                };
                if let Some(value) = exchange
                    .response_header_bytes()
                    .and_then(|h| HeaderValue::from_maybe_shared(h).ok())
                {
                    res.headers_mut().insert(
                        HeaderName::from_static(xray_core::header::HEADER_NAME),
                        value,
                    );
                }
                exchange.respond(status.as_u16(), content_length);
                if let Some(err) = res.response().error() {
                    exchange.record_failure(handler_error(&exchange, err, status));
                }
                // actix never polls a body that has nothing to send.
                if matches!(size, BodySize::None | BodySize::Sized(0)) {
                    exchange.complete();
                }
                Poll::Ready(Ok(
                    res.map_body(move |_, body| ResponseBody::new(body, exchange))
                ))
            }
            Err(err) => {
                // An error escaping the wrapped service: actix turns it into a response later,
                // outside this middleware. Record what it will become; the exchange ends here.
                let status = err.as_response_error().status_code();
                exchange.respond(status.as_u16(), None);
                exchange.fail_with(handler_error(&exchange, &err, status));
                Poll::Ready(Err(err))
            }
        }
    }
}

/// A handler error as the cause: the message is the error's `Display`, the type the leading
/// name of its `Debug` (or the status reason when that has none). The status already set
/// `error` (4xx) or `fault` (5xx).
fn handler_error(exchange: &Exchange, err: &Error, status: StatusCode) -> Vec<Exception> {
    if !exchange.entity().is_some_and(|e| e.is_sampled()) {
        return Vec::new();
    }
    let kind = type_name_from_debug(err.as_response_error()).unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("actix_web::Error")
            .to_string()
    });
    vec![Exception::new(err.to_string(), kind)]
}
