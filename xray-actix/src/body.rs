//! The response body wrapper that ends the segment.

use std::error::Error as StdError;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use xray_core::EntityGuard;

use crate::future::record_panic;

pin_project_lite::pin_project! {
    /// Wraps a response body; the segment ends when the body is done, fails, or is dropped
    /// (the client went away mid-body).
    ///
    /// The body is polled with the segment as the current one, so streams that make outbound
    /// calls still find it. For bodies of unknown size (streams), the bytes actually sent are
    /// recorded as `http.response.content_length` when the segment ends.
    pub struct ResponseBody<B> {
        #[pin]
        body: B,
        segment: Option<EntityGuard>,
        // Bytes sent so far, when the size was not known in advance.
        counted: Option<u64>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // Fields drop after this, in order: the body, then the guard that ends the segment.
            let this = this.project();
            if let (Some(segment), Some(n)) = (this.segment.as_ref(), *this.counted) {
                segment.set_content_length(n);
            }
        }
    }
}

impl<B: MessageBody> ResponseBody<B> {
    pub(crate) fn new(body: B, segment: Option<EntityGuard>) -> Self {
        let counted = (segment.is_some() && matches!(body.size(), BodySize::Stream)).then_some(0);
        Self {
            body,
            segment,
            counted,
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("segment", &self.segment)
            .finish_non_exhaustive()
    }
}

impl<B: MessageBody> MessageBody for ResponseBody<B> {
    type Error = Box<dyn StdError>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut this = self.project();
        let Some(segment) = this.segment.as_ref() else {
            return this.body.poll_next(cx).map_err(Into::into);
        };
        let entity = segment.entity().clone();
        let polled = catch_unwind(AssertUnwindSafe(|| {
            xray_core::context::sync_scope(entity, || this.body.as_mut().poll_next(cx))
        }));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Some(Ok(chunk)))) => {
                if let Some(n) = this.counted.as_mut() {
                    *n += chunk.len() as u64;
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Ok(Poll::Ready(Some(Err(err)))) => {
                let err: Box<dyn StdError> = err.into();
                if let Some(segment) = this.segment.take() {
                    segment.add_error_dyn(&*err, std::any::type_name::<B::Error>(), false);
                    finish(segment, this.counted);
                }
                Poll::Ready(Some(Err(err)))
            }
            Ok(Poll::Ready(None)) => {
                if let Some(segment) = this.segment.take() {
                    finish(segment, this.counted);
                }
                Poll::Ready(None)
            }
            Err(payload) => {
                if let Some(segment) = this.segment.take() {
                    record_panic(&segment, payload.as_ref());
                    finish(segment, this.counted);
                }
                resume_unwind(payload)
            }
        }
    }
}

/// Records the bytes counted (streams only) and ends the segment.
fn finish(segment: EntityGuard, counted: &mut Option<u64>) {
    if let Some(n) = counted.take() {
        segment.set_content_length(n);
    }
    drop(segment);
}
