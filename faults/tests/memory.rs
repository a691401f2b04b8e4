//! Memory stays bounded through a long burst while the daemon is absent. Alone in its test
//! binary, so the RSS figures are not mixed with other tests.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// `FAULTS_BURST_SECS` (default 5) of requests, 64 at a time, with nobody at the daemon
/// address. The figures of a 60 s run are in `faults/README.md`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_through_a_burst_with_the_daemon_absent() {
    let secs: u64 = std::env::var("FAULTS_BURST_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let recorder = udp_recorder(&format!("127.0.0.1:{}", closed_udp_port()), 2048);
    let addr = serve(work_app(&recorder)).await;
    let client = h2_client();
    let run = |duration: Duration| {
        let client = client.clone();
        async move {
            let deadline = Instant::now() + duration;
            let workers: Vec<_> = (0..64)
                .map(|_| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            let req = http::Request::get(format!("http://{addr}/work"))
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            let reply = send(&client, req).await.expect("request failed");
                            assert_eq!(reply.status, 200);
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut total = 0;
            for w in workers {
                total += w.await.unwrap();
            }
            total
        }
    };
    // Warm up allocators, connection and queue before the first reading.
    run(Duration::from_secs(1)).await;
    let before = rss_kib();
    let requests = run(Duration::from_secs(secs)).await;
    let after = rss_kib();
    let stats = recorder.emitter_stats();
    let growth = after.saturating_sub(before);
    eprintln!(
        "burst of {secs} s: {requests} requests ({}/s), RSS {before} KiB -> {after} KiB \
         (+{growth} KiB); {stats:?}",
        requests / secs.max(1)
    );
    assert!(requests > 0);
    assert!(stats.accepted >= requests, "{stats:?}");
    // The queue holds at most 2048 documents; everything else is bounded per connection.
    assert!(growth < 64 * 1024, "RSS grew by {growth} KiB");
}
