//! Many requests at once, and one very large request, through a real server and real UDP.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::Value;
use xray_core::{Document, FutureExt};
use xray_local::Collector;
use xray_tower::XRayLayer;

const REQUESTS: usize = 10_000;

/// Each request annotates its segment and every subsegment with its own number: nested
/// (`outer` > `inner`), joined (`left` and `right` under `join!`) and spawned (`spawned`).
async fn work(Path(i): Path<u64>, gauge: Arc<(AtomicUsize, AtomicUsize)>) -> String {
    let now = gauge.0.fetch_add(1, Ordering::SeqCst) + 1;
    gauge.1.fetch_max(now, Ordering::SeqCst);
    xray_core::put_annotation("request", i);
    xray_core::capture_async("outer", async move {
        xray_core::put_annotation("request", i);
        xray_core::capture_async("inner", async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            xray_core::put_annotation("request", i);
        })
        .await;
    })
    .await;
    let side = |name: &'static str| {
        xray_core::capture_async(name, async move {
            tokio::task::yield_now().await;
            xray_core::put_annotation("request", i);
        })
    };
    tokio::join!(side("left"), side("right"));
    tokio::spawn(
        xray_core::capture_async("spawned", async move {
            xray_core::put_annotation("request", i);
        })
        .in_current_segment(),
    )
    .await
    .unwrap();
    gauge.0.fetch_sub(1, Ordering::SeqCst);
    i.to_string()
}

fn names(doc: &Document, out: &mut Vec<String>) {
    for s in &doc.subsegments {
        out.push(s.name.to_string());
        names(s, out);
    }
}

/// Every subsegment of `doc` carries `request`; returns how many do not.
fn misattributed(doc: &Document, request: &Value) -> usize {
    doc.subsegments
        .iter()
        .map(|s| {
            usize::from(s.annotations.get("request") != Some(request)) + misattributed(s, request)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_lose_and_misattribute_nothing() {
    let collector = Collector::builder()
        .max_traces(REQUESTS * 2)
        .start()
        .unwrap();
    let recorder = udp_recorder(&collector.daemon_address(), REQUESTS * 2);
    let gauge = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let g = gauge.clone();
    let app = Router::new()
        .route("/work/{i}", get(move |p| work(p, g.clone())))
        .layer(XRayLayer::new("faults").with_recorder(recorder.clone()));
    let addr = serve(app).await;

    // One HTTP/2 connection carries all requests at once.
    let client = h2_client();
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let req = http::Request::get(format!("http://{addr}/work/{i}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let reply = send(&client, req).await.expect("request failed");
                assert_eq!(reply.status, 200);
                assert_eq!(reply.body, i.to_string());
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let in_flight = gauge.1.load(Ordering::SeqCst);
    assert!(
        in_flight >= 100,
        "requests did not overlap: at most {in_flight} at once"
    );

    let segs = segments(&collector, REQUESTS);
    let stats = recorder.emitter_stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(segs.len(), REQUESTS, "documents lost or duplicated");
    let mut seen = HashSet::new();
    let mut wrong = 0;
    for doc in &segs {
        let request = doc
            .annotations
            .get("request")
            .expect("segment annotation")
            .clone();
        assert!(seen.insert(request.to_string()), "request {request} twice");
        let mut n = Vec::new();
        names(doc, &mut n);
        n.sort();
        assert_eq!(
            n,
            ["inner", "left", "outer", "right", "spawned"],
            "{request}"
        );
        wrong += misattributed(doc, &request);
    }
    assert_eq!(
        wrong, 0,
        "subsegments attached to another request's segment"
    );
    assert_eq!(seen.len(), REQUESTS);
    assert_no_violations(&collector);
    eprintln!("10k concurrent: at most {in_flight} handlers at once; {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_subsegment_request_arrives_whole_in_datagrams_under_64000_bytes() {
    let collector = Collector::start().unwrap();
    let recorder = udp_recorder(&collector.daemon_address(), 2048);
    let app = Router::new()
        .route(
            "/big",
            get(|| async {
                for i in 0..1000 {
                    let seg = xray_core::current().unwrap();
                    // Half flat, half nested one level, each with ~300 bytes of metadata.
                    let parent = if i % 2 == 0 {
                        seg
                    } else {
                        seg.begin_subsegment("group")
                    };
                    let sub = parent.begin_subsegment(&format!("step-{i}"));
                    sub.put_annotation("index", i);
                    sub.put_metadata("payload", "m".repeat(300));
                    sub.end();
                    if i % 2 == 1 {
                        parent.end();
                    }
                }
                "big"
            }),
        )
        .layer(XRayLayer::new("faults").with_recorder(recorder.clone()));
    let addr = serve(app).await;
    let reply = http_get(addr, "/big", &[]).await;
    assert_eq!(reply.status, 200);
    let trace_id = reply
        .trace_header()
        .and_then(|h| h.strip_prefix("Root="))
        .map(|r| r[..35].parse().unwrap())
        .unwrap();
    let trace = tokio::task::block_in_place(|| collector.wait_for_trace_id(trace_id, WAIT))
        .expect("trace complete");
    // 1 segment + 1000 steps + 500 groups.
    assert_eq!(trace.len(), 1501, "entities in the assembled trace");
    for i in 0..1000 {
        let step = trace
            .find(&format!("step-{i}"))
            .expect("every step arrives");
        assert_eq!(step.annotation("index"), Some(&Value::from(i)));
        let parent = trace.parent_of(step.id()).expect("parent found");
        assert_eq!(parent.name(), if i % 2 == 0 { "faults" } else { "group" });
    }
    assert_datagrams_fit(&collector);
    assert_no_violations(&collector);
    let stats = recorder.emitter_stats();
    assert_eq!(
        (stats.dropped, stats.errors, stats.trimmed),
        (0, 0, 0),
        "{stats:?}"
    );
    eprintln!(
        "1000 subsegments: {} datagrams, largest {} bytes; {stats:?}",
        collector.received().len(),
        collector
            .received()
            .iter()
            .map(|r| r.bytes.len())
            .max()
            .unwrap()
    );
}
