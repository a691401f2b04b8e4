//! Mapping HTTP requests and responses to documents, shared by every adapter.
//!
//! Server adapters describe the request with [`IncomingRequest`] (plain `&str` fields, so
//! actix-web's `http` 0.2 types and hyper's `http` 1 types both fit) and call
//! [`ServerTracing::begin`], which returns the [`Exchange`] that ends the segment; client
//! adapters call [`begin_outbound`], put the call's headers on the request with
//! [`OutboundCall::inject`], and end the call through it. How each kind of ending is recorded
//! (completed, failed, panicked, abandoned, cancelled) is decided in one place,
//! [`crate::lifecycle`].
//!
//! Recorded URL form (servers): `scheme://host/path`, without the query string unless
//! [`ServerTracing::record_query`] is on. The scheme comes from the request URI, else
//! `X-Forwarded-Proto`, else `http`. The client IP is the first address of `X-Forwarded-For`
//! (with `x_forwarded_for: true`), else the peer address. Clients record the URL without user
//! info, with the query unless [`OutboundOptions::record_query`] is off.
//!
//! # Ignored calls
//!
//! Client adapters can be told to leave some calls alone, as Python's `add_ignored` does:
//! [`IgnoreRules`] in [`OutboundOptions::ignore`] match the host (without port), the URL path
//! and the method with `*` and `?` wildcards, and a matching call goes out untouched, without
//! a subsegment or a trace header. Calls to the recorder's own daemon address are never
//! recorded ([`is_daemon_url`]). Each adapter offers the same builders: `ignore_host`,
//! `ignore_url` and `ignore` (a whole [`IgnoreRule`]).
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
//! it. See [`crate::w3c`] for the exact mapping.
//!
//! # gRPC
//!
//! A request whose `content-type` is `application/grpc*` is a gRPC call: its outcome is the
//! `grpc-status` code (in the trailers, or in the response head of a trailers-only response),
//! not the HTTP status, which is 200. [`grpc`] reads it;
//! [`Exchange::record_grpc_status`](crate::lifecycle::Exchange::record_grpc_status) records
//! it and sets the flags it implies.
//!
//! [`Exchange`]: crate::lifecycle::Exchange

pub mod grpc;
mod ignore;
mod incoming;
mod outbound;
mod server;
mod small_bytes;
mod url;

pub use ignore::{is_daemon_url, IgnoreRule, IgnoreRules};
pub use incoming::{find_trace_header, IncomingRequest};
pub use outbound::{begin_outbound, OutboundCall, OutboundHeaders, OutboundOptions, Parent};
pub use server::{ServerTracing, MAX_REQUEST_STRING};
pub(crate) use small_bytes::small_bytes;
pub use url::{
    content_length, parse_content_length, recorded_url, strip_query, strip_userinfo, url_host,
    REDACTED, REDACTED_QUERY_PARAMS,
};

#[cfg(test)]
mod tests {
    use super::server::request_block;
    use super::*;
    use crate::Recorder;

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
        let b = request_block(&req, false, &[]);
        assert_eq!(b.url.as_deref(), Some("http://api.example.com/users/1"));
        assert_eq!(b.client_ip.as_deref(), Some("203.0.113.7"));
        assert!(b.x_forwarded_for);
        let b = request_block(&req, true, &[]);
        assert_eq!(
            b.url.as_deref(),
            Some("http://api.example.com/users/1?token=secret")
        );
    }

    #[test]
    fn recorded_request_strings_are_capped_and_credentials_redacted() {
        let agent = "é".repeat(3000);
        let req = IncomingRequest {
            method: "GET",
            host: Some("h"),
            path_and_query: "/p?sig=abc&token=t&x=1",
            user_agent: Some(&agent),
            ..IncomingRequest::default()
        };
        let b = request_block(&req, true, &["Token".to_string()]);
        assert_eq!(
            b.url.as_deref(),
            Some("http://h/p?sig=REDACTED&token=REDACTED&x=1")
        );
        let ua = b.user_agent.unwrap();
        assert!(ua.len() <= MAX_REQUEST_STRING && ua.len() > MAX_REQUEST_STRING - 2);
        assert!(ua.chars().all(|c| c == 'é'));
        assert_eq!(
            request_block(&req, false, &[]).url.as_deref(),
            Some("http://h/p")
        );
    }

    #[test]
    fn only_credential_parameters_are_redacted() {
        for (url, want) in [
            ("https://h/a", "https://h/a"),
            ("https://h/a?part=1", "https://h/a?part=1"),
            (
                "https://h/a?SIGNATURE=x#frag",
                "https://h/a?SIGNATURE=REDACTED#frag",
            ),
            (
                "https://h/a?AWSAccessKeyId=AK&Expires=1",
                "https://h/a?AWSAccessKeyId=REDACTED&Expires=1",
            ),
            (
                "https://h/a?X-Amz-Security-Token&x=1",
                "https://h/a?X-Amz-Security-Token&x=1",
            ),
        ] {
            assert_eq!(recorded_url(url, true, &[]), want, "{url}");
        }
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
        let segment = server(true).begin_segment(&req);
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
        let segment = server(true).begin_segment(&req);
        let options = OutboundOptions {
            send_w3c: true,
            ..OutboundOptions::default()
        };
        let call = begin_outbound(Some(segment.clone()), "GET", "http://h/", &options).unwrap();
        let tp = call.headers().traceparent().unwrap().to_string();
        assert_eq!(
            tp,
            format!(
                "00-5759e988bd862e3fe1be46a994272793-{}-01",
                call.subsegment().unwrap().id()
            )
        );
        let back = crate::w3c::from_traceparent(&tp).unwrap();
        assert_eq!(back.to_string(), call.headers().x_amzn_trace_id());
        let plain = begin_outbound(
            Some(segment),
            "GET",
            "http://h/",
            &OutboundOptions::default(),
        );
        assert!(plain.unwrap().headers().traceparent().is_none());
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
        let b = request_block(&req, false, &[]);
        assert_eq!(b.url.as_deref(), Some("https://h/"));
        assert_eq!(b.client_ip.as_deref(), Some("127.0.0.1"));
        assert!(!b.x_forwarded_for);
    }

    #[test]
    fn request_under_a_facade_is_a_subsegment_with_the_request_block() {
        let emitter = crate::emitter::MemoryEmitter::new();
        let recorder = Recorder::builder()
            .emitter(emitter.clone())
            .ignore_env()
            .build()
            .unwrap();
        let header: crate::TraceHeader =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                .parse()
                .unwrap();
        let facade = recorder.begin_facade_segment(&header);
        let req = IncomingRequest {
            method: "GET",
            scheme: Some("https"),
            host: Some("user:pw@api.example.com"),
            path_and_query: "/users/1?token=t",
            // A trace header on the request is not the parent's: it is not read.
            trace_header: Some(b"Root=1-67891233-abcdef012345678912345678;Sampled=0"),
            ..IncomingRequest::default()
        };
        let mut exchange = ServerTracing::new("api").begin_subsegment(&facade, &req);
        exchange.finish(503, Some(2));
        facade.end();
        let docs = emitter.documents();
        assert_eq!(docs.len(), 1, "only the subsegment is sent: {docs:?}");
        let d = &docs[0];
        assert_eq!(d.name, "api");
        assert_eq!(d.parent_id.unwrap().to_string(), "53995c3f42cd8ad8");
        let request = d.http.request.as_ref().unwrap();
        assert_eq!(
            request.url.as_deref(),
            Some("https://api.example.com/users/1")
        );
        assert!(d.fault);
    }
}
