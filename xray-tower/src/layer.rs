//! The layer: configuration shared by every service it builds.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;
use xray_core::http::ServerTracing;
use xray_core::Recorder;

use crate::service::XRay;

/// A [`Layer`] that records an X-Ray segment for every request; see the
/// [crate docs](crate).
///
/// Cheap to clone: the settings sit behind an `Arc`.
///
/// [`Layer`]: tower_layer::Layer
#[must_use = "a layer does nothing until it wraps a service"]
#[derive(Clone)]
pub struct XRayLayer<OnReq = (), OnRes = ()> {
    pub(crate) tracing: Arc<ServerTracing>,
    pub(crate) on_request: OnReq,
    pub(crate) on_response: OnRes,
}

impl XRayLayer {
    /// Segments named `name`, unless dynamic naming picks the host or
    /// `AWS_XRAY_TRACING_NAME` replaces it. Recorded with the process-wide recorder
    /// ([`Recorder::global`]) unless [`with_recorder`](Self::with_recorder) says otherwise.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            tracing: Arc::new(ServerTracing::new(name)),
            on_request: (),
            on_response: (),
        }
    }
}

impl<OnReq, OnRes> XRayLayer<OnReq, OnRes> {
    /// Names each segment after the request's host when the host matches `pattern`
    /// (wildcards `*` and `?`, case-insensitive, port ignored); other requests keep the
    /// fixed name.
    pub fn with_dynamic_naming(mut self, pattern: impl Into<String>) -> Self {
        let t = Arc::make_mut(&mut self.tracing);
        *t = t.clone().with_dynamic_naming(pattern);
        self
    }

    /// Records with `recorder` instead of the process-wide one.
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        let t = Arc::make_mut(&mut self.tracing);
        *t = t.clone().with_recorder(recorder);
        self
    }

    /// Keeps the query string in `http.request.url`. Off by default: queries often carry
    /// tokens and personal data.
    pub fn record_query(mut self, yes: bool) -> Self {
        let t = Arc::make_mut(&mut self.tracing);
        *t = t.clone().record_query(yes);
        self
    }

    /// Continues W3C Trace Context traces: a request without a usable `X-Amzn-Trace-Id` but
    /// with a valid `traceparent` joins that trace (the W3C trace id becomes the X-Ray trace
    /// id, the parent span id the segment's parent, the sampled flag the decision). Off by
    /// default; `X-Amzn-Trace-Id` wins when both are present. See
    /// [`ServerTracing::accept_w3c`].
    pub fn accept_w3c(mut self, yes: bool) -> Self {
        let t = Arc::make_mut(&mut self.tracing);
        *t = t.clone().accept_w3c(yes);
        self
    }

    /// Calls `hook` with each sampled request and its segment; see [`OnRequest`].
    ///
    /// [`OnRequest`]: crate::OnRequest
    pub fn on_request<NewOnReq>(self, hook: NewOnReq) -> XRayLayer<NewOnReq, OnRes> {
        XRayLayer {
            tracing: self.tracing,
            on_request: hook,
            on_response: self.on_response,
        }
    }

    /// Calls `hook` with each sampled response head and its segment; see [`OnResponse`].
    ///
    /// [`OnResponse`]: crate::OnResponse
    pub fn on_response<NewOnRes>(self, hook: NewOnRes) -> XRayLayer<OnReq, NewOnRes> {
        XRayLayer {
            tracing: self.tracing,
            on_request: self.on_request,
            on_response: hook,
        }
    }

    /// The recorder segments go to.
    pub fn recorder(&self) -> &Recorder {
        self.tracing.recorder()
    }
}

impl<S, OnReq: Clone, OnRes: Clone> Layer<S> for XRayLayer<OnReq, OnRes> {
    type Service = XRay<S, OnReq, OnRes>;

    fn layer(&self, inner: S) -> Self::Service {
        XRay {
            inner,
            tracing: self.tracing.clone(),
            on_request: self.on_request.clone(),
            on_response: self.on_response.clone(),
        }
    }
}

impl<OnReq, OnRes> fmt::Debug for XRayLayer<OnReq, OnRes> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRayLayer")
            .field("tracing", &self.tracing)
            .field("on_request", &std::any::type_name::<OnReq>())
            .field("on_response", &std::any::type_name::<OnRes>())
            .finish()
    }
}
