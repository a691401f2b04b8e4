//! Invocations through the layer, with the documents checked on a real UDP receiver.

use std::time::Duration;

use lambda_runtime::{service_fn, Context, LambdaEvent};
use tower::{Layer, ServiceExt};
use xray_lambda::XRayLambdaLayer;
use xray_local::Collector;

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
const FUNCTION_SEGMENT: &str = "53995c3f42cd8ad8";

fn event(header: Option<String>) -> LambdaEvent<serde_json::Value> {
    let mut ctx = Context::default();
    ctx.request_id = "req-1".into();
    ctx.xray_trace_id = header;
    LambdaEvent::new(serde_json::json!({"n": 3}), ctx)
}

async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<u64, lambda_runtime::Error> {
    let n = event.payload["n"].as_u64().unwrap_or(0);
    let total = xray_core::capture_async("sum", async move {
        xray_core::put_annotation("n", n);
        xray_core::capture("inner", || (1..=n).sum::<u64>())
    })
    .await;
    Ok(total)
}

#[tokio::test]
async fn sampled_invocation_sends_independent_subsegments_under_the_function_segment() {
    let collector = Collector::start().unwrap();
    let layer = XRayLambdaLayer::new().with_recorder(collector.recorder("fn"));
    let svc = layer.layer(service_fn(handler));
    let header = format!("Root={ROOT};Parent={FUNCTION_SEGMENT};Sampled=1;Lineage=abc:1");
    let out = svc.oneshot(event(Some(header))).await.unwrap();
    assert_eq!(out, 6);
    let docs = collector.wait_for_documents(1, Duration::from_secs(5));
    assert_eq!(docs.len(), 1, "the facade itself is never sent: {docs:?}");
    let d = &docs[0];
    assert_eq!(d.kind.as_deref(), Some("subsegment"));
    assert_eq!(d.name, "sum");
    assert_eq!(d.trace_id.unwrap().to_string(), ROOT);
    assert_eq!(d.parent_id.unwrap().to_string(), FUNCTION_SEGMENT);
    assert_eq!(d.annotations["n"], 3);
    assert_eq!(d.subsegments[0].name, "inner");
}

#[tokio::test]
async fn unsampled_invocation_sends_nothing() {
    let collector = Collector::start().unwrap();
    let layer = XRayLambdaLayer::new().with_recorder(collector.recorder("fn"));
    let svc = layer.layer(service_fn(handler));
    let header = format!("Root={ROOT};Parent={FUNCTION_SEGMENT};Sampled=0");
    assert_eq!(svc.oneshot(event(Some(header))).await.unwrap(), 6);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(collector.documents().is_empty());
}

#[tokio::test]
async fn missing_or_broken_header_runs_the_handler_untraced() {
    let collector = Collector::start().unwrap();
    let layer = XRayLambdaLayer::new().with_recorder(collector.recorder("fn"));
    for header in [None, Some("Root=garbage".to_string())] {
        let svc = layer.layer(service_fn(handler));
        assert_eq!(svc.oneshot(event(header)).await.unwrap(), 6);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(collector.documents().is_empty());
}
