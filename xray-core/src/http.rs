//! Mapping HTTP requests and responses to documents, shared by every adapter.
//!
//! Server adapters describe the request with [`IncomingRequest`] (plain `&str` fields, so
//! actix-web's `http` 0.2 types and hyper's `http` 1 types both fit) and call
//! [`ServerTracing::begin`]; client adapters call [`begin_outbound`] and [`end_outbound`].
//!
//! Recorded URL form (servers): `scheme://host/path`, without the query string unless
//! [`ServerTracing::record_query`] is on. The scheme comes from the request URI, else
//! `X-Forwarded-Proto`, else `http`. The client IP is the first address of `X-Forwarded-For`
//! (with `x_forwarded_for: true`), else the peer address. Clients record the URL without user
//! info, with the query unless asked to strip it.
//!
//! # W3C Trace Context
//!
//! Off by default. With [`ServerTracing::accept_w3c`], a request that carries no usable
//! `X-Amzn-Trace-Id` but a valid `traceparent` continues that trace: the 128-bit W3C trace id
//! becomes the X-Ray trace id (`1-{first 8 hex}-{last 24 hex}`), the parent span id becomes
//! the segment's `parent_id`, and the `sampled` flag becomes `Sampled=1`/`0`. With
//! [`OutboundOptions::send_w3c`], outbound calls carry a `traceparent` built from the same ids
//! as their `X-Amzn-Trace-Id`, so a callee instrumented with OpenTelemetry continues the
//! trace. The `tracestate` that came with a continued `traceparent` goes out unchanged next to
//! it ([`OutboundCall::tracestate`]). See [`crate::w3c`] for the exact mapping.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::context;
use crate::document::HttpRequest;
use crate::entity::{Entity, Namespace};
use crate::header::TraceHeader;
use crate::naming::{strip_port, DynamicNaming};
use crate::recorder::Recorder;
use crate::sampling::SamplingRequest;

/// An incoming request, described with borrowed strings.
///
/// Build it with a struct literal ending in `..IncomingRequest::default()`, or from `http` 1
/// types with [`IncomingRequest::from_http`].
#[derive(Clone, Copy, Debug, Default)]
pub struct IncomingRequest<'a> {
    /// The method.
    pub method: &'a str,
    /// `http` or `https`, when the server knows it.
    pub scheme: Option<&'a str>,
    /// The `Host` header (or `:authority`).
    pub host: Option<&'a str>,
    /// The path, with the query string if any.
    pub path_and_query: &'a str,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// `X-Forwarded-For`.
    pub x_forwarded_for: Option<&'a str>,
    /// `X-Forwarded-Proto`.
    pub x_forwarded_proto: Option<&'a str>,
    /// The peer's address, when the server provides it.
    pub peer_ip: Option<IpAddr>,
    /// The raw `X-Amzn-Trace-Id` header.
    pub trace_header: Option<&'a [u8]>,
    /// The W3C `traceparent` header. Read only when the server accepts W3C Trace Context
    /// ([`ServerTracing::accept_w3c`]) and there is no usable `X-Amzn-Trace-Id`.
    pub traceparent: Option<&'a str>,
    /// The W3C `tracestate` header (vendor-specific state that accompanies `traceparent`).
    pub tracestate: Option<&'a str>,
}

impl<'a> IncomingRequest<'a> {
    /// Reads what is needed from an `http` 1 request. The peer address is not part of the
    /// request: set [`peer_ip`](Self::peer_ip) from the server's connection info.
    pub fn from_http<B>(req: &'a http::Request<B>) -> Self {
        Self::from_parts(req.method(), req.uri(), req.headers())
    }

    /// Like [`from_http`](Self::from_http) from the request's pieces.
    pub fn from_parts(
        method: &'a http::Method,
        uri: &'a http::Uri,
        headers: &'a http::HeaderMap,
    ) -> Self {
        let mut req = Self {
            method: method.as_str(),
            scheme: uri.scheme_str(),
            host: None,
            path_and_query: uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            user_agent: None,
            x_forwarded_for: None,
            x_forwarded_proto: None,
            peer_ip: None,
            trace_header: None,
            traceparent: None,
            tracestate: None,
        };
        // One pass over the headers, matching names by their text: a lookup per header of
        // interest hashes the name each time and cost several times more than this loop.
        // Header maps keep names lowercase. The first value of a repeated header wins, as
        // with `HeaderMap::get`.
        let text = |v: &'a http::HeaderValue| v.to_str().ok();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "host" => &mut req.host,
                "user-agent" => &mut req.user_agent,
                "x-forwarded-for" => &mut req.x_forwarded_for,
                "x-forwarded-proto" => &mut req.x_forwarded_proto,
                "traceparent" => &mut req.traceparent,
                "tracestate" => &mut req.tracestate,
                crate::header::HEADER_NAME => {
                    if req.trace_header.is_none() {
                        req.trace_header = Some(value.as_bytes());
                    }
                    continue;
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = text(value);
            }
        }
        // Without a Host header the request target's authority is the host; it may carry
        // `user:password@`, which is never recorded.
        if req.host.is_none() {
            req.host = uri.authority().map(|a| after_userinfo(a.as_str()));
        }
        req
    }

    /// The path without the query string.
    pub fn path(&self) -> &'a str {
        self.path_and_query
            .split(['?', '#'])
            .next()
            .unwrap_or(self.path_and_query)
    }

    /// The host without port.
    pub fn host_name(&self) -> Option<&'a str> {
        self.host.map(strip_port)
    }
}

/// `user:password@host` → `host`.
fn after_userinfo(authority: &str) -> &str {
    match authority.bytes().rposition(|b| b == b'@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    }
}

/// Server-side settings shared by the server adapters.
#[derive(Clone, Debug)]
pub struct ServerTracing {
    recorder: Option<Recorder>,
    naming: DynamicNaming,
    record_query: bool,
    accept_w3c: bool,
}

impl ServerTracing {
    /// Segments named `name` (or `AWS_XRAY_TRACING_NAME` when set).
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
    /// with a valid `traceparent` joins that trace (see the [module docs](self)). Off by
    /// default, since it changes which requests start a new trace. `X-Amzn-Trace-Id` wins when
    /// both are present.
    pub fn accept_w3c(mut self, yes: bool) -> Self {
        self.accept_w3c = yes;
        self
    }

    /// Whether `traceparent` is read; see [`accept_w3c`](Self::accept_w3c).
    pub fn accepts_w3c(&self) -> bool {
        self.accept_w3c
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

    /// The fixed (fallback) segment name. `AWS_XRAY_TRACING_NAME` replaces it when set.
    pub fn fallback_name(&self) -> &str {
        self.naming.fallback()
    }

    /// Parses the trace header, decides sampling, begins the segment and records
    /// `http.request`. The caller makes it current and ends it with [`ServerTracing::end`].
    pub fn begin(&self, req: &IncomingRequest<'_>) -> Entity {
        // A host taken from a request target's authority may carry `user:password@`: it is
        // never used for naming, sampling or the recorded URL, whichever adapter passed it.
        let mut clean = *req;
        clean.host = req.host.map(after_userinfo);
        let req = &clean;
        let recorder = self.recorder();
        let header = self.incoming_header(req);
        let name = self
            .naming
            .matched_host(req.host)
            // A closure, not the fn itself: it lets the 'static name shorten to the request's lifetime.
            .or_else(
                #[allow(clippy::redundant_closure)]
                || tracing_name_override(),
            )
            .unwrap_or(self.naming.fallback());
        let path = req.path();
        let sampling = SamplingRequest::new(name)
            .host(req.host_name())
            .method(Some(req.method))
            .url_path(Some(path));
        let tracestate = self.tracestate_to_keep(req, header.as_ref());
        let segment = recorder.begin_segment_w3c(name, header.as_ref(), &sampling, tracestate);
        if segment.is_sampled() {
            segment.set_http_request(request_block(req, self.record_query));
        }
        segment
    }

    /// Records the response and ends the segment.
    pub fn end(&self, segment: &Entity, status: u16, content_length: Option<u64>) {
        segment.set_http_response(status, content_length);
        segment.end();
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

fn tracing_name_override() -> Option<&'static str> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::env::var("AWS_XRAY_TRACING_NAME")
            .ok()
            .filter(|v| !v.trim().is_empty())
    })
    .as_deref()
}

fn request_block(req: &IncomingRequest<'_>, record_query: bool) -> HttpRequest {
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
    let url = match req.host {
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
    let forwarded = req
        .x_forwarded_for
        .and_then(|x| x.split(',').next())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 64);
    let (client_ip, x_forwarded_for) = match forwarded {
        Some(ip) => (Some(ip.to_string()), true),
        None => (req.peer_ip.map(|ip| ip.to_string()), false),
    };
    HttpRequest {
        method: Some(req.method.to_string()),
        url: Some(url),
        user_agent: req.user_agent.map(str::to_string),
        client_ip,
        x_forwarded_for,
        traced: false,
    }
}

/// Removes `user:password@` from a URL's authority.
///
/// ```
/// use xray_core::http::strip_userinfo;
/// assert_eq!(strip_userinfo("https://u:p@example.com/a?b=1"), "https://example.com/a?b=1");
/// assert_eq!(strip_userinfo("https://example.com/@x"), "https://example.com/@x");
/// ```
pub fn strip_userinfo(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => Cow::Owned(format!("{}{}", &url[..auth_start], &rest[at + 1..])),
        None => Cow::Borrowed(url),
    }
}

/// Removes the query string and fragment from a URL.
pub fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The host of an absolute URL, without user info or port.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let auth = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = auth.rsplit('@').next().unwrap_or(auth);
    let host = strip_port(host_port);
    (!host.is_empty()).then_some(host)
}

/// Options for outbound calls, shared by the client adapters.
#[derive(Clone, Debug, Default)]
pub struct OutboundOptions {
    /// Subsegment name; default: the URL's host.
    pub name: Option<String>,
    /// Leave the query string out of the recorded URL.
    pub strip_query: bool,
    /// Also build a W3C `traceparent` for the call ([`OutboundCall::traceparent`]), carrying
    /// the same trace id, parent and sampling decision as the X-Ray header. Off by default.
    pub send_w3c: bool,
}

/// An outbound call being recorded: the subsegment and the header to send.
#[derive(Debug)]
pub struct OutboundCall {
    /// The `remote` subsegment (unsampled when the trace is not sampled).
    pub subsegment: Entity,
    /// The value for the `X-Amzn-Trace-Id` request header.
    pub header: String,
    /// The value for the `traceparent` request header, when
    /// [`OutboundOptions::send_w3c`] asked for one.
    pub traceparent: Option<String>,
    /// The value for the `tracestate` request header: the state that arrived with the trace
    /// ([`Entity::tracestate`]), sent only along with `traceparent`.
    pub tracestate: Option<String>,
}

impl OutboundCall {
    /// Puts `traceparent` on an outbound request's headers, with the `tracestate` that belongs
    /// to it (a stale `tracestate` left on the request is removed, since it would no longer
    /// match). Does nothing unless [`OutboundOptions::send_w3c`] asked for W3C headers.
    pub fn insert_w3c_headers(&self, headers: &mut http::HeaderMap) {
        let Some(value) = self
            .traceparent
            .as_deref()
            .and_then(|v| http::HeaderValue::from_str(v).ok())
        else {
            return;
        };
        headers.insert(crate::w3c::TRACEPARENT, value);
        match self
            .tracestate
            .as_deref()
            .and_then(|v| http::HeaderValue::from_str(v).ok())
        {
            Some(state) => headers.insert(crate::w3c::TRACESTATE, state),
            None => headers.remove(crate::w3c::TRACESTATE),
        };
    }
}

/// Begins a `remote` subsegment for an outbound HTTP call under the current entity (or
/// `parent` when given). Returns `None` when there is neither: the call then goes out
/// untouched, and the recorder's context-missing strategy decides what is logged (it never
/// panics here, even under `RUNTIME_ERROR`: tracing must not fail the call).
pub fn begin_outbound(
    parent: Option<Entity>,
    method: &str,
    url: &str,
    options: &OutboundOptions,
) -> Option<OutboundCall> {
    let parent = match parent.or_else(context::current) {
        Some(p) => p,
        None => {
            crate::report_missing_context("outbound HTTP call");
            return None;
        }
    };
    let name = options
        .name
        .as_deref()
        .or_else(|| url_host(url))
        .unwrap_or("remote");
    let sub = parent.begin_subsegment(name);
    if sub.is_sampled() {
        let clean = strip_userinfo(url);
        let recorded = if options.strip_query {
            strip_query(&clean)
        } else {
            &clean
        };
        sub.set_namespace(Namespace::Remote);
        sub.set_http_request(HttpRequest {
            method: Some(method.to_string()),
            url: Some(recorded.to_string()),
            traced: true,
            ..HttpRequest::default()
        });
    }
    let outbound = sub.outbound_header();
    let traceparent = if options.send_w3c {
        crate::w3c::to_traceparent(&outbound)
    } else {
        None
    };
    let tracestate = traceparent
        .as_ref()
        .and_then(|_| sub.tracestate())
        .map(str::to_string);
    Some(OutboundCall {
        subsegment: sub,
        header: outbound.to_header_string(),
        traceparent,
        tracestate,
    })
}

/// Records the response of an outbound call and ends its subsegment.
pub fn end_outbound(call: &OutboundCall, status: u16, content_length: Option<u64>) {
    call.subsegment.set_http_response(status, content_length);
    call.subsegment.end();
}

/// Records a transport error (refused, timeout, DNS, ...) on an outbound call: `fault` with a
/// remote cause, then ends the subsegment.
pub fn fail_outbound(
    call: &OutboundCall,
    error: &(dyn std::error::Error + 'static),
    type_name: &str,
) {
    call.subsegment.add_error_dyn(error, type_name, true);
    call.subsegment.end();
}

/// Like [`fail_outbound`] with exceptions the adapter built itself (for example with URLs
/// scrubbed from the messages).
pub fn fail_outbound_with(call: &OutboundCall, exceptions: Vec<crate::document::Exception>) {
    call.subsegment.add_exceptions(exceptions, true);
    call.subsegment.end();
}

/// Like [`fail_outbound`] for errors that are only `Display` (boxed `Send + Sync` errors,
/// client library errors): one remote exception with `message` and `type_name`.
pub fn fail_outbound_message(call: &OutboundCall, message: &str, type_name: &str) {
    let exception = crate::document::Exception::new(message, type_name).remote(true);
    fail_outbound_with(call, vec![exception]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_userinfo_never_becomes_the_host() {
        let req = http::Request::get("http://user:secret@example.com:8080/p")
            .body(())
            .unwrap();
        let inc = IncomingRequest::from_http(&req);
        assert_eq!(inc.host, Some("example.com:8080"));
    }

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(strip_userinfo("http://user:pw@h:8080/p"), "http://h:8080/p");
        assert_eq!(strip_userinfo("http://h/p?x=a@b"), "http://h/p?x=a@b");
        assert_eq!(strip_userinfo("not a url"), "not a url");
    }

    #[test]
    fn hosts_are_found() {
        assert_eq!(
            url_host("http://user@api.example.com:8080/x"),
            Some("api.example.com")
        );
        assert_eq!(url_host("https://[::1]:8080/"), Some("[::1]"));
        assert_eq!(url_host("/relative"), None);
    }

    #[test]
    fn request_block_prefers_first_forwarded_address() {
        let req = IncomingRequest {
            method: "GET",
            host: Some("api.example.com"),
            path_and_query: "/users/1?token=secret",
            x_forwarded_for: Some(" 203.0.113.7 , 10.0.0.1"),
            peer_ip: Some("127.0.0.1".parse().unwrap()),
            ..IncomingRequest::default()
        };
        let b = request_block(&req, false);
        assert_eq!(b.url.as_deref(), Some("http://api.example.com/users/1"));
        assert_eq!(b.client_ip.as_deref(), Some("203.0.113.7"));
        assert!(b.x_forwarded_for);
        let b = request_block(&req, true);
        assert_eq!(
            b.url.as_deref(),
            Some("http://api.example.com/users/1?token=secret")
        );
    }

    const TP: &str = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";

    fn server(accept_w3c: bool) -> ServerTracing {
        let recorder = Recorder::builder()
            .emitter(crate::emitter::MemoryEmitter::new())
            .sampler(crate::sampling::NeverSample)
            .ignore_env()
            .build()
            .unwrap();
        ServerTracing::new("svc")
            .with_recorder(recorder)
            .accept_w3c(accept_w3c)
    }

    #[test]
    fn traceparent_is_ignored_unless_w3c_is_accepted() {
        let req = IncomingRequest {
            method: "GET",
            traceparent: Some(TP),
            ..IncomingRequest::default()
        };
        assert!(server(false).incoming_header(&req).is_none());
        let h = server(true).incoming_header(&req).unwrap();
        assert_eq!(
            h.to_string(),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        );
        // The sampled flag decides, whatever the local sampler says.
        let segment = server(true).begin(&req);
        assert!(segment.is_sampled());
        assert_eq!(
            segment.trace_id().to_string(),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
    }

    #[test]
    fn xray_header_wins_over_traceparent() {
        let req = IncomingRequest {
            method: "GET",
            trace_header: Some(b"Root=1-67891233-abcdef012345678912345678;Sampled=0"),
            traceparent: Some(TP),
            ..IncomingRequest::default()
        };
        let h = server(true).incoming_header(&req).unwrap();
        assert_eq!(
            h.root.unwrap().to_string(),
            "1-67891233-abcdef012345678912345678"
        );
    }

    #[test]
    fn unusable_xray_header_falls_back_to_traceparent() {
        let req = IncomingRequest {
            method: "GET",
            trace_header: Some(b"Root=garbage"),
            traceparent: Some(TP),
            ..IncomingRequest::default()
        };
        let h = server(true).incoming_header(&req).unwrap();
        assert_eq!(h.parent.unwrap().to_string(), "53995c3f42cd8ad8");
    }

    #[test]
    fn malformed_traceparent_starts_a_new_trace() {
        let req = IncomingRequest {
            method: "GET",
            traceparent: Some("00-zz-53995c3f42cd8ad8-01"),
            ..IncomingRequest::default()
        };
        assert!(server(true).incoming_header(&req).is_none());
    }

    #[test]
    fn outbound_traceparent_names_the_call_subsegment_as_parent() {
        let req = IncomingRequest {
            method: "GET",
            traceparent: Some(TP),
            ..IncomingRequest::default()
        };
        let segment = server(true).begin(&req);
        let options = OutboundOptions {
            send_w3c: true,
            ..OutboundOptions::default()
        };
        let call = begin_outbound(Some(segment.clone()), "GET", "http://h/", &options).unwrap();
        let tp = call.traceparent.clone().unwrap();
        assert_eq!(
            tp,
            format!(
                "00-5759e988bd862e3fe1be46a994272793-{}-01",
                call.subsegment.id()
            )
        );
        let back = crate::w3c::from_traceparent(&tp).unwrap();
        assert_eq!(back.to_string(), call.header);
        let plain = begin_outbound(
            Some(segment),
            "GET",
            "http://h/",
            &OutboundOptions::default(),
        );
        assert!(plain.unwrap().traceparent.is_none());
    }

    #[test]
    fn request_block_falls_back_to_peer_address() {
        let req = IncomingRequest {
            method: "POST",
            scheme: None,
            x_forwarded_proto: Some("https"),
            host: Some("h"),
            path_and_query: "/",
            peer_ip: Some("127.0.0.1".parse().unwrap()),
            ..IncomingRequest::default()
        };
        let b = request_block(&req, false);
        assert_eq!(b.url.as_deref(), Some("https://h/"));
        assert_eq!(b.client_ip.as_deref(), Some("127.0.0.1"));
        assert!(!b.x_forwarded_for);
    }
}
