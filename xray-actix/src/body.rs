//! The response body wrapper that ends the segment.

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use xray_core::lifecycle::Exchange;

pin_project_lite::pin_project! {
    /// Wraps a response body; the request's exchange ends when the body is done, fails, or is
    /// dropped (the client went away mid-body), by the rules of [`xray_core::lifecycle`].
    ///
    /// The body is polled with the segment as the current one, so streams that make outbound
    /// calls still find it. For bodies of unknown size (streams), the bytes actually sent are
    /// recorded as `http.response.content_length` when the segment ends.
    pub struct ResponseBody<B> {
        #[pin]
        body: B,
        exchange: Exchange,
    }
}

impl<B: MessageBody> ResponseBody<B> {
    pub(crate) fn new(body: B, exchange: Exchange) -> Self {
        Self { body, exchange }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("exchange", &self.exchange)
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
        let this = self.project();
        let mut body = this.body;
        let exchange = this.exchange;
        let polled = ready!(exchange.catch_panic_in_scope(|| body.as_mut().poll_next(cx)));
        Poll::Ready(match polled {
            Some(Ok(chunk)) => {
                exchange.add_body_bytes(chunk.len() as u64);
                Some(Ok(chunk))
            }
            Some(Err(err)) => {
                let err: Box<dyn StdError> = err.into();
                exchange.fail(&*err, std::any::type_name::<B::Error>());
                Some(Err(err))
            }
            None => {
                exchange.complete();
                None
            }
        })
    }
}
