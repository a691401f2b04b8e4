//! Hostile input from the network (headers) and from application code (annotation and
//! metadata values): requests are still served, nothing panics, every document sent is one
//! the X-Ray service accepts, and what does not fit is trimmed and counted.

mod common;

use axum::routing::get;
use axum::Router;
use common::*;
use serde_json::{json, Value};
use xray_core::Recorder;
use xray_local::Collector;
use xray_tower::XRayLayer;

/// A trace id of now (the X-Ray service refuses ids older than 30 days).
fn root() -> String {
    xray_core::TraceId::new().to_string()
}

fn app(recorder: &Recorder) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(XRayLayer::new("faults").with_recorder(recorder.clone()))
}

async fn setup() -> (Collector, Recorder, std::net::SocketAddr) {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("faults");
    let addr = serve(app(&recorder)).await;
    (collector, recorder, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mebibyte_trace_header_is_read_up_to_the_cap() {
    let root = root();
    let (collector, _r, addr) = setup().await;
    let header = format!("Root={root};Sampled=1;{}", "k=v;".repeat(256 * 1024));
    assert!(header.len() > 1 << 20);
    let reply = http_get(addr, "/", &[("x-amzn-trace-id", header.as_bytes())]).await;
    assert_eq!(reply.status, 200);
    let answered = reply.trace_header().unwrap();
    assert!(answered.starts_with(&format!("Root={root}")), "{answered}");
    assert!(
        answered.len() <= 1024,
        "answer header is {} bytes",
        answered.len()
    );
    let segs = segments(&collector, 1);
    assert_eq!(segs[0].trace_id.unwrap().to_string(), root);
    assert_no_violations(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_and_non_utf8_header_values_are_served_and_not_recorded() {
    let root = root();
    let (collector, _r, addr) = setup().await;
    let binary: Vec<u8> = (0x80..=0xff).collect();
    let mut trace = format!("Root={root};x=").into_bytes();
    trace.extend_from_slice(&binary);
    let reply = http_get(
        addr,
        "/",
        &[
            ("x-amzn-trace-id", &trace),
            ("user-agent", &binary),
            ("x-forwarded-for", &binary),
            ("x-forwarded-proto", &binary),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.trace_header().is_some());
    let segs = segments(&collector, 1);
    let request = segs[0].http.request.as_ref().unwrap();
    assert_eq!(request.user_agent, None);
    assert!(!request.x_forwarded_for);
    assert_eq!(request.client_ip.as_deref(), Some("127.0.0.1"));
    assert!(request.url.as_deref().unwrap().starts_with("http://"));
    assert_no_violations(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_repeated_trace_headers_use_the_first() {
    let root = root();
    let (collector, _r, addr) = setup().await;
    let mut raw = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Amzn-Trace-Id: Root={root}\r\n"
    );
    for i in 0..10_000 {
        raw.push_str(&format!(
            "X-Amzn-Trace-Id: Root={}-{i:024x}\r\n",
            &root[..10]
        ));
    }
    raw.push_str("\r\n");
    assert_eq!(raw_request(addr, raw.as_bytes()).await, Some(200));
    // And 10 000 repeated keys inside one value.
    let value = format!(
        "Root={root};Sampled=1;{}",
        "Sampled=0;Root=x;".repeat(10_000)
    );
    let reply = http_get(addr, "/", &[("x-amzn-trace-id", value.as_bytes())]).await;
    assert_eq!(reply.status, 200);
    let segs = segments(&collector, 2);
    for s in &segs {
        assert_eq!(s.trace_id.unwrap().to_string(), root);
    }
    assert_no_violations(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_and_control_bytes_are_refused_by_the_server_which_keeps_serving() {
    let (collector, _r, addr) = setup().await;
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: h\r\nX-Amzn-Trace-Id: Root=\0\r\n\r\n"[..],
        b"GET /\xff\xfe HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\x01\r\n\r\n",
    ] {
        let status = raw_request(addr, bad).await;
        assert!(matches!(status, Some(400) | None), "{status:?}");
    }
    assert_eq!(http_get(addr, "/", &[]).await.status, 200);
    let segs = segments(&collector, 1);
    assert_eq!(
        segs.len(),
        1,
        "refused requests reach no handler and record nothing"
    );
    assert_no_violations(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_user_agent_and_host_are_capped_where_they_are_recorded() {
    let (collector, recorder, addr) = setup().await;
    let big = "a".repeat(1 << 20);
    let reply = http_get(
        addr,
        "/",
        &[("user-agent", big.as_bytes()), ("host", big.as_bytes())],
    )
    .await;
    assert_eq!(reply.status, 200);
    let segs = segments(&collector, 1);
    let request = segs[0].http.request.as_ref().unwrap();
    // Capped at 2 KiB each when recorded, so the segment never needs trimming.
    assert_eq!(request.user_agent.as_ref().unwrap().len(), 2048);
    assert!(request.url.as_ref().unwrap().len() <= 2048);
    assert_eq!(
        recorder.emitter_stats().trimmed,
        0,
        "{:?}",
        recorder.emitter_stats()
    );
    assert_datagrams_fit(&collector);
    assert_no_violations(&collector);
}

fn nested(depth: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..depth {
        v = json!({ "d": v });
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_annotation_and_metadata_values_never_panic_and_stay_valid() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("faults");
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                let seg = xray_core::current().unwrap();
                seg.put_annotation("nan", f64::NAN);
                seg.put_annotation("inf", f64::INFINITY);
                seg.put_annotation("neg_inf", f64::NEG_INFINITY);
                seg.put_annotation("bad-key", 1);
                seg.put_annotation("", 1);
                seg.put_annotation("ключ", 1);
                seg.put_annotation(&"k".repeat(501), 1);
                seg.put_annotation("nul\0key", 1);
                seg.put_annotation("ok", "fine");
                seg.put_metadata("nan", f64::NAN);
                seg.put_metadata("weird \"key\"\n\0", "v");
                seg.put_metadata_in("AWS.reserved", "k", 1);
                seg.put_metadata_in("", "k", 1);
                // As deep as serde_json lets a request body be parsed.
                let body = format!("{}1{}", "[".repeat(120), "]".repeat(120));
                let parsed: Value = serde_json::from_str(&body).unwrap();
                seg.put_metadata("from_body", parsed);
                seg.put_metadata("nested_100", nested(100));
                // Too big for one datagram: trimmed, counted, still sent.
                seg.put_metadata("huge", "m".repeat(200_000));
                "ok"
            }),
        )
        .layer(XRayLayer::new("faults").with_recorder(recorder.clone()));
    let addr = serve(app).await;
    assert_eq!(http_get(addr, "/", &[]).await.status, 200);
    let segs = segments(&collector, 1);
    let keys: Vec<&String> = segs[0].annotations.keys().collect();
    assert_eq!(keys, ["ok"], "only the valid annotation is kept");
    assert!(
        recorder.emitter_stats().trimmed >= 1,
        "{:?}",
        recorder.emitter_stats()
    );
    assert_datagrams_fit(&collector);
    assert_no_violations(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotation_strings_over_1000_characters_are_not_sent_as_is() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("faults");
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                xray_core::put_annotation("long", "a".repeat(5000));
                "ok"
            }),
        )
        .layer(XRayLayer::new("faults").with_recorder(recorder));
    let addr = serve(app).await;
    assert_eq!(http_get(addr, "/", &[]).await.status, 200);
    let segs = segments(&collector, 1);
    let long = segs[0].annotations["long"].as_str().unwrap();
    assert_eq!(long.chars().count(), 1000, "cut to what X-Ray indexes");
    assert_no_violations(&collector);
}
