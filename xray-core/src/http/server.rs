//! The server side: settings shared by the server adapters, and the start of a request.

use std::net::IpAddr;

use crate::document::{HttpRequest, SmolStr};
use crate::entity::Entity;
use crate::header::TraceHeader;
use crate::id::TraceId;
use crate::lifecycle::Exchange;
use crate::naming::DynamicNaming;
use crate::recorder::Recorder;
use crate::sampling::SamplingRequest;
use smol_str::ToSmolStr;

use super::incoming::{after_userinfo, IncomingRequest};

/// Server-side settings shared by the server adapters.
#[derive(Clone, Debug)]
pub struct ServerTracing {
    recorder: Option<Recorder>,
    naming: DynamicNaming,
    record_query: bool,
    accept_w3c: bool,
}

impl ServerTracing {
    /// Segments named `name` (or `AWS_XRAY_TRACING_NAME` when set, as read by the recorder).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            recorder: None,
            naming: DynamicNaming::fixed(name),
            record_query: false,
            accept_w3c: false,
        }
    }

    /// Names segments after the request's host when it matches `pattern` (port ignored).
    pub fn with_dynamic_naming(mut self, pattern: impl Into<String>) -> Self {
        self.naming = DynamicNaming::new(self.naming.fallback().to_string(), pattern);
        self
    }

    /// Uses this recorder instead of the process-wide one.
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Records the query string in `http.request.url` (off by default: queries often carry
    /// tokens and personal data).
    pub fn record_query(mut self, yes: bool) -> Self {
        self.record_query = yes;
        self
    }

    /// Continues W3C Trace Context traces: a request without a usable `X-Amzn-Trace-Id` but
    /// with a valid `traceparent` joins that trace (see the
    /// [module docs](crate::http#w3c-trace-context)). Off by default, since it changes which
    /// requests start a new trace. `X-Amzn-Trace-Id` wins when both are present.
    pub fn accept_w3c(mut self, yes: bool) -> Self {
        self.accept_w3c = yes;
        self
    }

    /// The trace header the request continues: `X-Amzn-Trace-Id` when usable, else (with
    /// [`accept_w3c`](Self::accept_w3c)) `traceparent` converted. `None` starts a new trace.
    pub fn incoming_header(&self, req: &IncomingRequest<'_>) -> Option<TraceHeader> {
        let xray = TraceHeader::parse_or_warn(req.trace_header);
        if xray.is_some() || !self.accept_w3c {
            return xray;
        }
        let value = req.traceparent?;
        match crate::w3c::from_traceparent(value) {
            Ok(h) => {
                warn_once_if_not_xray_epoch(&h);
                Some(h)
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unusable traceparent header; starting a new trace");
                None
            }
        }
    }

    /// The incoming `tracestate`, when W3C is accepted and the `traceparent` it came with
    /// names the trace being continued (an `X-Amzn-Trace-Id` for another trace wins, and the
    /// state of a trace we do not continue is not passed on).
    fn tracestate_to_keep<'r>(
        &self,
        req: &IncomingRequest<'r>,
        continued: Option<&TraceHeader>,
    ) -> Option<&'r str> {
        if !self.accept_w3c {
            return None;
        }
        let state = crate::w3c::forwardable_tracestate(req.tracestate?)?;
        let root = continued?.root?;
        let w3c = crate::w3c::from_traceparent(req.traceparent?).ok()?;
        (w3c.root == Some(root)).then_some(state)
    }

    /// The recorder in use.
    pub fn recorder(&self) -> &Recorder {
        self.recorder.as_ref().unwrap_or_else(|| Recorder::global())
    }

    /// Begins recording a request: parses the trace header, decides sampling, begins the
    /// segment and records `http.request`. The adapter makes
    /// [`Exchange::entity`] current while the request is served and ends the exchange
    /// through it (see [`crate::lifecycle`] for the rules).
    pub fn begin(&self, req: &IncomingRequest<'_>) -> Exchange {
        let head = req.method == "HEAD";
        if self.is_off() {
            return self.begin_disabled(req.trace_header, head);
        }
        server_exchange(self.begin_segment(req), head, req.is_grpc_call())
    }

    /// Like [`begin`](Self::begin), reading the request only when something needs more than
    /// its trace header and method: `trace_header` is the raw `X-Amzn-Trace-Id` value,
    /// `method` the method, and `read` describes the rest of the request (its `trace_header`
    /// is not read: the one given here is). `read` is called for a
    /// sampled request (to record `http.request`), or before deciding when dynamic naming,
    /// W3C Trace Context or a sampler with rules on the host, method or path needs the rest;
    /// most requests under the default rule never call it. For adapters whose request type
    /// is not `http` 1's (with it, use [`begin_http`](Self::begin_http)).
    pub fn begin_lazy<'r>(
        &self,
        trace_header: Option<&'r [u8]>,
        method: &'r str,
        read: impl FnOnce() -> IncomingRequest<'r>,
    ) -> Exchange {
        let head = method == "HEAD";
        let recorder = self.recorder();
        if !self.accept_w3c {
            if !recorder.is_enabled() {
                return self.begin_disabled(trace_header, head);
            }
            if !self.naming.is_dynamic() && !recorder.sampler_reads_request() {
                return self.begin_short(recorder, trace_header, method, head, read);
            }
        }
        let req = IncomingRequest {
            trace_header,
            ..read()
        };
        self.begin(&req)
    }

    /// The short path of [`begin_http`](Self::begin_http) and
    /// [`begin_lazy`](Self::begin_lazy), when nothing but the trace header decides how the
    /// request is recorded (enabled, no W3C, fixed name, a sampler that reads no more): the
    /// rest of the request is read, by `read`, only when it is sampled.
    #[inline]
    fn begin_short<'r>(
        &self,
        recorder: &Recorder,
        trace_header: Option<&[u8]>,
        method: &str,
        head: bool,
        read: impl FnOnce() -> IncomingRequest<'r>,
    ) -> Exchange {
        let header = TraceHeader::parse_or_warn(trace_header);
        let name = recorder
            .tracing_name_override()
            .unwrap_or(self.naming.fallback());
        let sampling = SamplingRequest::new(name).method(Some(method));
        let sampled = recorder.decide(header.as_ref().and_then(|h| h.sampled), &sampling);
        if !sampled && header.is_none() {
            // Most requests under the default rule: a new trace that records nothing. Built
            // here rather than by `begin_segment_decided`, whose call costs about 60 more.
            let segment = Entity::new_light_segment(recorder.clone(), TraceId::new());
            return Exchange::server(segment).without_body(head);
        }
        // Read with the other headers of a sampled request, in the same pass.
        let grpc = std::cell::Cell::new(false);
        let segment = recorder.begin_segment_decided(name, header.as_ref(), sampled, None, || {
            let req = read();
            grpc.set(req.is_grpc_call());
            Some(self.http_request(recorder, req))
        });
        server_exchange(segment, head, grpc.get())
    }

    /// The SDK is disabled and W3C headers are not read: only an incoming `X-Amzn-Trace-Id`
    /// matters, to pass on to the calls the request makes.
    #[inline]
    fn is_off(&self) -> bool {
        !self.accept_w3c && !self.recorder().is_enabled()
    }

    /// With the SDK disabled: a request that brings a trace header keeps it (an unsampled
    /// segment carries it to the calls made while the request is served and to the
    /// response); one without gets [`Exchange::disabled`], which costs nothing.
    fn begin_disabled(&self, trace_header: Option<&[u8]>, head: bool) -> Exchange {
        if trace_header.is_none() {
            return Exchange::disabled();
        }
        let Some(header) = TraceHeader::parse_or_warn(trace_header) else {
            return Exchange::disabled();
        };
        let segment = self
            .recorder()
            .begin_segment(self.naming.fallback(), Some(&header));
        Exchange::server(segment).without_body(head)
    }

    /// Like [`begin`](Self::begin), for adapters that end the segment themselves: returns the
    /// segment alone.
    pub fn begin_segment(&self, req: &IncomingRequest<'_>) -> Entity {
        self.begin_segment_then(req, |r| *r)
    }

    /// Begins recording a request given as `http` 1 parts: what a tower or hyper adapter
    /// calls. `peer_ip` is asked only when the request is sampled (it is recorded as the
    /// client IP without `X-Forwarded-For`). With the SDK disabled only the trace header is
    /// read, for the response and for calls made while the request is served.
    pub fn begin_http(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        peer_ip: impl FnOnce() -> Option<IpAddr>,
    ) -> Exchange {
        let head = method == http::Method::HEAD;
        let trace_header =
            || super::find_trace_header(headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
        let recorder = self.recorder();
        if !self.accept_w3c {
            if !recorder.is_enabled() {
                return self.begin_disabled(trace_header(), head);
            }
            if !self.naming.is_dynamic() && !recorder.sampler_reads_request() {
                return self.begin_short(recorder, trace_header(), method.as_str(), head, || {
                    IncomingRequest {
                        peer_ip: peer_ip(),
                        ..IncomingRequest::from_parts(method, uri, headers)
                    }
                });
            }
        }
        let req = IncomingRequest::from_parts(method, uri, headers);
        let segment = self.begin_segment_then(&req, |r| IncomingRequest {
            peer_ip: r.peer_ip.or_else(peer_ip),
            ..*r
        });
        server_exchange(segment, head, req.is_grpc_call())
    }

    /// Begins recording a request as a subsegment of `parent` instead of a segment of its own:
    /// for a request whose segment someone else records, such as the function segment AWS
    /// Lambda records, held here as a facade. The trace and the sampling decision are the
    /// parent's; the request's trace headers are not read. The subsegment is named as
    /// [`begin`](Self::begin) names segments, records `http.request` the same way, and ends
    /// through the returned [`Exchange`] (see [`crate::lifecycle`] for the rules).
    pub fn begin_subsegment(&self, parent: &Entity, req: &IncomingRequest<'_>) -> Exchange {
        let head = req.method == "HEAD";
        let recorder = parent.recorder();
        let mut clean = *req;
        clean.host = req.host.map(after_userinfo);
        let name = self
            .naming
            .matched_host(clean.host)
            .or(recorder.tracing_name_override())
            .unwrap_or(self.naming.fallback());
        let subsegment = parent.begin_subsegment(name);
        if subsegment.is_sampled() {
            subsegment.set_http_request(request_block(
                &clean,
                self.record_query,
                recorder.redacted_query_params(),
            ));
        }
        Exchange::server(subsegment).without_body(head)
    }

    /// Begins the segment for `req`; a sampled one records `http.request` from
    /// `recorded(req)`, which may read more of the request than the decision needed.
    fn begin_segment_then<'r>(
        &self,
        req: &IncomingRequest<'r>,
        recorded: impl FnOnce(&IncomingRequest<'r>) -> IncomingRequest<'r>,
    ) -> Entity {
        // A host taken from a request target's authority may carry `user:password@`: it is
        // never used for naming, sampling or the recorded URL, whichever adapter passed it.
        let recorder = self.recorder();
        if !recorder.is_enabled() && !self.accept_w3c {
            // Nothing is recorded: only the trace header matters, for the response and for
            // calls made while the request is served.
            let header = TraceHeader::parse_or_warn(req.trace_header);
            return recorder.begin_segment(self.naming.fallback(), header.as_ref());
        }
        let mut clean = *req;
        // The host and path are worked out only for what looks at them: dynamic naming, a
        // sampler with rules on them, a sampled request's `http.request`.
        let reads_request = recorder.sampler_reads_request();
        if reads_request || self.naming.is_dynamic() {
            clean.host = req.host.map(after_userinfo);
        }
        let req = &clean;
        let header = self.incoming_header(req);
        let name = self
            .naming
            .matched_host(req.host)
            .or(recorder.tracing_name_override())
            .unwrap_or(self.naming.fallback());
        let mut sampling = SamplingRequest::new(name).method(Some(req.method));
        if reads_request {
            sampling = sampling.host(req.host_name()).url_path(Some(req.path()));
        }
        let tracestate = self.tracestate_to_keep(req, header.as_ref());
        recorder.begin_segment_w3c(name, header.as_ref(), &sampling, tracestate, || {
            Some(self.http_request(recorder, recorded(req)))
        })
    }

    /// The `http.request` block of a sampled segment.
    fn http_request(&self, recorder: &Recorder, mut req: IncomingRequest<'_>) -> HttpRequest {
        req.host = req.host.map(after_userinfo);
        request_block(&req, self.record_query, recorder.redacted_query_params())
    }
}

/// X-Ray refuses trace ids whose first 32 bits are not a recent epoch second; randomly drawn
/// W3C ids (the OpenTelemetry default) almost never are. Said once per process: the fix is on
/// the caller's side (an X-Ray id generator), and the trace is still continued as is.
fn warn_once_if_not_xray_epoch(header: &TraceHeader) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(root) = header.root else { return };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let epoch = u64::from(root.epoch_seconds());
    let plausible = epoch <= now + 300 && now.saturating_sub(epoch) <= 30 * 24 * 3600;
    if !plausible && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            trace_id = %root,
            "traceparent trace id does not start with a recent epoch second, so X-Ray will refuse \
             this trace; configure the caller's OpenTelemetry SDK with an X-Ray id generator"
        );
    }
}

/// Longest string recorded from a request (URL, user agent): a hostile request cannot make
/// its segment, or the end of it, expensive.
pub const MAX_REQUEST_STRING: usize = 2048;

/// `s` cut to at most [`MAX_REQUEST_STRING`] bytes, on a character boundary.
fn capped(s: &str) -> &str {
    if s.len() <= MAX_REQUEST_STRING {
        return s;
    }
    let mut end = MAX_REQUEST_STRING;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The exchange of a server request: without a body for `HEAD`, a gRPC call when `grpc` (the
/// request's content type says so) and the segment records anything (an unsampled one has no
/// `grpc-status` to record).
fn server_exchange(segment: Entity, head: bool, grpc: bool) -> Exchange {
    let grpc = grpc && segment.is_sampled();
    Exchange::server(segment).without_body(head).grpc_call(grpc)
}

pub(crate) fn request_block(
    req: &IncomingRequest<'_>,
    record_query: bool,
    redacted: &[String],
) -> HttpRequest {
    let scheme = req
        .scheme
        .or_else(|| {
            req.x_forwarded_proto
                .and_then(|p| p.split(',').next())
                .map(str::trim)
        })
        .filter(|s| *s == "http" || *s == "https")
        .unwrap_or("http");
    let path = if record_query {
        req.path_and_query
    } else {
        req.path()
    };
    let url = match req.host.map(capped) {
        Some(h) => {
            let mut url = String::with_capacity(scheme.len() + 3 + h.len() + path.len());
            url.push_str(scheme);
            url.push_str("://");
            url.push_str(h);
            url.push_str(path);
            url
        }
        None => path.to_string(),
    };
    let url = if record_query {
        super::url::recorded_url(&url, true, redacted).into_owned()
    } else {
        url
    };
    let url = if url.len() > MAX_REQUEST_STRING {
        capped(&url).to_string()
    } else {
        url
    };
    let forwarded = req
        .x_forwarded_for
        .and_then(|x| x.split(',').next())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 64);
    let (client_ip, x_forwarded_for) = match forwarded {
        Some(ip) => (Some(SmolStr::new(ip)), true),
        None => (req.peer_ip.map(|ip| ip.to_smolstr()), false),
    };
    HttpRequest {
        method: Some(SmolStr::new(req.method)),
        url: Some(url),
        user_agent: req.user_agent.map(|ua| capped(ua).to_string()),
        client_ip,
        x_forwarded_for,
        traced: false,
    }
}
