//! The middleware: one `remote` subsegment per outbound call, and the trace header.

use std::fmt;
use std::sync::Arc;

use http::Extensions;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use xray_core::http::{begin_outbound, end_outbound, OutboundCall, OutboundOptions};
use xray_core::w3c::TRACEPARENT;
use xray_core::{context, header::HEADER_NAME};

use crate::failure::record_failure;
use crate::parent::Parent;

/// Records every call made through a [`reqwest_middleware`] client as a `remote` subsegment of
/// the current X-Ray segment, and sends the trace header downstream.
///
/// ```
/// use xray_reqwest::XRayMiddleware;
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(XRayMiddleware::new())
///     .build();
/// # drop(client);
/// ```
///
/// See the [crate documentation](crate) for what is recorded and when.
#[derive(Clone, Default)]
#[must_use = "a middleware does nothing until it is added to a client with `ClientBuilder::with`"]
pub struct XRayMiddleware {
    naming: Naming,
    strip_query: bool,
    overwrite_header: bool,
    send_w3c: bool,
}

/// How subsegments are named.
#[derive(Clone, Default)]
enum Naming {
    /// After the URL's host (the default).
    #[default]
    Host,
    /// One name for every call.
    Fixed(Arc<str>),
    /// Chosen per request.
    PerRequest(Arc<dyn Fn(&Request) -> String + Send + Sync>),
}

impl fmt::Debug for XRayMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let naming: &dyn fmt::Debug = match &self.naming {
            Naming::Host => &"host",
            Naming::Fixed(name) => name,
            Naming::PerRequest(_) => &"per request",
        };
        f.debug_struct("XRayMiddleware")
            .field("naming", naming)
            .field("strip_query", &self.strip_query)
            .field("overwrite_header", &self.overwrite_header)
            .field("send_w3c", &self.send_w3c)
            .finish()
    }
}

// ===== impl XRayMiddleware =====

impl XRayMiddleware {
    /// Subsegments named after the URL's host, the query string recorded, and a trace header
    /// set by the caller left alone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names every subsegment `name` instead of the URL's host, e.g. the downstream service's
    /// name when it is reached through changing hosts.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.naming = Naming::Fixed(name.into().into());
        self
    }

    /// Names each subsegment with `f`, called once per request before it is sent.
    ///
    /// ```
    /// use xray_reqwest::XRayMiddleware;
    ///
    /// // "GET api.example.com"
    /// let middleware = XRayMiddleware::new().with_name_fn(|req: &reqwest::Request| {
    ///     format!("{} {}", req.method(), req.url().host_str().unwrap_or("remote"))
    /// });
    /// # drop(middleware);
    /// ```
    pub fn with_name_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&Request) -> String + Send + Sync + 'static,
    {
        self.naming = Naming::PerRequest(Arc::new(f));
        self
    }

    /// Leaves the query string out of the recorded `http.request.url` (it is recorded by
    /// default; user info is never recorded). Use it when queries carry tokens or personal
    /// data.
    pub fn strip_query(mut self, yes: bool) -> Self {
        self.strip_query = yes;
        self
    }

    /// Replaces an `X-Amzn-Trace-Id` header that the caller set on the request. By default such
    /// a header is sent as the caller wrote it, and the subsegment does not claim the callee is
    /// traced (`traced` is left out), since the callee will not name it as parent.
    pub fn overwrite_header(mut self, yes: bool) -> Self {
        self.overwrite_header = yes;
        self
    }

    /// Also sends a W3C `traceparent` header carrying the same trace id, parent and sampling
    /// decision as `X-Amzn-Trace-Id`, so that a callee instrumented with OpenTelemetry
    /// continues the trace. Off by default. A `traceparent` the caller set on the request is
    /// kept unless [`overwrite_header`](Self::overwrite_header) is on.
    pub fn send_w3c(mut self, yes: bool) -> Self {
        self.send_w3c = yes;
        self
    }

    fn options_for(&self, req: &Request) -> OutboundOptions {
        let name = match &self.naming {
            Naming::Host => None,
            Naming::Fixed(name) => Some(name.to_string()),
            Naming::PerRequest(f) => Some(f(req)),
        };
        OutboundOptions {
            name,
            strip_query: self.strip_query,
            send_w3c: self.send_w3c,
        }
    }

    /// Sets the trace header on the request, unless the caller set one and overwriting is off.
    fn inject(&self, req: &mut Request, call: &OutboundCall) {
        if self.overwrite_header || !req.headers().contains_key(TRACEPARENT) {
            call.insert_w3c_headers(req.headers_mut());
        }
        let name = HeaderName::from_static(HEADER_NAME);
        if !self.overwrite_header && req.headers().contains_key(&name) {
            not_traced(call);
            return;
        }
        match HeaderValue::from_str(&call.header) {
            Ok(value) => {
                req.headers_mut().insert(name, value);
            }
            Err(_) => {
                // Extra pairs come from an incoming header and were text then; this cannot
                // happen in practice, but a bad value must not fail the call.
                tracing::warn!(
                    header = %call.header,
                    "X-Ray trace header is not a valid header value; sending the request without it"
                );
                not_traced(call);
            }
        }
    }
}

#[async_trait::async_trait]
impl Middleware for XRayMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let parent = extensions.get::<Parent>().map(|p| p.0.clone());
        if parent.is_none() && !context::has_current() {
            // Tracing never fails the call: RUNTIME_ERROR logs here instead of panicking.
            xray_core::report_missing_context("outbound HTTP call");
            return next.run(req, extensions).await;
        }
        let options = self.options_for(&req);
        let Some(call) =
            begin_outbound(parent, req.method().as_str(), req.url().as_str(), &options)
        else {
            return next.run(req, extensions).await;
        };
        self.inject(&mut req, &call);

        // Ends the subsegment if this future is dropped before the response arrives (the
        // caller gave up). Ending twice is harmless, so the normal path below needs no disarm.
        let _ends_on_drop = call.subsegment.clone().guard();
        let result = next.run(req, extensions).await;
        match &result {
            Ok(res) => end_outbound(&call, res.status().as_u16(), content_length(res)),
            Err(err) => record_failure(&call, err, self.strip_query),
        }
        result
    }
}

/// The response body's length: the `Content-Length` header, else reqwest's exact size hint.
/// Unknown for chunked bodies.
fn content_length(res: &Response) -> Option<u64> {
    res.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| res.content_length())
}

/// The header that goes out is not ours: the callee will not name our subsegment as parent.
fn not_traced(call: &OutboundCall) {
    call.subsegment.with_document(|d| {
        if let Some(request) = d.http.request.as_mut() {
            request.traced = false;
        }
    });
}
