//! W3C Trace Context through the tower layers: the server continues a `traceparent` trace when
//! asked to, and the client layer sends `traceparent` next to `X-Amzn-Trace-Id`, so that the
//! ids survive the round trip W3C → X-Ray → W3C exactly.

mod common;

use std::net::SocketAddr;

use axum::http::HeaderMap;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use xray_core::{EntityId, TraceId};
use xray_local::Collector;
use xray_tower::{XRayClientLayer, XRayLayer};

use common::{client, get, segments, serve_axum};

fn traceparent(flags: &str) -> (String, String, EntityId) {
    let root = TraceId::new().to_string();
    let parent = EntityId::new();
    let hex = root[2..].replace('-', "");
    (format!("00-{hex}-{parent}-{flags}"), root, parent)
}

/// Echoes the `traceparent`, `x-amzn-trace-id` and `tracestate` headers it received, one per
/// line (`-` for a missing one).
async fn echo_server() -> SocketAddr {
    async fn echo(headers: HeaderMap) -> String {
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        format!(
            "{}\n{}\n{}",
            h("traceparent"),
            h("x-amzn-trace-id"),
            h("tracestate")
        )
    }
    serve_axum(Router::new().route("/", axum::routing::get(echo))).await
}

/// A service that calls `downstream` through `XRayClientLayer` (W3C on) and returns what the
/// downstream echoed.
async fn relay(collector: &Collector, accept_w3c: bool, downstream: SocketAddr) -> SocketAddr {
    let handler = move || async move {
        let svc = tower::ServiceBuilder::new()
            .layer(XRayClientLayer::new().send_w3c(true))
            .service(client());
        let req = http::Request::get(format!("http://{downstream}/"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    };
    let app = Router::new().route("/", axum::routing::get(handler)).layer(
        XRayLayer::new("relay")
            .with_recorder(collector.recorder("relay"))
            .accept_w3c(accept_w3c),
    );
    serve_axum(app).await
}

/// The `traceparent` and `x-amzn-trace-id` lines of an echo.
fn echoed(body: &str) -> (&str, &str) {
    let mut lines = body.lines();
    (lines.next().unwrap(), lines.next().unwrap())
}

fn echoed_tracestate(body: &str) -> &str {
    body.lines().nth(2).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracestate_travels_with_the_continued_trace_and_only_then() {
    let collector = Collector::start().unwrap();
    let downstream = echo_server().await;
    let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let (tp, _, _) = traceparent("01");
    let accepting = relay(&collector, true, downstream).await;
    let reply = get(
        accepting,
        "/",
        &[("traceparent", &tp), ("tracestate", state)],
    )
    .await;
    let body = String::from_utf8(reply.body.to_vec()).unwrap();
    assert_eq!(echoed_tracestate(&body), state);

    // Not accepting W3C: the trace is new, so the state of the caller's trace stays behind.
    let ignoring = relay(&collector, false, downstream).await;
    let reply = get(
        ignoring,
        "/",
        &[("traceparent", &tp), ("tracestate", state)],
    )
    .await;
    let body = String::from_utf8(reply.body.to_vec()).unwrap();
    assert_eq!(echoed_tracestate(&body), "-");

    // An X-Amzn-Trace-Id for another trace wins over traceparent: its state is not passed on.
    let other = TraceId::new();
    let xray = format!("Root={other};Parent={};Sampled=1", EntityId::new());
    let reply = get(
        accepting,
        "/",
        &[
            ("traceparent", &tp),
            ("tracestate", state),
            ("x-amzn-trace-id", &xray),
        ],
    )
    .await;
    let body = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(
        echoed(&body).1.starts_with(&format!("Root={other};")),
        "{body}"
    );
    assert_eq!(echoed_tracestate(&body), "-");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_round_trips_through_the_segment_and_the_client_layer() {
    let collector = Collector::start().unwrap();
    let downstream = echo_server().await;
    let relay = relay(&collector, true, downstream).await;
    let (tp, root, parent) = traceparent("01");
    let reply = get(relay, "/", &[("traceparent", &tp)]).await;
    assert_eq!(reply.trace_header(), Some(format!("Root={root}").as_str()));

    let segs = segments(&collector, 1);
    let seg = &segs[0];
    assert_eq!(seg.trace_id.unwrap().to_string(), root);
    assert_eq!(seg.parent_id, Some(parent));
    let call = &seg.subsegments[0];

    let body = String::from_utf8(reply.body.to_vec()).unwrap();
    let (sent_tp, sent_xray) = echoed(&body);
    let hex = root[2..].replace('-', "");
    assert_eq!(sent_tp, format!("00-{hex}-{}-01", call.id));
    assert_eq!(
        sent_xray,
        format!("Root={root};Parent={};Sampled=1", call.id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_ignored_unless_accepted() {
    let collector = Collector::start().unwrap();
    let downstream = echo_server().await;
    let relay = relay(&collector, false, downstream).await;
    let (tp, root, _) = traceparent("01");
    let reply = get(relay, "/", &[("traceparent", &tp)]).await;
    assert_ne!(reply.trace_header(), Some(format!("Root={root}").as_str()));
    let segs = segments(&collector, 1);
    assert_eq!(segs[0].parent_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_traceparent_is_continued_without_recording() {
    let collector = Collector::start().unwrap();
    let downstream = echo_server().await;
    let relay = relay(&collector, true, downstream).await;
    let (tp, root, _) = traceparent("00");
    let reply = get(relay, "/", &[("traceparent", &tp)]).await;
    let body = String::from_utf8(reply.body.to_vec()).unwrap();
    let (sent_tp, sent_xray) = echoed(&body);
    let hex = root[2..].replace('-', "");
    assert!(sent_tp.starts_with(&format!("00-{hex}-")) && sent_tp.ends_with("-00"));
    assert!(sent_xray.starts_with(&format!("Root={root};")) && sent_xray.ends_with("Sampled=0"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        collector.documents().is_empty(),
        "{:?}",
        collector.documents()
    );
}
