//! A burst against a full emitter queue: documents are dropped and counted, requests are not
//! slowed down.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_emitter_queue_drops_and_counts_without_slowing_requests() {
    let port = closed_udp_port();
    let idle = udp_recorder(&format!("127.0.0.1:{port}"), 4096);
    let full = udp_recorder(&format!("127.0.0.1:{port}"), 1);
    let idle_addr = serve(work_app(&idle)).await;
    let full_addr = serve(work_app(&full)).await;

    // Keep the one-slot queue full from another thread for the whole measurement.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let (full, stop) = (full.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    full.begin_segment("flood", None).end();
                }
                std::thread::yield_now();
            }
        })
    };

    // Interleave rounds so both servers see the same machine load.
    let (mut idle_times, mut full_times) = (Vec::new(), Vec::new());
    let before = full.emitter_stats();
    for _ in 0..5 {
        idle_times.extend(latencies(idle_addr, "/work", 40).await);
        full_times.extend(latencies(full_addr, "/work", 40).await);
    }
    let during = full.emitter_stats();
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();

    assert!(
        during.dropped > before.dropped,
        "the queue never overflowed: {during:?}"
    );
    let (idle_median, full_median) = (median(idle_times), median(full_times));
    eprintln!("median latency: idle queue {idle_median:?}, full queue {full_median:?}; {during:?}");
    // A guard against blocking on the queue, not a benchmark.
    assert!(
        full_median < idle_median * 10 + Duration::from_millis(2),
        "full queue slowed requests: {full_median:?} vs {idle_median:?}"
    );
    assert!(full_median < Duration::from_millis(50), "{full_median:?}");

    assert!(full.flush(Duration::from_secs(10)));
    let s = full.emitter_stats();
    assert_eq!(s.sent + s.dropped + s.errors, s.accepted, "{s:?}");
}
