//! The future returned by [`XRayMiddleware`](crate::XRayMiddleware).

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::Error;
use xray_core::context::{FutureExt, Instrumented};
use xray_core::document::{type_name_from_debug, Exception};
use xray_core::{Entity, EntityGuard};

use crate::body::ResponseBody;

pin_project_lite::pin_project! {
    /// Runs the wrapped service's future with the request's segment as the current one, then
    /// records the response head and hands the segment on to the [`ResponseBody`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        // Declared after `inner` so that a cancelled handler's own subsegments end before the
        // segment does. `None` when an outer `XRay` records the request, or once handed on.
        segment: Option<EntityGuard>,
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn new(inner: F, segment: Entity) -> Self {
        Self {
            inner: inner.with_entity(segment.clone()),
            segment: Some(segment.guard()),
        }
    }

    pub(crate) fn pass_through(inner: F, segment: Entity) -> Self {
        Self {
            inner: inner.with_entity(segment),
            segment: None,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("segment", &self.segment)
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
        let mut this = self.project();
        // actix-web does not catch handler panics: the connection's task unwinds and the
        // connection is dropped. Record the panic while its message is at hand.
        let polled = catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll(cx)));
        let result = match polled {
            Ok(poll) => ready!(poll),
            Err(payload) => {
                if let Some(segment) = this.segment.take() {
                    record_panic(&segment, payload.as_ref());
                }
                resume_unwind(payload)
            }
        };
        let Some(segment) = this.segment.take() else {
            return Poll::Ready(
                result.map(|res| res.map_body(|_, body| ResponseBody::new(body, None))),
            );
        };
        match result {
            Ok(mut res) => {
                let status = res.status();
                let content_length = match res.response().body().size() {
                    BodySize::None => Some(0),
                    BodySize::Sized(n) => Some(n),
                    BodySize::Stream => None,
                };
                segment.set_http_response(status.as_u16(), content_length);
                if let Some(err) = res.response().error() {
                    record_error(&segment, err, status);
                }
                let header = segment.response_header().to_header_string();
                match HeaderValue::try_from(header) {
                    Ok(value) => {
                        res.headers_mut().insert(
                            HeaderName::from_static(xray_core::header::HEADER_NAME),
                            value,
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "trace header is not a valid header value; not returned")
                    }
                }
                Poll::Ready(Ok(
                    res.map_body(move |_, body| ResponseBody::new(body, Some(segment)))
                ))
            }
            Err(err) => {
                // An error escaping the wrapped service: actix turns it into a response later,
                // outside this middleware. Record what it will become; the segment ends here.
                let status = err.as_response_error().status_code();
                segment.set_http_response(status.as_u16(), None);
                record_error(&segment, &err, status);
                drop(segment);
                Poll::Ready(Err(err))
            }
        }
    }
}

/// Records a handler error as the segment's cause: the message is the error's `Display`, the
/// type the leading name of its `Debug` (or the status reason when that has none). The status
/// already set `error` (4xx) or `fault` (5xx).
fn record_error(segment: &Entity, err: &Error, status: StatusCode) {
    if !segment.is_sampled() {
        return;
    }
    let kind = type_name_from_debug(err.as_response_error()).unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("actix_web::Error")
            .to_string()
    });
    segment.add_exceptions(
        vec![Exception::new(err.to_string(), kind)],
        status.is_server_error(),
    );
}

/// Records a panic as a fault with the panic's message; ending follows when the guard drops.
pub(crate) fn record_panic(segment: &Entity, payload: &(dyn Any + Send)) {
    segment.add_panic(payload);
}
