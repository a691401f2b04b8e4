//! The `minimal` mode's middleware: the least work X-Ray asks of a server for a request that
//! is not sampled, done by hand, with none of the recorder.
//!
//! Per request it makes a new trace id (unless the request brings one) and segment id,
//! answers `X-Amzn-Trace-Id: Root=...` (written into a per-thread buffer, as xray-core does,
//! so no allocation of its own), and keeps the ids current in a thread-local while the
//! handler's `call`, its future and the response body are polled, so that calls made from
//! any of them could send `Sampled=0` on. It makes no sampling decision (a caller's
//! `Sampled=` is not read), records nothing, keeps no recorder and does not check how the
//! request ended. It is the floor under the X-Ray layer's `unsampled` mode: what is left
//! between the two is the layer's own bookkeeping.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::http::{HeaderName, HeaderValue, Request, Response};
use bytes::BytesMut;
use http_body::{Body, Frame, SizeHint};
use xray_core::{EntityId, TraceHeader, TraceId};

const TRACE_HEADER: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// What a call made while the request is served would propagate.
#[derive(Clone, Copy)]
struct Ids {
    trace: TraceId,
    segment: EntityId,
}

thread_local! {
    static CURRENT: Cell<Option<Ids>> = const { Cell::new(None) };
    static CHUNK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Runs `f` with `ids` current, putting back what was current before.
fn scope<R>(ids: Ids, f: impl FnOnce() -> R) -> R {
    let before = CURRENT.replace(Some(ids));
    let r = f();
    CURRENT.set(before);
    r
}

/// `Root=<trace id>`, cut from this thread's buffer.
fn response_header(trace: TraceId) -> HeaderValue {
    CHUNK.with_borrow_mut(|chunk| {
        if chunk.capacity() - chunk.len() < 40 {
            *chunk = BytesMut::with_capacity(2048);
        }
        chunk.extend_from_slice(b"Root=");
        chunk.extend_from_slice(&trace.to_bytes());
        let bytes = chunk.split().freeze();
        // SAFETY: `from_maybe_shared_unchecked` needs bytes valid in a header value (visible
        // ASCII). They are the literal `Root=` and `TraceId::to_bytes`: `1-`, hex digits and
        // a `-`.
        #[allow(unsafe_code)]
        unsafe {
            HeaderValue::from_maybe_shared_unchecked(bytes)
        }
    })
}

/// The layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct MinimalLayer;

impl<S> tower_layer::Layer<S> for MinimalLayer {
    type Service = Minimal<S>;
    fn layer(&self, inner: S) -> Minimal<S> {
        Minimal { inner }
    }
}

/// The service.
#[derive(Clone, Debug)]
pub struct Minimal<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for Minimal<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<MinimalBody<ResBody>>;
    type Error = S::Error;
    type Future = MinimalFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // A request that brings a usable trace header continues its trace (the benchmark's
        // requests bring none).
        let root = req
            .headers()
            .iter()
            .find(|(name, _)| name.as_str() == TRACE_HEADER.as_str())
            .and_then(|(_, value)| TraceHeader::parse_or_warn(Some(value.as_bytes())))
            .and_then(|header| header.root);
        let ids = Ids {
            trace: root.unwrap_or_else(TraceId::new),
            segment: EntityId::new(),
        };
        let inner = &mut self.inner;
        let fut = scope(ids, || inner.call(req));
        MinimalFuture { inner: fut, ids }
    }
}

pin_project_lite::pin_project! {
    /// The response future.
    pub struct MinimalFuture<F> {
        #[pin]
        inner: F,
        ids: Ids,
    }
}

impl<F, B, E> Future for MinimalFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<MinimalBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let ids = *this.ids;
        let mut inner = this.inner;
        let result = ready!(scope(ids, || inner.as_mut().poll(cx)));
        Poll::Ready(result.map(|mut res| {
            res.headers_mut()
                .insert(TRACE_HEADER, response_header(ids.trace));
            res.map(|inner| MinimalBody { inner, ids })
        }))
    }
}

pin_project_lite::pin_project! {
    /// The response body.
    pub struct MinimalBody<B> {
        #[pin]
        inner: B,
        ids: Ids,
    }
}

impl<B: Body> Body for MinimalBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        scope(*this.ids, || inner.as_mut().poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The trace id and segment id current on this thread: what a client middleware would put in
/// the `X-Amzn-Trace-Id` of a call (`Root=...;Parent=...;Sampled=0`).
pub fn current() -> Option<(TraceId, EntityId)> {
    CURRENT.get().map(|ids| (ids.trace, ids.segment))
}
