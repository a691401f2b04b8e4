//! The collector stays bounded whatever arrives: the queue between the receiving thread and
//! the worker, the datagrams kept, the documents of one trace and the violations, all counted
//! in bytes where size matters.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Map, Value};
use xray_core::time::Timestamp;
use xray_core::{EntityId, TraceId};
use xray_local::limits::{
    DEFAULT_MAX_BYTES_PER_TRACE, DEFAULT_MAX_DATAGRAM_BYTES, MAX_VIOLATIONS,
    MAX_VIOLATIONS_PER_DOCUMENT, MAX_VIOLATIONS_PER_TRACE, MAX_VIOLATION_MESSAGE_BYTES,
    MAX_VIOLATION_PATH_BYTES, QUEUE_BYTES,
};
use xray_local::Collector;

const MIB: usize = 1 << 20;

/// Waits until `f` returns the same value twice, 300 ms apart (at most 20 s).
/// Waits (up to 20 s) until `cond` holds: the collector's worker may still be busy with what
/// the receiving thread took in, more so on a loaded machine.
fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn settled<T: PartialEq>(mut f: impl FnMut() -> T) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = f();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = f();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn the_queue_to_the_worker_is_bounded_in_bytes_and_drops_are_counted() {
    let collector = Collector::start().unwrap();
    // The worker runs the callbacks: hold it in the first one until the flood is over.
    let (entered_tx, entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let gate = Mutex::new(Some((entered_tx, released)));
    collector.on_violation(move |_| {
        if let Some((entered, released)) = gate.lock().unwrap().take() {
            entered.send(()).unwrap();
            let _ = released.recv();
        }
    });
    send_all(collector.addr(), &[b"junk".to_vec()]);
    entered
        .recv_timeout(Duration::from_secs(5))
        .expect("the worker is held");

    let sent = 1_000;
    let datagrams: Vec<Vec<u8>> = (0..sent)
        .map(|i| datagram(&big_in_progress_segment(TraceId::new(), i, 60_000, false)))
        .collect();
    send_all(collector.addr(), &datagrams);
    std::thread::sleep(Duration::from_millis(300));
    release.send(()).unwrap();

    let received = settled(|| collector.received().len()) - 1;
    let queued_at_most = QUEUE_BYTES / 60_000 + 1;
    assert!(
        received <= queued_at_most,
        "{received} of {sent} 60 KB datagrams waited for the held worker"
    );
    let stats = collector.stats();
    eprintln!("held worker: {received} of {sent} queued, {stats:?}");
    assert!(stats.dropped > 0, "{stats:?}");
    assert!(received as u64 + stats.dropped <= sent as u64, "{stats:?}");
    assert_eq!(
        stats.dropped as usize + received,
        stats.received as usize - 1,
        "{stats:?}"
    );
}

#[test]
fn the_default_collector_keeps_a_bounded_number_of_bytes_of_datagrams() {
    let collector = Collector::start().unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // 2 500 distinct 60 KB in-progress segments: 150 MB on the wire, sent at a pace the
    // worker keeps up with.
    for i in 0..2_500 {
        let d = datagram(&big_in_progress_segment(TraceId::new(), i, 60_000, false));
        socket.send_to(&d, collector.addr()).unwrap();
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    settled(|| collector.stats().received);
    let kept: usize = collector.received().iter().map(|r| r.bytes.len()).sum();
    assert!(
        kept <= DEFAULT_MAX_DATAGRAM_BYTES,
        "{} MiB of datagrams kept",
        kept / MIB
    );
    assert!(collector.documents().len() <= collector.received().len());
    let stats = collector.stats();
    assert!(stats.datagrams_forgotten > 0, "{stats:?}");
}

#[test]
fn one_trace_keeps_at_most_its_byte_budget_of_documents() {
    let collector = Collector::start().unwrap();
    let trace = TraceId::new();
    // In-progress versions of one segment, each 60 KB of zeros: about 1 MB in memory each.
    let datagrams: Vec<Vec<u8>> = (0..150)
        .map(|_| datagram(&big_in_progress_segment(trace, 1, 60_000, true)))
        .collect();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in &datagrams {
        socket.send_to(d, collector.addr()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_until(|| {
        collector.stats().documents_refused > 0
            && collector
                .violations()
                .iter()
                .any(|v| v.message.contains("documents of this trace"))
    });
    settled(|| (collector.stats(), collector.violations().len()));
    let kept = collector.trace(trace).expect("the trace").documents().len();
    // Each holds 30 000 JSON values of 32 bytes at least.
    assert!(
        kept <= DEFAULT_MAX_BYTES_PER_TRACE / (30_000 * 32),
        "{kept} documents kept for one trace"
    );
    assert!(
        collector
            .violations()
            .iter()
            .any(|v| v.message.contains("documents of this trace")),
        "the refusal is reported"
    );
    assert!(collector.stats().documents_refused > 0);
}

#[test]
fn documents_beyond_the_per_trace_limit_are_not_assembled() {
    let collector = Collector::builder()
        .max_documents_per_trace(50)
        .quiet_period(Duration::from_millis(50))
        .start()
        .unwrap();
    let trace = TraceId::new();
    let docs = flat_chain_documents(trace, 80);
    let datagrams: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| datagram(&serde_json::to_value(d).unwrap()))
        .collect();
    send_all(collector.addr(), &datagrams);
    let got = collector
        .wait_for_trace_id(trace, Duration::from_secs(10))
        .expect("the first 50 make a complete trace");
    assert_eq!(got.len(), 50);
    assert_eq!(collector.stats().documents_refused, 30);
    assert_eq!(
        collector.documents().len(),
        80,
        "every datagram is still kept raw"
    );
}

fn bad_keys(n: usize) -> Map<String, Value> {
    (0..n)
        .map(|i| (format!("bad-key-{i}"), Value::from(1)))
        .collect()
}

fn doc_with_bad_keys(trace: TraceId, keys: usize) -> Vec<u8> {
    let t = Timestamp::now().as_secs_f64();
    datagram(&json!({"name": "web", "id": EntityId::new().to_string(),
                     "trace_id": trace.to_string(), "start_time": t, "end_time": t + 0.01,
                     "annotations": bad_keys(keys)}))
}

#[test]
fn violations_are_bounded_per_document_per_trace_and_in_total() {
    let collector = Collector::start().unwrap();
    let seen = Arc::new(Mutex::new(0usize));
    let s = seen.clone();
    collector.on_violation(move |_| *s.lock().unwrap() += 1);

    // One document with 1 000 bad keys: 100 violations and one that says how many more.
    send_all(
        collector.addr(),
        &[doc_with_bad_keys(TraceId::new(), 1_000)],
    );
    wait_until(|| collector.violations().len() > MAX_VIOLATIONS_PER_DOCUMENT);
    let v = settled(|| collector.violations().len());
    assert_eq!(
        v,
        MAX_VIOLATIONS_PER_DOCUMENT + 1,
        "{:?}",
        collector.violations().last()
    );
    assert!(collector.violations()[MAX_VIOLATIONS_PER_DOCUMENT]
        .message
        .contains("900 more"));

    // Twenty such documents in one trace: at most 1 000 kept for it.
    collector.clear();
    let trace = TraceId::new();
    let same: Vec<Vec<u8>> = (0..20).map(|_| doc_with_bad_keys(trace, 1_000)).collect();
    send_all(collector.addr(), &same);
    wait_until(|| collector.violations().len() >= MAX_VIOLATIONS_PER_TRACE);
    let v = settled(|| collector.violations().len());
    assert!(
        v <= MAX_VIOLATIONS_PER_TRACE,
        "{v} violations kept for one trace"
    );

    // 150 traces: at most 10 000 kept in all, the newest.
    collector.clear();
    let many: Vec<Vec<u8>> = (0..150)
        .map(|_| doc_with_bad_keys(TraceId::new(), 1_000))
        .collect();
    send_all(collector.addr(), &many);
    wait_until(|| collector.stats().violations_forgotten > 0);
    let v = settled(|| (collector.violations().len(), *seen.lock().unwrap())).0;
    assert!(v <= MAX_VIOLATIONS, "{v} violations kept");
    assert!(collector.stats().violations_forgotten > 0);
    // Every violation of every document received still reached the callbacks (the binary
    // prints them). Each document has 101; UDP may lose a few datagrams on a loaded machine.
    let received = collector.stats().received as usize;
    assert!(received > 150, "{received} of 171 datagrams received");
    let seen = *seen.lock().unwrap();
    assert!(
        seen >= received * 101 - 10,
        "{seen} violations for {received} documents"
    );
}

#[test]
fn long_annotation_keys_do_not_make_long_violations() {
    let collector = Collector::start().unwrap();
    let t = Timestamp::now().as_secs_f64();
    let key = "k-".repeat(20_000);
    send_all(
        collector.addr(),
        &[datagram(
            &json!({"name": "web", "id": EntityId::new().to_string(),
                           "trace_id": TraceId::new().to_string(), "start_time": t,
                           "end_time": t + 0.01, "annotations": {key: 1}}),
        )],
    );
    settled(|| collector.violations().len());
    for v in collector.violations() {
        assert!(
            v.path.len() <= MAX_VIOLATION_PATH_BYTES
                && v.message.len() <= MAX_VIOLATION_MESSAGE_BYTES,
            "{} / {}",
            v.path.len(),
            v.message.len()
        );
    }
}
