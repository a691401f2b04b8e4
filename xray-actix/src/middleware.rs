//! The [`XRay`] transform and the [`XRayMiddleware`] service it builds.

use std::fmt;
use std::future::{ready, Ready};
use std::sync::Arc;

use actix_service::{forward_ready, Service, Transform};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use xray_core::http::{IncomingRequest, ServerTracing};
use xray_core::lifecycle::Exchange;
use xray_core::{Entity, Recorder};

use crate::body::ResponseBody;
use crate::future::ResponseFuture;

/// Middleware that records one X-Ray segment per request.
///
/// Register it with [`App::wrap`] or [`Scope::wrap`]. It is a small `Arc`-backed value, cheap
/// to clone into each worker's `App`.
///
/// ```
/// use actix_web::{web, App, HttpResponse};
/// use xray_actix::XRay;
///
/// let app = App::new()
///     .wrap(XRay::new("checkout").with_dynamic_naming("*.example.com"))
///     .route("/", web::get().to(HttpResponse::Ok));
/// # drop(app);
/// ```
///
/// [`App::wrap`]: actix_web::App::wrap
/// [`Scope::wrap`]: actix_web::Scope::wrap
#[derive(Clone, Debug)]
#[must_use = "the middleware does nothing until it is registered with `App::wrap` or `Scope::wrap`"]
pub struct XRay {
    tracing: Arc<ServerTracing>,
}

impl XRay {
    /// Records segments named `name`. `AWS_XRAY_TRACING_NAME`, when set, replaces it.
    pub fn new(name: impl Into<String>) -> Self {
        Self::from_tracing(ServerTracing::new(name))
    }

    /// Uses fully configured [`ServerTracing`] settings.
    pub fn from_tracing(tracing: ServerTracing) -> Self {
        Self {
            tracing: Arc::new(tracing),
        }
    }

    /// Names segments after the request's `Host` (port left out) when it matches `pattern`
    /// (`*` any run, `?` one character, case-insensitive); other requests keep the fixed name.
    pub fn with_dynamic_naming(self, pattern: impl Into<String>) -> Self {
        self.map(|t| t.with_dynamic_naming(pattern))
    }

    /// Records with `recorder` instead of the process-wide [`Recorder::global`].
    pub fn with_recorder(self, recorder: Recorder) -> Self {
        self.map(|t| t.with_recorder(recorder))
    }

    /// Records the query string in `http.request.url`. Off by default: query strings often
    /// carry tokens and personal data.
    pub fn record_query(self, yes: bool) -> Self {
        self.map(|t| t.record_query(yes))
    }

    /// Continues W3C Trace Context traces: a request without a usable `X-Amzn-Trace-Id` but
    /// with a valid `traceparent` joins that trace (the W3C trace id becomes the X-Ray trace
    /// id, the parent span id the segment's parent, the sampled flag the decision). Off by
    /// default; `X-Amzn-Trace-Id` wins when both are present. See [`ServerTracing::accept_w3c`].
    pub fn accept_w3c(self, yes: bool) -> Self {
        self.map(|t| t.accept_w3c(yes))
    }

    /// The settings in use.
    pub fn tracing(&self) -> &ServerTracing {
        &self.tracing
    }

    fn map(self, f: impl FnOnce(ServerTracing) -> ServerTracing) -> Self {
        Self::from_tracing(f(Arc::unwrap_or_clone(self.tracing)))
    }
}

impl<S, B> Transform<S, ServiceRequest> for XRay
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = Error;
    type Transform = XRayMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(XRayMiddleware {
            service,
            tracing: self.tracing.clone(),
        }))
    }
}

/// The service built by [`XRay`] around the wrapped service.
pub struct XRayMiddleware<S> {
    service: S,
    tracing: Arc<ServerTracing>,
}

impl<S> XRayMiddleware<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.service
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.service
    }

    /// Gives back the wrapped service.
    pub fn into_inner(self) -> S {
        self.service
    }
}

impl<S> fmt::Debug for XRayMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRayMiddleware")
            .field("tracing", &self.tracing)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for XRayMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // An outer `XRay` (on the `App` while this one is on a `Scope`) already records this
        // request: keep its segment current and record nothing more.
        let outer = req.extensions().get::<Entity>().cloned();
        if let Some(segment) = outer {
            let fut = xray_core::context::sync_scope(segment.clone(), || self.service.call(req));
            let fut = xray_core::context::scope(segment, fut);
            return ResponseFuture::new(fut, Exchange::default());
        }

        // The trace header and the method decide most requests; the rest of the request is
        // read only when something needs it (a sampled request, rules on the host or path).
        let trace_header = xray_core::http::find_trace_header(
            req.headers()
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
        );
        let mut exchange = self
            .tracing
            .begin_lazy(trace_header, req.method().as_str(), || incoming(&req));
        if let Some(segment) = exchange.entity() {
            req.extensions_mut().insert(segment.clone());
        }
        let fut = exchange.sync_scope(|| self.service.call(req));
        ResponseFuture::new(exchange.scope(fut), exchange)
    }
}

/// Describes an actix request (http 0.2 types) with the plain strings xray-core expects.
fn incoming(req: &ServiceRequest) -> IncomingRequest<'_> {
    let uri = req.uri();
    let mut incoming = IncomingRequest {
        method: req.method().as_str(),
        scheme: if req.app_config().secure() {
            Some("https")
        } else {
            uri.scheme_str()
        },
        path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
        peer_ip: req.peer_addr().map(|a| a.ip()),
        ..IncomingRequest::default()
    };
    incoming.read_headers(
        req.headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    );
    if incoming.host.is_none() {
        incoming.host = uri.authority().map(|a| a.as_str());
    }
    incoming
}
