//! The client side: a layer for outbound HTTP calls made with tower or hyper-util clients.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::HOST;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;
use xray_core::http::grpc::{is_grpc_message, GrpcCode};
use xray_core::http::{
    begin_outbound, content_length, IgnoreRule, OutboundCall, OutboundOptions, Parent,
};
use xray_core::lifecycle::Exchange;

use crate::body::record_frame;

/// A [`Layer`] for HTTP clients: records each outbound call as a `remote` subsegment of the
/// current entity and sends the trace header along.
///
/// The parent is the [`Parent`] in the request's extensions when there is one, else the
/// current entity ([`xray_core::current`]). Without either the request goes out untouched, as
/// does a call that is [ignored](XRayClientLayer::ignore_host) or goes to the recorder's
/// daemon.
/// The subsegment is named after the URL's host and ends when the response head arrives
/// (`http.response.status`, `content_length`, and the flags the status implies), with
/// `fault` and the error as cause when the call fails, or with `error` and a `Cancelled`
/// cause when it is dropped before an answer (the rules of [`xray_core::lifecycle`], shared
/// with `xray-reqwest` and `xray-aws-sdk`).
///
/// # gRPC calls
///
/// A call whose request says `content-type: application/grpc*` (every tonic call) is over
/// when its status is, and that usually comes in the trailers, after the last message. So
/// for gRPC, and only for gRPC, the subsegment stays open past the response head: the
/// response body ([`ClientResponseBody`]) records the trailers' `grpc-status` (the flags it
/// implies and the code, see [`xray_core::lifecycle`]) and ends the subsegment at the end of
/// the stream, with the bytes received as `content_length`. A trailers-only response (an
/// error before any message) ends it at the head. A caller that drops the stream before its
/// end records the call as cancelled (`error`, a `Cancelled` cause). Other calls end at the
/// head as above; their body goes through untouched.
///
/// tonic's `Channel` fills in the scheme and host itself, so the layer sees only the path
/// (`/package.Service/Method`): give the client its origin (`Grpc::with_origin`, or the
/// generated client's `with_origin`) to record the full URL and name the subsegment after
/// the host, or name it with [`with_name`](XRayClientLayer::with_name).
///
/// ```
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
/// let traced = tower::ServiceBuilder::new()
///     .layer(xray_tower::XRayClientLayer::new())
///     .service(client);
/// # drop(traced);
/// # }
/// ```
///
/// [`Layer`]: tower_layer::Layer
#[must_use = "a layer does nothing until it wraps a service"]
#[derive(Clone, Debug, Default)]
pub struct XRayClientLayer {
    options: Arc<OutboundOptions>,
}

impl XRayClientLayer {
    /// Subsegments named after the host, URL recorded with its query (without user info).
    pub fn new() -> Self {
        Self::default()
    }

    /// Names every subsegment `name` instead of the host.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.options).name = Some(name.into());
        self
    }

    /// Records the query string in `http.request.url` (on by default; user info is never
    /// recorded). Turn it off when queries carry tokens or personal data.
    pub fn record_query(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.options).record_query = yes;
        self
    }

    /// Replaces trace headers already set on the request (on by default). When off, an
    /// `X-Amzn-Trace-Id` set by the caller is sent as written and the subsegment does not
    /// claim the callee is traced.
    pub fn overwrite_header(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.options).overwrite_header = yes;
        self
    }

    /// Also sends a W3C `traceparent` header carrying the same trace id, parent and sampling
    /// decision as `X-Amzn-Trace-Id`, so that a callee instrumented with OpenTelemetry
    /// continues the trace. Off by default.
    pub fn send_w3c(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.options).send_w3c = yes;
        self
    }

    /// Leaves calls to hosts matching `pattern` alone (Python's `add_ignored(hostname=...)`):
    /// no subsegment, no trace header. The host is matched without the port; `*` and `?`
    /// are wildcards and case is ignored. Calls to the recorder's daemon address are never
    /// recorded, with or without rules.
    ///
    /// ```
    /// let layer = xray_tower::XRayClientLayer::new()
    ///     .ignore_host("*.internal")
    ///     .ignore_url("/health*");
    /// # drop(layer);
    /// ```
    pub fn ignore_host(self, pattern: impl Into<String>) -> Self {
        self.ignore(IgnoreRule::new().host(pattern))
    }

    /// Leaves calls whose URL path matches `pattern` alone (Python's
    /// `add_ignored(urls=[...])`, with wildcards): no subsegment, no trace header. The path is
    /// matched without the query string.
    pub fn ignore_url(self, pattern: impl Into<String>) -> Self {
        self.ignore(IgnoreRule::new().url(pattern))
    }

    /// Leaves calls matching every part of `rule` alone, e.g.
    /// `IgnoreRule::new().host("api.example.com").url("/ping").method("GET")`. See
    /// [`xray_core::http::IgnoreRules`] for the matching rules.
    pub fn ignore(mut self, rule: IgnoreRule) -> Self {
        Arc::make_mut(&mut self.options).ignore.push(rule);
        self
    }
}

impl<S> Layer<S> for XRayClientLayer {
    type Service = XRayClient<S>;

    fn layer(&self, inner: S) -> XRayClient<S> {
        XRayClient {
            inner,
            options: self.options.clone(),
        }
    }
}

/// Middleware for HTTP clients built by [`XRayClientLayer`].
#[derive(Clone, Debug)]
pub struct XRayClient<S> {
    inner: S,
    options: Arc<OutboundOptions>,
}

impl<S> XRayClient<S> {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for XRayClient<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: Body,
{
    type Response = Response<ClientResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ClientResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let parent = req.extensions().get::<Parent>().map(|p| p.0.clone());
        let url = target_url(&req);
        let call = begin_outbound(parent, req.method().as_str(), &url, &self.options);
        if let Some(call) = &call {
            call.inject(req.headers_mut());
        }
        // Unsampled calls record nothing: they end at the head, gRPC or not.
        let grpc = call
            .as_ref()
            .and_then(OutboundCall::subsegment)
            .is_some_and(|s| s.is_sampled())
            && is_grpc_message(req.headers());
        ClientResponseFuture {
            inner: self.inner.call(req),
            call,
            grpc,
        }
    }
}

/// The absolute URL of an outbound request; `http://<Host header><path>` when the URI is
/// only a path.
fn target_url<B>(req: &Request<B>) -> String {
    let uri = req.uri();
    if uri.scheme().is_some() && uri.authority().is_some() {
        return uri.to_string();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    match req.headers().get(HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}{path}"),
        None => path.to_string(),
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`XRayClient`]. Dropping it before the response arrives records
    /// the call as cancelled.
    pub struct ClientResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<OutboundCall>,
        grpc: bool,
    }
}

impl<F, B, E> Future for ClientResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
    B: Body,
{
    type Output = Result<Response<ClientResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(call) = this.call.as_mut() else {
            return Poll::Ready(result.map(|res| res.map(ClientResponseBody::untraced)));
        };
        let res = match result {
            Ok(res) => res,
            Err(error) => {
                call.fail_display(&error, std::any::type_name::<E>());
                return Poll::Ready(Err(error));
            }
        };
        let status = res.status().as_u16();
        let length = content_length(res.headers(), res.body().size_hint().exact());
        if !*this.grpc {
            call.finish(status, length);
            return Poll::Ready(Ok(res.map(ClientResponseBody::untraced)));
        }
        // gRPC: the call is over when its status is.
        let mut exchange = call.exchange().take();
        exchange.respond(status, length);
        let trailers_only = GrpcCode::from_headers(res.headers());
        if let Some(code) = trailers_only {
            exchange.record_grpc_status(code);
        }
        if trailers_only.is_some() || res.body().is_end_stream() {
            exchange.complete();
        }
        Poll::Ready(Ok(res.map(|body| ClientResponseBody {
            inner: body,
            exchange,
        })))
    }
}

pin_project_lite::pin_project! {
    /// Response body of [`XRayClient`].
    ///
    /// Passes every frame through. For a gRPC call it holds the call's subsegment open
    /// until the end of the stream: it records the `grpc-status` of the trailers frame and
    /// the bytes received, and ends the subsegment when the stream ends, fails (`fault`, the
    /// error as a remote cause) or is dropped before its end (`error`, `Cancelled`). Other
    /// calls ended at the response head and their body is not looked at.
    pub struct ClientResponseBody<B> {
        #[pin]
        inner: B,
        exchange: Exchange,
    }
}

impl<B> ClientResponseBody<B> {
    fn untraced(inner: B) -> Self {
        Self {
            inner,
            exchange: Exchange::default(),
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

    /// Unwraps the inner body. A gRPC call still waiting for its end is recorded as
    /// cancelled: nothing will read its trailers for it.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for ClientResponseBody<B>
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
        let exchange = this.exchange;
        if !exchange.is_open() {
            return this.inner.poll_frame(cx);
        }
        let mut inner = this.inner;
        let result = ready!(exchange.catch_panic(|| inner.as_mut().poll_frame(cx)));
        record_frame(exchange, &result, true, || inner.is_end_stream());
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

impl<B> fmt::Debug for ClientResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponseBody")
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Debug for ClientResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponseFuture")
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}
