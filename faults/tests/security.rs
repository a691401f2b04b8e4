//! What a traced request leaves in the documents sent over the wire, read from the raw
//! datagrams: secrets in headers, cookies, bodies and query strings never appear; a caller
//! cannot force unlimited sampling when the cap is on.

mod common;

use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use xray_core::http::ServerTracing;
use xray_core::sampling::NeverSample;
use xray_core::{IncomingSampled, Recorder};
use xray_local::Collector;
use xray_tower::XRayLayer;

const SECRET: &str = "s3cr3t-value";

fn wire_text(collector: &Collector) -> String {
    collector
        .received()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn echo_app(layer: XRayLayer) -> Router {
    Router::new()
        .route("/login", post(|body: Bytes| async move { body }))
        .route("/page", get(|| async { "page" }))
        .layer(layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_cookies_bodies_and_query_never_reach_the_wire_by_default() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("faults");
    let addr = serve(echo_app(XRayLayer::new("faults").with_recorder(recorder))).await;
    let req = http::Request::post(format!("http://{addr}/login?token={SECRET}"))
        .header("authorization", format!("Bearer {SECRET}"))
        .header("cookie", format!("session={SECRET}"))
        .header("proxy-authorization", format!("Basic {SECRET}"))
        .header("x-api-key", SECRET)
        .body(Full::new(Bytes::from(format!("password={SECRET}"))))
        .unwrap();
    let reply = send(&client(), req).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        format!("password={SECRET}"),
        "the body went through"
    );
    let segs = segments(&collector, 1);
    let url = segs[0].http.request.as_ref().unwrap().url.clone().unwrap();
    assert!(url.ends_with("/login"), "{url}");
    let wire = wire_text(&collector);
    assert!(!wire.contains(SECRET), "a secret reached the wire: {wire}");
    assert!(!wire.to_ascii_lowercase().contains("cookie"), "{wire}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_string_is_recorded_only_when_asked() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("faults");
    let layer = XRayLayer::new("faults")
        .with_recorder(recorder)
        .record_query(true);
    let addr = serve(echo_app(layer)).await;
    http_get(addr, "/page?q=visible", &[]).await;
    let segs = segments(&collector, 1);
    let url = segs[0].http.request.as_ref().unwrap().url.clone().unwrap();
    assert!(url.ends_with("/page?q=visible"), "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_in_an_absolute_form_request_target_is_not_recorded() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("faults");
    let addr = serve(echo_app(XRayLayer::new("faults").with_recorder(recorder))).await;
    // With a Host header, the Host header is what is recorded.
    let with_host = format!(
        "GET http://user:{SECRET}@example.com/page HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_request(addr, with_host.as_bytes()).await, Some(200));
    let segs = segments(&collector, 1);
    let url = segs[0].http.request.as_ref().unwrap().url.clone().unwrap();
    assert_eq!(url, "http://example.com/page");
    assert!(!wire_text(&collector).contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_in_the_request_authority_without_host_header_is_not_recorded() {
    // HTTP/1.0 allows a request without Host; the authority of the absolute-form target is
    // then the only host there is.
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("faults");
    let addr = serve(echo_app(XRayLayer::new("faults").with_recorder(recorder))).await;
    let no_host = format!("GET http://user:{SECRET}@example.com/page HTTP/1.0\r\n\r\n");
    let _ = raw_request(addr, no_host.as_bytes()).await;
    let docs = wait_until(&collector, |d| !d.is_empty());
    assert_eq!(docs.len(), 1);
    let wire = wire_text(&collector);
    assert!(!wire.contains(SECRET), "userinfo recorded: {wire}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_sampled_one_is_capped_per_second() {
    let collector = Collector::start().unwrap();
    let recorder = Recorder::builder()
        .service_name("faults")
        .daemon_address(collector.daemon_address())
        .sampler(NeverSample)
        .incoming_sampled(IncomingSampled::cap(5))
        .ignore_env()
        .build()
        .unwrap();
    let addr = serve(echo_app(
        XRayLayer::new("faults").with_recorder(recorder.clone()),
    ))
    .await;
    let forced = b"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
    let started = std::time::Instant::now();
    for _ in 0..100 {
        let reply = http_get(addr, "/page", &[("x-amzn-trace-id", forced)]).await;
        assert_eq!(reply.status, 200);
    }
    let seconds = started.elapsed().as_secs() + 1;
    assert!(recorder.flush(Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(300));
    let sent = collector.documents().len() as u64;
    assert!(sent >= 1, "the cap admits some caller-forced samples");
    assert!(
        sent <= 5 * (seconds + 1),
        "{sent} forced samples in {seconds} s with a cap of 5/s"
    );
}

#[test]
fn server_tracing_records_the_query_only_when_asked() {
    // The shared mapping every server adapter uses (tower and actix alike).
    let emitter = xray_core::emitter::MemoryEmitter::new();
    let recorder = Recorder::builder()
        .sampler(xray_core::sampling::AlwaysSample)
        .emitter(emitter.clone())
        .ignore_env()
        .build()
        .unwrap();
    let req = xray_core::http::IncomingRequest {
        method: "GET",
        host: Some("h"),
        path_and_query: "/p?token=x#frag",
        ..Default::default()
    };
    for record in [false, true] {
        let tracing = ServerTracing::new("svc")
            .with_recorder(recorder.clone())
            .record_query(record);
        tracing.begin(&req).finish(200, None);
    }
    let urls: Vec<_> = emitter
        .documents()
        .into_iter()
        .map(|d| d.http.request.unwrap().url.unwrap())
        .collect();
    assert_eq!(urls, ["http://h/p", "http://h/p?token=x#frag"]);
}
