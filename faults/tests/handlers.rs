//! Handlers that do not end normally: cancelled by the client mid-way, or panicking inside a
//! subsegment. The segment still arrives, closed and valid, and the server keeps serving.

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use tokio::sync::mpsc;
use xray_core::document::Cause;
use xray_core::Document;
use xray_local::Collector;
use xray_tower::XRayLayer;

fn exception_messages(doc: &Document) -> Vec<String> {
    match &doc.cause {
        Some(Cause::Exceptions(c)) => c
            .exceptions
            .iter()
            .filter_map(|e| e.message.clone())
            .collect(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_cancelled_mid_handler_closes_segment_and_open_subsegment() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("faults");
    let (entered_tx, mut entered_rx) = mpsc::unbounded_channel::<()>();
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let entered = entered_tx.clone();
                async move {
                    xray_core::capture_async("waiting", async move {
                        let _ = entered.send(());
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    })
                    .await;
                    "never"
                }
            }),
        )
        .route("/ok", get(|| async { "ok" }))
        .layer(XRayLayer::new("faults").with_recorder(recorder));
    let addr = serve(app).await;

    let request = tokio::spawn(async move {
        let req = http::Request::get(format!("http://{addr}/slow"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(&client(), req).await
    });
    entered_rx.recv().await.expect("handler entered");
    request.abort(); // drops the client connection; hyper drops the handler future
    let _ = request.await;

    let segs = segments(&collector, 1);
    let seg = &segs[0];
    assert!(seg.end_time.is_some() && !seg.in_progress, "{seg:?}");
    assert!(seg.error, "client going away is an error: {seg:?}");
    assert!(
        exception_messages(seg)
            .iter()
            .any(|m| m.contains("dropped")),
        "{:?}",
        seg.cause
    );
    // The segment left while `waiting` was still open (it is dropped after the segment's
    // future); `waiting` follows as an independent subsegment once its guard drops, and the
    // trace completes with nothing left in progress.
    let trace_id = seg.trace_id.unwrap();
    let trace = tokio::task::block_in_place(|| collector.wait_for_trace_id(trace_id, WAIT))
        .expect("the trace completes: nothing stays in progress");
    let waiting = trace.find("waiting").expect("the subsegment arrives");
    assert!(!waiting.is_in_progress() && waiting.end_time().is_some());
    assert_eq!(
        trace.parent_of(waiting.id()).map(|p| p.name()),
        Some("faults")
    );
    assert_no_violations(&collector);
    assert_eq!(http_get(addr, "/ok", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_inside_a_subsegment_faults_both_and_the_server_keeps_serving() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("faults");
    let app = Router::new()
        .route(
            "/panic",
            get(|| async {
                xray_core::capture_async("doomed", async {
                    if std::hint::black_box(true) {
                        panic!("handler gave up: secret-free message");
                    }
                })
                .await;
                "never"
            }),
        )
        .route("/ok", get(|| async { "ok" }))
        .layer(XRayLayer::new("faults").with_recorder(recorder));
    let addr = serve(app).await;

    let req = http::Request::get(format!("http://{addr}/panic"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert!(
        send(&client(), req).await.is_err(),
        "the connection is dropped"
    );
    let segs = segments(&collector, 1);
    let seg = &segs[0];
    assert!(seg.fault, "{seg:?}");
    assert!(exception_messages(seg)
        .iter()
        .any(|m| m.contains("handler gave up")));
    let doomed = &seg.subsegments[0];
    assert_eq!(doomed.name, "doomed");
    assert!(doomed.fault && doomed.end_time.is_some(), "{doomed:?}");
    assert_no_violations(&collector);
    for _ in 0..3 {
        assert_eq!(http_get(addr, "/ok", &[]).await.status, 200);
    }
}
