//! The service: opens a segment per request and runs the inner service inside it.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use xray_core::http::ServerTracing;
use xray_core::{context, Entity};

use crate::client_addr::peer_ip;
use crate::future::ResponseFuture;
use crate::on_request::OnRequest;
use crate::ResponseBody;

/// Middleware that records an X-Ray segment for every request; built by
/// [`XRayLayer`](crate::XRayLayer).
#[derive(Clone)]
pub struct XRay<S, OnReq = (), OnRes = ()> {
    pub(crate) inner: S,
    pub(crate) tracing: Arc<ServerTracing>,
    pub(crate) on_request: OnReq,
    pub(crate) on_response: OnRes,
}

impl<S, OnReq, OnRes> XRay<S, OnReq, OnRes> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, OnReq, OnRes, ReqBody, ResBody> Service<Request<ReqBody>> for XRay<S, OnReq, OnRes>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: http_body::Body,
    OnReq: OnRequest<ReqBody>,
    OnRes: crate::OnResponse<ResBody> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, OnRes>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let mut exchange = self
            .tracing
            .begin_http(req.method(), req.uri(), req.headers(), || {
                peer_ip(req.extensions())
            });
        if let Some(segment) = exchange.entity().filter(|s| s.is_sampled()) {
            self.on_request.on_request(&req, segment);
        }
        // Some services do work in `call` itself: make the segment current there too.
        let inner = &mut self.inner;
        let fut = exchange.sync_scope(|| inner.call(req));
        ResponseFuture::new(fut, exchange, self.on_response.clone())
    }
}

impl<S: fmt::Debug, OnReq, OnRes> fmt::Debug for XRay<S, OnReq, OnRes> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRay")
            .field("inner", &self.inner)
            .field("tracing", &self.tracing)
            .field("on_request", &std::any::type_name::<OnReq>())
            .field("on_response", &std::any::type_name::<OnRes>())
            .finish()
    }
}

/// The segment of the request being served.
///
/// The layer makes the segment current while the inner service runs (its `call`, its future
/// and its response body), so plain hyper or tower handlers reach it without the extractor:
///
/// ```
/// # async fn handler(req: http::Request<String>) -> Result<http::Response<String>, std::convert::Infallible> {
/// if let Some(segment) = xray_tower::segment(&req) {
///     segment.set_user("alice");
/// }
/// # Ok(http::Response::new(String::new()))
/// # }
/// ```
///
/// An [`Entity`] put in the request's extensions by the application wins; otherwise this is
/// the segment of the current entity ([`xray_core::current`]), even when a subsegment is
/// current. With the SDK disabled it is a no-op segment
/// ([`xray_core::context::current_or_disabled`]).
pub fn segment<B>(req: &Request<B>) -> Option<Entity> {
    request_segment(req.extensions())
}

pub(crate) fn request_segment(extensions: &http::Extensions) -> Option<Entity> {
    extensions
        .get::<Entity>()
        .cloned()
        .or_else(|| context::current_or_disabled().map(|e| e.segment()))
}
