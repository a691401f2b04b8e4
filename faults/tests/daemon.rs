//! The daemon is missing or unreachable: requests are served as usual, nothing surfaces to
//! them, and every document handed to the emitter is accounted for in its counters.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::*;
use xray_core::Recorder;
use xray_tower::XRayLayer;

fn app(recorder: &Recorder) -> Router {
    Router::new()
        .route(
            "/work",
            get(|| async {
                xray_core::put_annotation("step", "start");
                xray_core::capture_async("inner", async {
                    xray_core::put_metadata("detail", "x".repeat(100));
                })
                .await;
                "done"
            }),
        )
        .layer(XRayLayer::new("faults").with_recorder(recorder.clone()))
}

async fn serve_requests(recorder: &Recorder, n: usize) {
    let addr = serve(app(recorder)).await;
    for _ in 0..n {
        let reply = http_get(addr, "/work", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(&reply.body[..], b"done");
        assert!(reply
            .trace_header()
            .is_some_and(|h| h.starts_with("Root=1-")));
    }
}

/// Waits until every accepted document went through the emitter thread.
fn drained(recorder: &Recorder) -> xray_core::emitter::EmitterStats {
    assert!(recorder.flush(Duration::from_secs(10)), "flush timed out");
    recorder.emitter_stats()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_port_answering_icmp_unreachable_never_reaches_requests() {
    let port = closed_udp_port();
    // The port really answers with ICMP port unreachable: a connected socket sees it as
    // ECONNREFUSED on a later call. The emitter's socket is connected: the report costs the
    // datagram it lands on nothing (that one is sent again), so every document reaches the
    // kernel and counts as sent, the answers count as refused, and none ever reaches a
    // request.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.connect(("127.0.0.1", port)).unwrap();
    probe.send(b"probe").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let refused = (0..5).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        probe.send(b"probe").is_err()
    });
    assert!(
        refused,
        "the closed port did not answer with ICMP unreachable"
    );

    let recorder = udp_recorder(&format!("127.0.0.1:{port}"), 2048);
    serve_requests(&recorder, 200).await;
    let stats = drained(&recorder);
    assert_eq!(stats.accepted, 200, "{stats:?}");
    assert_eq!(stats.split, 0, "{stats:?}");
    assert_eq!(
        stats.sent + stats.dropped + stats.errors,
        stats.accepted,
        "{stats:?}"
    );
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!((stats.sent, stats.errors), (200, 0), "{stats:?}");
    assert!(
        stats.refused > 0 && stats.refused <= stats.datagrams,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_absent_unresolvable_host_counts_errors_and_serves_requests() {
    let recorder = udp_recorder("xray-daemon.invalid:2000", 2048);
    serve_requests(&recorder, 200).await;
    let stats = drained(&recorder);
    assert_eq!(stats.accepted, 200, "{stats:?}");
    assert_eq!(stats.sent, 0, "{stats:?}");
    assert_eq!(stats.split, 0, "{stats:?}");
    assert_eq!(stats.errors + stats.dropped, stats.accepted, "{stats:?}");
    assert!(stats.errors > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_coming_back_receives_documents_again() {
    // Nobody listens at first; then the collector binds the same port.
    let port = closed_udp_port();
    let recorder = udp_recorder(&format!("127.0.0.1:{port}"), 2048);
    serve_requests(&recorder, 20).await;
    drained(&recorder);
    let collector = xray_local::Collector::bind(([127, 0, 0, 1], port).into()).unwrap();
    serve_requests(&recorder, 5).await;
    let segs = segments(&collector, 5);
    assert_eq!(segs.len(), 5);
    assert_no_violations(&collector);
}
