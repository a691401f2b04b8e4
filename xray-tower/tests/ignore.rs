//! `XRayClientLayer` and ignored calls (Python's `add_ignored`), against a real server on
//! loopback, with documents read from a real UDP collector.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use xray_core::sampling::AlwaysSample;
use xray_core::{context, Document, Recorder};
use xray_local::Collector;
use xray_tower::{IgnoreRule, XRayClientLayer};

/// A server whose `/echo` (and any other path) answers with the `X-Amzn-Trace-Id` it
/// received, or `none`.
async fn echo_server() -> SocketAddr {
    async fn echo(headers: http::HeaderMap) -> String {
        headers
            .get("x-amzn-trace-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string()
    }
    serve_axum(
        axum::Router::new()
            .route("/{*path}", axum::routing::any(echo))
            .route("/", axum::routing::any(echo)),
    )
    .await
}

/// Sends `method url` through `layer` and returns the trace header the server received.
async fn send(layer: &XRayClientLayer, method: &str, url: &str) -> String {
    let mut traced = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(client());
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = tower::ServiceExt::oneshot(&mut traced, req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Runs `f` with a new segment of `recorder` current and returns its output and the segment
/// document as received.
async fn traced<T>(
    recorder: &Recorder,
    collector: &Collector,
    f: impl std::future::Future<Output = T>,
) -> (T, Document) {
    let segment = recorder.begin_segment("caller", None);
    let out = context::scope(segment.clone(), f).await;
    segment.end();
    let id = segment.id();
    let docs = wait_until(collector, |d| d.iter().any(|d| d.id == id));
    (out, docs.into_iter().find(|d| d.id == id).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_an_ignored_host_has_no_subsegment_and_no_trace_header() {
    let server = echo_server().await;
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("caller");
    let layer = XRayClientLayer::new().ignore_host("localhost");

    let ((ignored, recorded), doc) = traced(&recorder, &collector, async {
        let ignored = send(
            &layer,
            "GET",
            &format!("http://localhost:{}/a", server.port()),
        )
        .await;
        let recorded = send(&layer, "GET", &format!("http://{server}/b")).await;
        (ignored, recorded)
    })
    .await;

    assert_eq!(ignored, "none", "the ignored call carries no trace header");
    assert_eq!(doc.subsegments.len(), 1, "{doc:#?}");
    let sub = &doc.subsegments[0];
    assert_eq!(url_of(sub), format!("http://{server}/b"));
    assert!(
        recorded.contains(&format!("Parent={}", sub.id)),
        "{recorded}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_matching_an_ignored_url_or_rule_is_left_alone() {
    let server = echo_server().await;
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("caller");
    let layer = XRayClientLayer::new()
        .ignore_url("/health*")
        .ignore(IgnoreRule::new().host("127.0.0.?").method("DELETE"));

    let (headers, doc) = traced(&recorder, &collector, async {
        vec![
            send(&layer, "GET", &format!("http://{server}/healthz?deep=1")).await,
            send(&layer, "DELETE", &format!("http://{server}/items/1")).await,
            send(&layer, "GET", &format!("http://{server}/items/1")).await,
        ]
    })
    .await;

    assert_eq!(headers[0], "none");
    assert_eq!(headers[1], "none");
    assert_ne!(headers[2], "none");
    assert_eq!(doc.subsegments.len(), 1, "{doc:#?}");
    assert_eq!(
        url_of(&doc.subsegments[0]),
        format!("http://{server}/items/1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_the_daemon_address_are_never_recorded() {
    // The daemon's TCP address is the echo server, its UDP address the collector.
    let server = echo_server().await;
    let collector = Collector::start().unwrap();
    let recorder = Recorder::builder()
        .daemon_address(format!("tcp:{server} udp:{}", collector.addr()))
        .sampler(AlwaysSample)
        .ignore_env()
        .build()
        .unwrap();
    let layer = XRayClientLayer::new();

    let (header, doc) = traced(&recorder, &collector, async {
        send(&layer, "POST", &format!("http://{server}/GetSamplingRules")).await
    })
    .await;

    assert_eq!(header, "none");
    assert!(doc.subsegments.is_empty(), "{doc:#?}");
}
