//! The response body: ends the segment when the last byte has been handed to the server.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use xray_core::{context, Entity};

use crate::outcome;

pin_project_lite::pin_project! {
    /// Response body of [`XRay`](crate::XRay).
    ///
    /// Forwards every frame of the inner body, polling it with the segment as the current
    /// entity (so streams that call other services still attach to the request). It ends
    /// the segment when the inner body reports its end, after its last frame, on an error
    /// (`fault`), on a panic (`fault`, then the panic continues), or when it is dropped
    /// before the end (`error`: the client went away).
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        segment: Option<Entity>,
        // Bytes sent so far, when the length was not known from the response head.
        counted: Option<u64>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(segment) = this.project().segment.take() {
                outcome::abandoned(
                    &segment,
                    "the response body was dropped before it was fully sent \
                     (the client went away or the connection closed)",
                    false,
                );
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, segment: Entity, count: bool) -> Self {
        Self {
            inner,
            segment: Some(segment),
            counted: count.then_some(0),
        }
    }

    /// A body with nothing left to record.
    pub(crate) fn untraced(inner: B) -> Self {
        Self {
            inner,
            segment: None,
            counted: None,
        }
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
        let mut this = self.project();
        let Some(segment) = this.segment.as_ref() else {
            return this.inner.poll_frame(cx);
        };
        let inner = this.inner.as_mut();
        let polled = panic::catch_unwind(AssertUnwindSafe(|| {
            context::sync_scope(segment.clone(), || inner.poll_frame(cx))
        }));
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result,
            Err(payload) => {
                if let Some(segment) = this.segment.take() {
                    outcome::panicked(&segment, &*payload);
                }
                panic::resume_unwind(payload)
            }
        };
        let done = match &result {
            None => true,
            Some(Ok(frame)) => {
                if let (Some(n), Some(data)) = (this.counted.as_mut(), frame.data_ref()) {
                    *n = n.saturating_add(data.remaining() as u64);
                }
                this.inner.is_end_stream()
            }
            Some(Err(error)) => {
                if let Some(segment) = this.segment.take() {
                    outcome::failed(&segment, error, false);
                }
                false
            }
        };
        if done {
            if let Some(segment) = this.segment.take() {
                if let Some(n) = *this.counted {
                    segment.set_content_length(n);
                }
                segment.end();
            }
        }
        Poll::Ready(result)
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

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("segment", &self.segment)
            .finish_non_exhaustive()
    }
}
