//! One trace across OpenTelemetry and X-Ray: an OpenTelemetry-instrumented client calls our
//! axum service (X-Ray, W3C accepted), which calls an OpenTelemetry-instrumented server through
//! xray-reqwest (W3C sent). The W3C propagator is opentelemetry-rust's own.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, Sampler, SdkTracerProvider};
use xray_local::Collector;
use xray_tower::XRayLayer;

use common::{serve, WAIT};

fn headers_to_map(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// A server instrumented with OpenTelemetry only: it extracts the caller's context and
/// answers `<trace id> <parent span id> <sampled>`.
async fn otel_server() -> SocketAddr {
    async fn handler(headers: HeaderMap) -> String {
        let cx = TraceContextPropagator::new().extract(&headers_to_map(&headers));
        let provider = SdkTracerProvider::builder().build();
        let span = provider
            .tracer("downstream")
            .start_with_context("downstream", &cx);
        let parent = cx.span().span_context().clone();
        let own = span.span_context().clone();
        assert_eq!(
            own.trace_id(),
            parent.trace_id(),
            "the child continues the trace"
        );
        format!(
            "{} {} {}",
            parent.trace_id(),
            parent.span_id(),
            parent.is_sampled()
        )
    }
    serve(Router::new().route("/", get(handler))).await
}

/// Our service: X-Ray segments, W3C accepted in and sent out.
async fn xray_service(collector: &Collector, downstream: SocketAddr) -> SocketAddr {
    async fn handler(State(downstream): State<SocketAddr>) -> String {
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(xray_reqwest::XRayMiddleware::new().send_w3c(true))
            .build();
        let res = client
            .get(format!("http://{downstream}/"))
            .send()
            .await
            .unwrap();
        res.text().await.unwrap()
    }
    let app = Router::new()
        .route("/", get(handler))
        .with_state(downstream)
        .layer(
            XRayLayer::new("middle")
                .with_recorder(collector.recorder("middle"))
                .accept_w3c(true),
        );
    serve(app).await
}

/// Trace ids whose first 4 bytes are the epoch second, as X-Ray requires: what the AWS
/// Distro for OpenTelemetry and `opentelemetry-aws`'s `XrayIdGenerator` configure.
#[derive(Debug, Default)]
struct XRayIds(RandomIdGenerator);

impl IdGenerator for XRayIds {
    fn new_trace_id(&self) -> TraceId {
        let mut bytes = self.0.new_trace_id().to_bytes();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        bytes[..4].copy_from_slice(&now.to_be_bytes());
        TraceId::from_bytes(bytes)
    }
    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// Calls `addr` from an OpenTelemetry span; returns the span's trace id, span id and the
/// response body.
async fn otel_call(
    addr: SocketAddr,
    sampler: Sampler,
    ids: impl IdGenerator + 'static,
) -> (String, String, String) {
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_id_generator(ids)
        .build();
    let span = provider.tracer("client").start("call middle");
    let cx = Context::current_with_span(span);
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    assert!(carrier.contains_key("traceparent"));
    let mut req = reqwest::Client::new().get(format!("http://{addr}/"));
    for (k, v) in &carrier {
        req = req.header(k, v);
    }
    let body = req.send().await.unwrap().text().await.unwrap();
    let sc = cx.span().span_context().clone();
    (sc.trace_id().to_string(), sc.span_id().to_string(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_client_xray_service_and_opentelemetry_server_share_one_trace() {
    let collector = Collector::start().unwrap();
    let downstream = otel_server().await;
    let middle = xray_service(&collector, downstream).await;
    let (otel_trace, otel_span, body) =
        otel_call(middle, Sampler::AlwaysOn, XRayIds::default()).await;

    let docs = collector.wait_for_documents(1, WAIT);
    let segment = &docs[0];
    // W3C → X-Ray: the same 128 bits, the caller's span as parent.
    assert_eq!(
        segment.trace_id.unwrap().to_string(),
        format!("1-{}-{}", &otel_trace[..8], &otel_trace[8..])
    );
    assert_eq!(segment.parent_id.unwrap().to_string(), otel_span);

    // X-Ray → W3C: the downstream server sees the same trace, with the call's subsegment as
    // its parent span.
    let call = &segment.subsegments[0];
    assert_eq!(call.namespace.as_deref(), Some("remote"));
    assert_eq!(body, format!("{otel_trace} {} true", call.id));
    assert!(
        collector.violations().is_empty(),
        "{:?}",
        collector.violations()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_opentelemetry_trace_is_continued_but_not_recorded() {
    let collector = Collector::start().unwrap();
    let downstream = otel_server().await;
    let middle = xray_service(&collector, downstream).await;
    let (otel_trace, _, body) = otel_call(middle, Sampler::AlwaysOff, XRayIds::default()).await;
    let mut parts = body.split(' ');
    assert_eq!(parts.next(), Some(otel_trace.as_str()));
    assert_eq!(parts.nth(1), Some("false"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(collector.documents().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_opentelemetry_trace_ids_are_continued_but_flagged_by_the_epoch_rule() {
    // The default OpenTelemetry generator draws all 128 bits at random. The trace is continued
    // unchanged (changing the id would split it), but X-Ray refuses ids whose first 8 hex
    // digits are not a recent epoch second: the collector reports it, as the service would.
    let collector = Collector::start().unwrap();
    let downstream = otel_server().await;
    let middle = xray_service(&collector, downstream).await;
    let (otel_trace, _, body) =
        otel_call(middle, Sampler::AlwaysOn, RandomIdGenerator::default()).await;
    assert!(body.starts_with(&otel_trace));
    let docs = collector.wait_for_documents(1, WAIT);
    assert_eq!(
        docs[0].trace_id.unwrap().to_string(),
        format!("1-{}-{}", &otel_trace[..8], &otel_trace[8..])
    );
    let epoch = u32::from_str_radix(&otel_trace[..8], 16).unwrap() as u64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(epoch) > 30 * 24 * 3600 {
        assert!(collector.violations().iter().any(|v| v.path == "trace_id"));
    }
}
