//! `send_w3c`: outbound calls carry a `traceparent` with the same ids as `X-Amzn-Trace-Id`.

mod common;

use reqwest_middleware::ClientBuilder;
use xray_core::context;
use xray_local::Collector;
use xray_reqwest::XRayMiddleware;

use common::start_server;

async fn echoed(
    middleware: XRayMiddleware,
    extra: Option<(&str, &str)>,
) -> (serde_json::Value, String) {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let segment = collector.recorder("svc").begin_segment("svc", None);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    let mut req = client.get(server.url("/echo"));
    if let Some((k, v)) = extra {
        req = req.header(k, v);
    }
    let text = context::scope(segment.clone(), async {
        req.send().await.unwrap().text().await.unwrap()
    })
    .await;
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    segment.end();
    (body, segment.trace_id().to_string())
}

#[tokio::test]
async fn send_w3c_adds_a_traceparent_matching_the_xray_header() {
    let (headers, root) = echoed(XRayMiddleware::new().send_w3c(true), None).await;
    let xray = headers["x-amzn-trace-id"].as_str().unwrap();
    let tp = headers["traceparent"].as_str().unwrap();
    let back = xray_core::w3c::from_traceparent(tp).unwrap();
    assert_eq!(back.to_string(), xray);
    assert!(xray.starts_with(&format!("Root={root};")));
}

#[tokio::test]
async fn traceparent_is_not_sent_by_default() {
    let (headers, _) = echoed(XRayMiddleware::new(), None).await;
    assert!(headers.get("x-amzn-trace-id").is_some());
    assert!(headers.get("traceparent").is_none());
}

#[tokio::test]
async fn traceparent_set_by_the_caller_is_kept_when_overwrite_is_off() {
    let mine = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";
    let (headers, _) = echoed(
        XRayMiddleware::new().send_w3c(true).overwrite_header(false),
        Some(("traceparent", mine)),
    )
    .await;
    assert_eq!(headers["traceparent"], mine);
}

#[tokio::test]
async fn tracestate_received_with_the_trace_goes_out_with_traceparent() {
    use xray_core::header::{Sampled, TraceHeader};
    use xray_core::http::{IncomingRequest, ServerTracing};

    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let root = xray_core::TraceId::new();
    let incoming = TraceHeader::new(root, Some(xray_core::EntityId::new()), Some(Sampled::Yes));
    let tp = xray_core::w3c::to_traceparent(&incoming).unwrap();
    let segment = ServerTracing::new("svc")
        .with_recorder(collector.recorder("svc"))
        .accept_w3c(true)
        .begin_segment(&IncomingRequest {
            method: "GET",
            traceparent: Some(&tp),
            tracestate: Some(" congo=t61rcWkgMzE,rojo=00f067aa0ba902b7 "),
            ..IncomingRequest::default()
        });
    assert_eq!(segment.trace_id(), root);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(XRayMiddleware::new().send_w3c(true))
        .build();
    let echo = |req: reqwest_middleware::RequestBuilder| {
        context::scope(segment.clone(), async move {
            let text = req.send().await.unwrap().text().await.unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        })
    };
    let headers = echo(client.get(server.url("/echo"))).await;
    assert_eq!(
        headers["tracestate"],
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    );
    // A stale state the caller left on the request would no longer match the traceparent we
    // send: ours replaces it.
    let headers = echo(
        client
            .get(server.url("/echo"))
            .header("tracestate", "stale=1"),
    )
    .await;
    assert_eq!(
        headers["tracestate"],
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    );
    // Without send_w3c nothing W3C goes out.
    let plain = ClientBuilder::new(reqwest::Client::new())
        .with(XRayMiddleware::new())
        .build();
    let headers = echo(plain.get(server.url("/echo"))).await;
    assert!(headers.get("tracestate").is_none(), "{headers}");
    segment.end();
}
