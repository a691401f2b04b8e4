//! Prints the minimum per-operation time over batches, for request-path costs on a busy machine.
use std::hint::black_box;
use std::time::Instant;
use xray_core::emitter::{Emitter, MemoryEmitter};
use xray_core::http::{IncomingRequest, ServerTracing};
use xray_core::sampling::AlwaysSample;
use xray_core::{Document, Recorder, TraceHeader};

#[derive(Debug)]
struct Discard;
impl Emitter for Discard {
    fn emit(&self, d: Document) {
        black_box(d);
    }
}

fn min_ns(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..30 {
        let n = 20_000;
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

/// [`min_ns`] of serializing `value` with serde_json into a buffer of `capacity` bytes.
fn serde_ns<T: serde::Serialize>(value: &T, capacity: usize) -> f64 {
    min_ns(|| {
        let mut v = Vec::with_capacity(capacity);
        serde_json::to_writer(&mut v, black_box(value)).unwrap();
        black_box(v);
    })
}

fn main() {
    let mem = MemoryEmitter::new();
    let r = Recorder::builder()
        .sampler(AlwaysSample)
        .emitter(mem.clone())
        .ignore_env()
        .build()
        .unwrap();
    let tracing = ServerTracing::new("checkout").with_recorder(r);
    let req = IncomingRequest {
        method: "GET",
        host: Some("api.example.com"),
        path_and_query: "/orders/1234",
        user_agent: Some("curl/8.5.0"),
        peer_ip: Some("10.1.2.3".parse().unwrap()),
        ..IncomingRequest::default()
    };
    let mut seg = tracing.begin(&req);
    if let Some(s) = seg.entity() {
        s.put_annotation("order_id", 1234);
    }
    seg.finish(200, Some(42));
    let doc = mem.documents().remove(0);
    let json = doc.to_json();
    println!("document: {} bytes", json.len());
    println!(
        "serialize: {:.0} ns",
        min_ns(|| {
            black_box(black_box(&doc).to_json());
        })
    );
    // serde_json on the same values, for comparison with the hand-written writer above.
    let mut d2 = doc.clone();
    d2.aws.clear();
    d2.service = None;
    let serde = |what: &str, ns: f64| println!("serde_json, for comparison: {what}: {ns:.0} ns");
    serde("whole document", serde_ns(&doc, 1024));
    serde("without aws+service maps", serde_ns(&d2, 1024));
    serde("one timestamp", serde_ns(&doc.start_time, 64));
    serde("one id", serde_ns(&doc.id, 64));
    serde("http block", serde_ns(&doc.http, 256));
    let h = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    println!(
        "header parse: {:.0} ns",
        min_ns(|| {
            black_box(black_box(h).parse::<TraceHeader>().unwrap());
        })
    );
    let r2 = Recorder::builder()
        .sampler(AlwaysSample)
        .emitter(Discard)
        .ignore_env()
        .build()
        .unwrap();
    let t2 = ServerTracing::new("checkout").with_recorder(r2);
    println!(
        "sampled request (begin+annotation+end, discard emitter): {:.0} ns",
        min_ns(|| {
            let mut s = t2.begin(black_box(&req));
            if let Some(e) = s.entity() {
                e.put_annotation("order_id", 1234);
            }
            s.finish(200, Some(2));
        })
    );
    let r3 = Recorder::builder()
        .sampler(xray_core::sampling::NeverSample)
        .emitter(Discard)
        .ignore_env()
        .build()
        .unwrap();
    let t3 = ServerTracing::new("checkout").with_recorder(r3);
    println!(
        "unsampled request: {:.0} ns",
        min_ns(|| {
            let mut s = t3.begin(black_box(&req));
            black_box(s.response_header());
            s.finish(200, Some(2));
        })
    );
    println!(
        "timestamp now: {:.0} ns",
        min_ns(|| {
            black_box(xray_core::time::Timestamp::now());
        })
    );
}
