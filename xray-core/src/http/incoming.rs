//! The incoming request, described with borrowed strings so that every server framework fits.

use std::net::IpAddr;

use crate::naming::strip_port;

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
    /// ([`ServerTracing::accept_w3c`](crate::http::ServerTracing::accept_w3c)) and there is
    /// no usable `X-Amzn-Trace-Id`.
    pub traceparent: Option<&'a str>,
    /// The W3C `tracestate` header (vendor-specific state that accompanies `traceparent`).
    pub tracestate: Option<&'a str>,
    /// `Content-Type`: says whether the request is a gRPC call
    /// ([`is_grpc_call`](Self::is_grpc_call)).
    pub content_type: Option<&'a str>,
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
            content_type: None,
        };
        // `HeaderValue::to_str` checks the bytes once; no second pass through `from_utf8`.
        req.fill(
            headers.iter().map(|(name, value)| (name.as_str(), value)),
            |v| v.as_bytes(),
            |v| v.to_str().ok(),
        );
        // Without a Host header the request target's authority is the host; it may carry
        // `user:password@`, which is never recorded.
        if req.host.is_none() {
            req.host = uri.authority().map(|a| after_userinfo(a.as_str()));
        }
        req
    }

    /// Fills the header fields from `(lower-case name, value)` pairs, in one pass: a lookup
    /// per header of interest hashes the name each time and costs several times more. The
    /// first value of a repeated header wins; values that are not visible ASCII text are
    /// ignored (as `http::HeaderValue::to_str` would refuse them), except the trace header,
    /// which is parsed from its bytes.
    pub fn read_headers<I>(&mut self, headers: I)
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        self.fill(headers, |v| v, header_text);
    }

    /// The one header loop: `bytes` reads a value's bytes (the trace header), `text` its text.
    #[inline]
    fn fill<V: Copy>(
        &mut self,
        headers: impl IntoIterator<Item = (&'a str, V)>,
        bytes: impl Fn(V) -> &'a [u8],
        text: impl Fn(V) -> Option<&'a str>,
    ) {
        for (name, value) in headers {
            let slot = match name {
                "host" => &mut self.host,
                "user-agent" => &mut self.user_agent,
                "x-forwarded-for" => &mut self.x_forwarded_for,
                "x-forwarded-proto" => &mut self.x_forwarded_proto,
                "traceparent" => &mut self.traceparent,
                "tracestate" => &mut self.tracestate,
                "content-type" => &mut self.content_type,
                crate::header::HEADER_NAME => {
                    if self.trace_header.is_none() {
                        self.trace_header = Some(bytes(value));
                    }
                    continue;
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = text(value);
            }
        }
    }

    /// The path without the query string.
    pub fn path(&self) -> &'a str {
        self.path_and_query
            .split(['?', '#'])
            .next()
            .unwrap_or(self.path_and_query)
    }

    /// Whether the request is a gRPC call: its `content-type` is `application/grpc`
    /// ([`crate::http::grpc::is_grpc`]).
    pub fn is_grpc_call(&self) -> bool {
        self.content_type
            .is_some_and(|c| crate::http::grpc::is_grpc(c.as_bytes()))
    }

    /// The host without port.
    pub fn host_name(&self) -> Option<&'a str> {
        self.host.map(strip_port)
    }
}

/// A header value as text, when it is visible ASCII (and tabs), as `HeaderValue::to_str` reads it.
fn header_text(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        // Only ASCII bytes: valid UTF-8.
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// The raw `X-Amzn-Trace-Id` value among a request's headers, given as (lower-case name,
/// value) pairs as the http crates keep them; the first one when the header is repeated. A
/// plain scan: on the few headers of a usual request it costs less than a keyed lookup, which
/// parses and hashes the name first.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("host", "shop.example".parse().unwrap());
/// headers.insert("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793".parse().unwrap());
/// let found = xray_core::http::find_trace_header(
///     headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes())),
/// );
/// assert_eq!(found, Some(&b"Root=1-5759e988-bd862e3fe1be46a994272793"[..]));
/// ```
#[inline]
pub fn find_trace_header<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Option<&'a [u8]> {
    headers
        .into_iter()
        .find(|(name, _)| *name == crate::header::HEADER_NAME)
        .map(|(_, value)| value)
}

/// `user:password@host` → `host`.
pub(crate) fn after_userinfo(authority: &str) -> &str {
    match authority.bytes().rposition(|b| b == b'@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    }
}
