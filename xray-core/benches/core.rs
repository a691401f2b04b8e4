//! Microbenchmarks of the request-path costs: header parsing, ids, serialization, and a whole
//! sampled and unsampled request as an adapter records it.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use xray_core::emitter::{encode_datagrams, Emitter, MAX_DATAGRAM_BYTES};
use xray_core::http::{IncomingRequest, ServerTracing};
use xray_core::sampling::{AlwaysSample, NeverSample};
use xray_core::{context, Document, EntityId, Recorder, TraceHeader, TraceId};

/// Drops documents: measures the recorder, not an emitter.
#[derive(Debug)]
struct Discard;
impl Emitter for Discard {
    fn emit(&self, document: Document) {
        black_box(document);
    }
}

fn typical_segment() -> Document {
    let recorder = Recorder::builder()
        .sampler(AlwaysSample)
        .emitter(Discard)
        .ignore_env()
        .build()
        .unwrap();
    let captured = xray_core::emitter::MemoryEmitter::new();
    let r2 = Recorder::builder()
        .sampler(AlwaysSample)
        .emitter(captured.clone())
        .ignore_env()
        .build()
        .unwrap();
    drop(recorder);
    let tracing = ServerTracing::new("checkout").with_recorder(r2);
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
    captured.documents().remove(0)
}

fn benches(c: &mut Criterion) {
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    c.bench_function("header_parse", |b| {
        b.iter(|| black_box(header).parse::<TraceHeader>().unwrap())
    });
    let parsed: TraceHeader = header.parse().unwrap();
    c.bench_function("header_format", |b| {
        b.iter(|| black_box(&parsed).to_string())
    });
    c.bench_function("trace_id_new", |b| b.iter(TraceId::new));
    c.bench_function("entity_id_new", |b| b.iter(EntityId::new));

    let doc = typical_segment();
    let size = doc.to_json().len();
    c.bench_function(&format!("serialize_segment_{size}_bytes"), |b| {
        b.iter(|| black_box(&doc).to_json())
    });
    c.bench_function("encode_datagram", |b| {
        b.iter(|| encode_datagrams(black_box(doc.clone()), MAX_DATAGRAM_BYTES))
    });

    let req = IncomingRequest {
        method: "GET",
        host: Some("api.example.com"),
        path_and_query: "/orders/1234",
        user_agent: Some("curl/8.5.0"),
        trace_header: Some(header.as_bytes()),
        ..IncomingRequest::default()
    };
    for (label, sampled) in [("sampled", true), ("unsampled", false)] {
        let builder = Recorder::builder().emitter(Discard).ignore_env();
        let recorder = if sampled {
            builder.sampler(AlwaysSample).build().unwrap()
        } else {
            builder.sampler(NeverSample).build().unwrap()
        };
        let tracing = ServerTracing::new("checkout").with_recorder(recorder);
        let mut req = req;
        if !sampled {
            req.trace_header = None;
        }
        c.bench_function(&format!("request_{label}_with_one_subsegment"), |b| {
            b.iter(|| {
                let mut seg = tracing.begin(black_box(&req));
                context::maybe_sync_scope(seg.entity().cloned(), || {
                    xray_core::capture("db", || black_box(1));
                });
                let h = seg.response_header();
                seg.finish(200, Some(2));
                h
            })
        });
    }
}

criterion_group!(core, benches);
criterion_main!(core);
