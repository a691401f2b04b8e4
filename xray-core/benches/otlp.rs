//! The OTLP exporter's CPU costs: mapping a typical segment to spans on the request's thread
//! (what `emit` adds to a sampled request), encoding a full request on the emitter's thread,
//! and the UDP emitter's datagram encoding of the same segment to compare with.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use xray_core::emitter::otlp::document_to_spans;
use xray_core::emitter::otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use xray_core::emitter::otlp::opentelemetry_proto::tonic::resource::v1::Resource;
use xray_core::emitter::otlp::opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use xray_core::emitter::{encode_datagrams, MemoryEmitter, MAX_DATAGRAM_BYTES};
use xray_core::http::{IncomingRequest, ServerTracing};
use xray_core::sampling::AlwaysSample;
use xray_core::{Document, Recorder};

/// A server segment as an adapter records it (HTTP request and response, one annotation),
/// with one subsegment.
fn typical_segment() -> Document {
    let captured = MemoryEmitter::new();
    let recorder = Recorder::builder()
        .sampler(AlwaysSample)
        .emitter(captured.clone())
        .ignore_env()
        .build()
        .unwrap();
    let tracing = ServerTracing::new("checkout").with_recorder(recorder);
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
        s.begin_subsegment("price").end();
    }
    seg.finish(200, Some(42));
    captured.documents().remove(0)
}

fn benches(c: &mut Criterion) {
    let doc = typical_segment();
    c.bench_function("otlp_map_segment_with_one_subsegment", |b| {
        b.iter(|| {
            let mapped = document_to_spans(black_box(&doc), None);
            let bytes: usize = mapped.spans.iter().map(prost::Message::encoded_len).sum();
            black_box((mapped, bytes))
        })
    });
    c.bench_function("udp_encode_segment_with_one_subsegment", |b| {
        b.iter(|| encode_datagrams(black_box(doc.clone()), MAX_DATAGRAM_BYTES))
    });
    let mapped = document_to_spans(&doc, None);
    let spans: Vec<_> = (0..256).flat_map(|_| mapped.spans.clone()).collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: mapped.resource.clone(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    c.bench_function("otlp_encode_request_512_spans", |b| {
        b.iter(|| prost::Message::encode_to_vec(black_box(&request)))
    });
}

criterion_group!(otlp, benches);
criterion_main!(otlp);
