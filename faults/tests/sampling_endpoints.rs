//! The daemon's sampling endpoints hang or answer garbage while a real server takes requests:
//! requests are served at normal speed, the fallback sampler decides, failures are counted.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::*;
use xray_core::sampling::{CentralizedSampler, LocalSampler};
use xray_core::Recorder;
use xray_local::Collector;
use xray_tower::XRayLayer;

/// A TCP "daemon" that treats every connection with `answer` on its own thread.
fn fake_daemon(answer: fn(std::net::TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    port
}

fn hang(mut s: std::net::TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    std::thread::sleep(Duration::from_secs(3600));
}

fn garbage(mut s: std::net::TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    let mut body =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n".to_vec();
    body.extend((0..64u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let _ = s.write_all(&body);
}

fn wrong_json(mut s: std::net::TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    let body = r#"{"SamplingRuleRecords": {"not": "an array"}, "SamplingTargetDocuments": 7}"#;
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

async fn served_with_broken_sampling(answer: fn(std::net::TcpStream)) {
    let port = fake_daemon(answer);
    let collector = Collector::start().unwrap();
    let daemon = format!("tcp:127.0.0.1:{port} udp:{}", collector.daemon_address());
    let sampler = Arc::new(
        CentralizedSampler::new(
            &daemon.parse().unwrap(),
            // The fallback samples everything, so the documents show who decided.
            LocalSampler::new(0, 1.0),
        )
        .with_timeout(Duration::from_millis(300))
        .with_targets_interval(Duration::from_millis(50))
        .with_rules_interval(Duration::from_millis(50)),
    );
    sampler.start();
    let recorder = Recorder::builder()
        .service_name("faults")
        .daemon_address(&daemon)
        .sampler_arc(sampler.clone())
        .ignore_env()
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(XRayLayer::new("faults").with_recorder(recorder.clone()));
    let addr = serve(app).await;

    let started = Instant::now();
    let times = latencies(addr, "/", 100).await;
    let slowest = times.iter().max().unwrap();
    assert!(
        *slowest < Duration::from_millis(250),
        "a request waited for the sampling endpoint: {slowest:?}"
    );
    assert_eq!(segments(&collector, 100).len(), 100, "the fallback sampled");
    assert_no_violations(&collector);
    // Give the poller time to fail at least once (hanging calls take the timeout).
    let deadline = started + Duration::from_secs(5);
    while sampler.status().rule_failures == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = sampler.status();
    assert!(status.rule_failures >= 1, "{status:?}");
    assert_eq!(status.rules, 0, "{status:?}");
    recorder.shutdown(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_sampling_endpoint_never_slows_requests() {
    served_with_broken_sampling(hang).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_sampling_endpoint_leaves_the_fallback_deciding() {
    served_with_broken_sampling(garbage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrongly_shaped_json_from_the_sampling_endpoint_leaves_the_fallback_deciding() {
    served_with_broken_sampling(wrong_json).await;
}
