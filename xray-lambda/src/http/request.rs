//! The request as the shared server mapping sees it: `lambda_http`'s request, plus what only
//! the event knows (the source IP).

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use xray_core::http::IncomingRequest;

/// Describes `req` for [`ServerTracing`](xray_core::http::ServerTracing): method, URI and
/// headers as `lambda_http` built them from the event, the event's source IP as the peer
/// address, and the event's user agent when no header carries one. Trace headers are left out:
/// the invocation's context holds the one that counts.
pub(crate) fn incoming(req: &Request) -> IncomingRequest<'_> {
    let mut incoming = IncomingRequest::from_parts(req.method(), req.uri(), req.headers());
    incoming.trace_header = None;
    incoming.traceparent = None;
    incoming.tracestate = None;
    let (source_ip, user_agent) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(c)) => (&c.identity.source_ip, &c.identity.user_agent),
        Some(RequestContext::ApiGatewayV2(c)) => (&c.http.source_ip, &c.http.user_agent),
        // ALB events carry the client address only in `X-Forwarded-For`.
        _ => (&None, &None),
    };
    // API Gateway's test console says `test-invoke-source-ip`: not an address, not recorded.
    incoming.peer_ip = source_ip.as_deref().and_then(|ip| ip.parse().ok());
    if incoming.user_agent.is_none() {
        incoming.user_agent = user_agent.as_deref();
    }
    incoming
}
