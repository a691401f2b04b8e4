//! One trace across three SDKs: a caller instrumented with the OpenTelemetry SDK (AWS's
//! X-Ray propagator and id generator) calls our axum service, which records with this SDK and
//! sends over OTLP, which calls an express service traced by the official Node SDK (UDP).
//! xray-local receives both transports and assembles one trace with the parents chained.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use interop::env;
use interop::middle::{Framework, MiddleService};
use interop::peer::PeerProcess;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use xray_core::emitter::otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use xray_core::emitter::otlp::opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, KeyValue,
};
use xray_core::emitter::otlp::opentelemetry_proto::tonic::resource::v1::Resource;
use xray_core::emitter::otlp::opentelemetry_proto::tonic::trace::v1::{
    span, ResourceSpans, ScopeSpans, Span,
};
use xray_core::emitter::otlp::{trace_id_from_otlp, OtlpEmitter};
use xray_core::sampling::AlwaysSample;
use xray_core::{EntityId, Recorder};
use xray_local::Collector;

fn nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn an_opentelemetry_caller_our_otlp_service_and_the_node_sdk_make_one_trace() {
    let what = "OpenTelemetry SDK -> axum over OTLP -> Node SDK";
    let Some(modules) = env::node_modules(what) else {
        return;
    };
    let collector = Collector::builder()
        .otlp_listen("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    let otlp_url = format!("http://{}/v1/traces", collector.otlp().unwrap().addr());

    let mut cmd = Command::new(env::node());
    cmd.arg(env::peer_script("node_callee.js"))
        .arg(collector.daemon_address())
        .env("NODE_PATH", modules)
        .env_remove("AWS_XRAY_DAEMON_ADDRESS")
        .env("AWS_XRAY_CONTEXT_MISSING", "IGNORE_ERROR");
    let node = PeerProcess::start("node-callee", cmd, Duration::from_secs(30));

    let recorder = Recorder::builder()
        .service_name(Framework::Axum.service_name())
        .sampler(AlwaysSample)
        .emitter(
            OtlpEmitter::builder()
                .endpoint(&otlp_url)
                .batch_delay(Duration::from_millis(10))
                .build(),
        )
        .ignore_env()
        .build()
        .unwrap();
    let middle = MiddleService::start(Framework::Axum, recorder.clone(), node.url("/echo"));

    // The OpenTelemetry caller: a client span, its context injected as X-Amzn-Trace-Id.
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_id_generator(XrayIdGenerator::default())
        .build();
    let tracer = provider.tracer("otel-caller");
    let start = nanos_now();
    let client = tracer
        .span_builder("otel-caller")
        .with_kind(SpanKind::Client)
        .start(&tracer);
    let cx = Context::current_with_span(client);
    let mut headers: HashMap<String, String> = HashMap::new();
    XrayPropagator::default().inject_context(&cx, &mut headers);
    let header = headers
        .get("x-amzn-trace-id")
        .cloned()
        .expect("the propagator writes X-Amzn-Trace-Id");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let res = reqwest::Client::new()
            .get(middle.url("/hop"))
            .header("x-amzn-trace-id", &header)
            .send()
            .await
            .expect("our service answers");
        (res.status().as_u16(), res.text().await.unwrap_or_default())
    });
    assert_eq!(status, 200, "{body}\n{}", node.log());
    cx.span().end();
    let end = nanos_now();
    let otel_trace = cx.span().span_context().trace_id().to_bytes();
    let otel_span = cx.span().span_context().span_id().to_bytes();

    // The caller's span goes to xray-local over OTLP too, as its collector would send it.
    let span = Span {
        trace_id: otel_trace.to_vec(),
        span_id: otel_span.to_vec(),
        name: "otel-caller".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("otel-caller".into())),
                    }),
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let posted = rt.block_on(async {
        reqwest::Client::new()
            .post(&otlp_url)
            .header("content-type", "application/x-protobuf")
            .body(prost::Message::encode_to_vec(&request))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(posted.ok(), Some(200));
    assert!(recorder.flush(Duration::from_secs(10)));

    let trace_id = trace_id_from_otlp(&otel_trace).expect("an X-Ray-shaped trace id");
    assert!(
        header.contains(&format!("Root={trace_id}")),
        "the propagator sent the X-Ray form of the id: {header}"
    );
    let trace = collector
        .wait_for_trace(
            |t| {
                t.trace_id() == Some(trace_id)
                    && t.find("otel-caller").is_some()
                    && t.find("rust-axum").is_some()
                    && t.find("node-callee").is_some()
            },
            Duration::from_secs(15),
        )
        .unwrap_or_else(|| {
            panic!(
                "one trace with the three services; got {:?}\n{}",
                collector
                    .documents()
                    .iter()
                    .map(|d| (&d.name, d.trace_id))
                    .collect::<Vec<_>>(),
                node.log()
            )
        });
    let caller = trace.find("otel-caller").unwrap();
    let ours = trace.find("rust-axum").unwrap();
    let theirs = trace.find("node-callee").unwrap();
    let otel_span_id = EntityId::from_u64(u64::from_be_bytes(otel_span)).unwrap();
    assert_eq!(caller.id(), otel_span_id);
    assert!(ours.is_segment() && theirs.is_segment());
    assert_eq!(
        ours.claimed_parent_id(),
        Some(otel_span_id),
        "our segment's parent is the OpenTelemetry span"
    );
    // The Node segment's parent is our outbound call, a subsegment of our segment.
    let call = trace
        .parent_of(theirs.id())
        .expect("the Node segment hangs below our outbound call");
    assert!(!call.is_segment());
    assert_eq!(theirs.claimed_parent_id(), Some(call.id()));
    assert_eq!(trace.parent_of(call.id()).map(|p| p.id()), Some(ours.id()));
    assert_eq!(call.document().namespace.as_deref(), Some("remote"));
    interop::assert_no_violations(&collector);
    drop(middle);
    let _ = provider.shutdown();
}
