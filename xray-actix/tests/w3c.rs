//! W3C Trace Context on a real actix-web server: `traceparent` continues the trace only when
//! accepted, and `X-Amzn-Trace-Id` wins over it.

mod common;

use actix_web::{web, HttpResponse};
use common::{client, collector, response_root, segment_of, TestServer};
use xray_actix::XRay;
use xray_core::{EntityId, TraceId};

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ok", web::get().to(HttpResponse::Ok));
    // The tracestate the handler's outbound calls would forward.
    cfg.route(
        "/state",
        web::get().to(|| async {
            let state = xray_core::current().and_then(|e| e.tracestate().map(str::to_string));
            state.unwrap_or_else(|| "-".into())
        }),
    );
}

/// A fresh W3C trace whose id X-Ray accepts (epoch-prefixed), and its X-Ray spelling.
fn traceparent(flags: &str) -> (String, EntityId, String) {
    let root = TraceId::new().to_string(); // 1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy
    let parent = EntityId::new();
    let hex = root[2..].replace('-', "");
    (format!("00-{hex}-{parent}-{flags}"), parent, root)
}

#[tokio::test]
async fn traceparent_continues_the_trace_when_w3c_is_accepted() {
    let (c, r) = collector();
    let s = TestServer::start(XRay::new("shop").with_recorder(r).accept_w3c(true), routes);
    let (tp, parent, root) = traceparent("01");
    let res = client()
        .get(s.url("/ok"))
        .header("traceparent", &tp)
        .header("tracestate", "congo=t61rcWkgMzE")
        .send()
        .await
        .unwrap();
    assert_eq!(response_root(&res), root);
    let seg = segment_of(&c, &root);
    assert_eq!(seg.parent_id, Some(parent));

    let state = client()
        .get(s.url("/state"))
        .header("traceparent", &tp)
        .header("tracestate", "congo=t61rcWkgMzE")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(state, "congo=t61rcWkgMzE");
}

#[tokio::test]
async fn traceparent_is_ignored_by_default() {
    let (c, r) = collector();
    let s = TestServer::start(XRay::new("shop").with_recorder(r), routes);
    let (tp, _, root) = traceparent("01");
    let res = client()
        .get(s.url("/ok"))
        .header("traceparent", &tp)
        .send()
        .await
        .unwrap();
    let new_root = response_root(&res);
    assert_ne!(new_root, root);
    assert_eq!(segment_of(&c, &new_root).parent_id, None);
}

#[tokio::test]
async fn xray_header_wins_over_traceparent() {
    let (c, r) = collector();
    let s = TestServer::start(XRay::new("shop").with_recorder(r).accept_w3c(true), routes);
    let (tp, _, _) = traceparent("01");
    let xray_root = TraceId::new().to_string();
    let res = client()
        .get(s.url("/ok"))
        .header("traceparent", &tp)
        .header("x-amzn-trace-id", format!("Root={xray_root};Sampled=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response_root(&res), xray_root);
    segment_of(&c, &xray_root);
}
