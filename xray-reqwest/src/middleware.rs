//! The middleware: one `remote` subsegment per outbound call, and the trace header.

use std::fmt;
use std::sync::Arc;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use xray_core::http::{begin_outbound, content_length, IgnoreRule, OutboundOptions, Parent};

use crate::failure::record_failure;

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
    options: OutboundOptions,
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
            .field("options", &self.options)
            .finish()
    }
}

// ===== impl XRayMiddleware =====

impl XRayMiddleware {
    /// Subsegments named after the URL's host, the query string recorded, and the trace
    /// header always set (one the caller set by hand is replaced).
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

    /// Records the query string in `http.request.url` (on by default; user info is never
    /// recorded). Turn it off when queries carry tokens or personal data.
    pub fn record_query(mut self, yes: bool) -> Self {
        self.options.record_query = yes;
        self
    }

    /// Replaces an `X-Amzn-Trace-Id` (and `traceparent`) header that the caller set on the
    /// request: on by default, as in the official SDKs. When off, such a header is sent as
    /// the caller wrote it, and the subsegment does not claim the callee is traced (`traced`
    /// is left out), since the callee will not name it as parent.
    pub fn overwrite_header(mut self, yes: bool) -> Self {
        self.options.overwrite_header = yes;
        self
    }

    /// Also sends a W3C `traceparent` header carrying the same trace id, parent and sampling
    /// decision as `X-Amzn-Trace-Id`, so that a callee instrumented with OpenTelemetry
    /// continues the trace. Off by default. A `traceparent` the caller set on the request is
    /// replaced unless [`overwrite_header`](Self::overwrite_header) is off.
    pub fn send_w3c(mut self, yes: bool) -> Self {
        self.options.send_w3c = yes;
        self
    }

    /// Leaves calls to hosts matching `pattern` alone (Python's `add_ignored(hostname=...)`):
    /// no subsegment, no trace header. The host is matched without the port; `*` and `?`
    /// are wildcards and case is ignored.
    ///
    /// ```
    /// use xray_reqwest::XRayMiddleware;
    ///
    /// let middleware = XRayMiddleware::new()
    ///     .ignore_host("*.internal")
    ///     .ignore_url("/health*");
    /// # drop(middleware);
    /// ```
    ///
    /// Calls to the recorder's daemon address are never recorded, with or without rules.
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
        self.options.ignore.push(rule);
        self
    }

    fn options_for(&self, req: &Request) -> std::borrow::Cow<'_, OutboundOptions> {
        let name = match &self.naming {
            Naming::Host => return std::borrow::Cow::Borrowed(&self.options),
            Naming::Fixed(name) => name.to_string(),
            Naming::PerRequest(f) => f(req),
        };
        std::borrow::Cow::Owned(OutboundOptions {
            name: Some(name),
            ..self.options.clone()
        })
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
        // An ignored call, or one without a parent or a current entity, goes out untouched;
        // `begin_outbound` reports a missing context (never failing the call, even under
        // RUNTIME_ERROR).
        let options = self.options_for(&req);
        let Some(mut call) =
            begin_outbound(parent, req.method().as_str(), req.url().as_str(), &options)
        else {
            return next.run(req, extensions).await;
        };
        call.inject(req.headers_mut());
        // If this future is dropped before the response arrives, dropping `call` records the
        // call as cancelled.
        let result = next.run(req, extensions).await;
        match &result {
            Ok(res) => call.finish(
                res.status().as_u16(),
                content_length(res.headers(), res.content_length()),
            ),
            Err(err) => record_failure(&mut call, err, self.options.record_query),
        }
        result
    }
}
