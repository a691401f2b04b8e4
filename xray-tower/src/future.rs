//! The response future returned by [`XRay`](crate::XRay).

use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::Response;
use http_body::Body;
use xray_core::context::Instrumented;
use xray_core::Entity;

use crate::on_response::OnResponse;
use crate::outcome;
use crate::ResponseBody;

pub use crate::client::ClientResponseFuture;

const TRACE_HEADER: HeaderName = HeaderName::from_static(xray_core::header::HEADER_NAME);

pin_project_lite::pin_project! {
    /// Response future of [`XRay`](crate::XRay).
    ///
    /// Runs the inner future with the segment as the current entity. When the response head
    /// is ready it records the status and length, adds the `X-Amzn-Trace-Id` response header
    /// and hands the segment to the [`ResponseBody`], which ends it. If the inner service
    /// fails or panics, or this future is dropped first, it ends the segment itself.
    pub struct ResponseFuture<F, OnRes> {
        #[pin]
        inner: Instrumented<F>,
        segment: Option<Entity>,
        on_response: OnRes,
    }

    impl<F, OnRes> PinnedDrop for ResponseFuture<F, OnRes> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(segment) = this.project().segment.take() {
                outcome::abandoned(
                    &segment,
                    "the request was dropped before a response was produced \
                     (the client went away, or an outer layer gave up on it)",
                    false,
                );
            }
        }
    }
}

impl<F, OnRes> ResponseFuture<F, OnRes> {
    pub(crate) fn new(inner: Instrumented<F>, segment: Entity, on_response: OnRes) -> Self {
        Self {
            inner,
            segment: Some(segment),
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
        let inner = this.inner;
        let result = match panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => ready!(poll),
            Err(payload) => {
                if let Some(segment) = this.segment.take() {
                    outcome::panicked(&segment, &*payload);
                }
                panic::resume_unwind(payload)
            }
        };
        let Some(segment) = this.segment.take() else {
            // Only reachable when polled again after completion, which the inner future
            // would not allow anyway: pass the result through untouched.
            return Poll::Ready(result.map(|res| res.map(ResponseBody::untraced)));
        };
        match result {
            Ok(mut res) => {
                if let Ok(value) =
                    HeaderValue::try_from(segment.response_header().to_header_string())
                {
                    res.headers_mut().insert(TRACE_HEADER, value);
                }
                let mut count_body = false;
                if segment.is_sampled() {
                    let length = content_length(&res);
                    count_body = length.is_none();
                    segment.set_http_response(res.status().as_u16(), length);
                    this.on_response.on_response(&res, &segment);
                }
                if res.body().is_end_stream() {
                    segment.end();
                    return Poll::Ready(Ok(res.map(ResponseBody::untraced)));
                }
                Poll::Ready(Ok(
                    res.map(|body| ResponseBody::new(body, segment, count_body))
                ))
            }
            Err(error) => {
                outcome::failed(&segment, &error, false);
                Poll::Ready(Err(error))
            }
        }
    }
}

fn content_length<B: Body>(res: &Response<B>) -> Option<u64> {
    res.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
        .or_else(|| res.body().size_hint().exact())
}

impl<F, OnRes> fmt::Debug for ResponseFuture<F, OnRes> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("segment", &self.segment)
            .finish_non_exhaustive()
    }
}
