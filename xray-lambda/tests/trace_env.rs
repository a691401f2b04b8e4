//! The `_X_AMZN_TRACE_ID` fallback, in a test binary of its own: these tests set process-wide
//! environment variables, so they never share a process with the other tests, and take turns
//! among themselves (`ENV` below).

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use lambda_runtime::{service_fn, Context, LambdaEvent};
use tower::{Layer, ServiceExt};
use xray_lambda::{XRayLambdaLayer, TRACE_ENV};
use xray_local::Collector;

const FROM_ENV: &str = "53995c3f42cd8ad8";
const FROM_CONTEXT: &str = "70de5b6f19ff9a0a";

static ROOT: LazyLock<String> = LazyLock::new(|| xray_core::TraceId::new().to_string());

/// One test at a time changes the environment.
static ENV: Mutex<()> = Mutex::new(());

fn header(parent: &str, sampled: u8) -> String {
    format!("Root={};Parent={parent};Sampled={sampled}", *ROOT)
}

/// Runs `f` on a fresh runtime with `vars` set (or removed, for `None`), then restores them.
fn with_env<R>(vars: &[(&str, Option<String>)], f: impl std::future::Future<Output = R>) -> R {
    let _turn = ENV.lock().unwrap_or_else(|p| p.into_inner());
    let saved: Vec<_> = vars
        .iter()
        .map(|(k, _)| (k.to_string(), std::env::var_os(k)))
        .collect();
    for (k, v) in vars {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
    let out = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
    for (k, v) in saved {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
    out
}

fn event(context_header: Option<String>) -> LambdaEvent<serde_json::Value> {
    let mut ctx = Context::default();
    ctx.request_id = "req-1".into();
    ctx.xray_trace_id = context_header;
    LambdaEvent::new(serde_json::json!({}), ctx)
}

async fn handler(_event: LambdaEvent<serde_json::Value>) -> Result<u8, lambda_runtime::Error> {
    Ok(xray_core::capture("work", || 1))
}

/// Runs one invocation through `XRayLambdaLayer` and returns the parents of what was sent.
async fn parents_sent(collector: &Collector, context_header: Option<String>) -> Vec<String> {
    let layer = XRayLambdaLayer::new().with_recorder(collector.recorder("fn"));
    let out = layer
        .layer(service_fn(handler))
        .oneshot(event(context_header))
        .await
        .unwrap();
    assert_eq!(out, 1);
    collector.wait_for_documents(1, Duration::from_millis(500));
    collector
        .documents()
        .iter()
        .map(|d| d.parent_id.map(|p| p.to_string()).unwrap_or_default())
        .collect()
}

#[test]
fn without_a_context_header_the_environment_header_is_used() {
    let collector = Collector::start().unwrap();
    let parents = with_env(&[(TRACE_ENV, Some(header(FROM_ENV, 1)))], async {
        parents_sent(&collector, None).await
    });
    assert_eq!(parents, [FROM_ENV]);
    let doc = &collector.documents()[0];
    assert_eq!(doc.trace_id.unwrap().to_string(), *ROOT);
    assert!(
        collector.violations().is_empty(),
        "{:?}",
        collector.violations()
    );
}

#[test]
fn the_context_header_wins_over_the_environment() {
    let collector = Collector::start().unwrap();
    let parents = with_env(&[(TRACE_ENV, Some(header(FROM_ENV, 1)))], async {
        parents_sent(&collector, Some(header(FROM_CONTEXT, 1))).await
    });
    assert_eq!(parents, [FROM_CONTEXT]);
}

#[test]
fn an_unsampled_environment_header_sends_nothing() {
    let collector = Collector::start().unwrap();
    let parents = with_env(&[(TRACE_ENV, Some(header(FROM_ENV, 0)))], async {
        parents_sent(&collector, None).await
    });
    assert!(parents.is_empty(), "{parents:?}");
}

#[test]
fn no_header_anywhere_sends_nothing() {
    let collector = Collector::start().unwrap();
    let parents = with_env(&[(TRACE_ENV, None)], async {
        parents_sent(&collector, None).await
    });
    assert!(parents.is_empty(), "{parents:?}");
}

#[cfg(feature = "http")]
mod http {
    use lambda_http::request::LambdaRequest;
    use lambda_http::{Adapter, Request};
    use xray_lambda::XRayHttpLayer;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    const FUNCTION_URL: &str = r#"{
      "version": "2.0",
      "routeKey": "$default",
      "rawPath": "/",
      "rawQueryString": "",
      "headers": { "host": "abc.lambda-url.us-east-1.on.aws", "x-forwarded-proto": "https" },
      "requestContext": {
        "domainName": "abc.lambda-url.us-east-1.on.aws",
        "http": { "method": "GET", "path": "/", "sourceIp": "192.0.2.10" },
        "requestId": "id",
        "routeKey": "$default",
        "stage": "$default"
      },
      "isBase64Encoded": false
    }"#;

    async fn ok(_req: Request) -> Result<&'static str, lambda_http::Error> {
        Ok("ok")
    }

    /// Runs one `lambda_http` invocation whose context carries no trace header.
    async fn invoke(layer: XRayHttpLayer) {
        let payload: LambdaRequest = serde_json::from_str(FUNCTION_URL).unwrap();
        let event = LambdaEvent::new(payload, Context::default());
        Adapter::from(layer.layer(lambda_http::service_fn(ok)))
            .oneshot(event)
            .await
            .unwrap();
    }

    #[test]
    fn lambda_http_invocations_fall_back_to_the_environment_header() {
        let collector = Collector::start().unwrap();
        let layer = XRayHttpLayer::named("api").with_recorder(collector.recorder("unused"));
        with_env(&[(TRACE_ENV, Some(header(FROM_ENV, 1)))], invoke(layer));
        let docs = collector.wait_for_documents(1, WAIT);
        assert_eq!(docs.len(), 1, "{docs:?}");
        assert_eq!(docs[0].parent_id.unwrap().to_string(), FROM_ENV);
        assert_eq!(docs[0].trace_id.unwrap().to_string(), *ROOT);
        assert_eq!(docs[0].name, "api");
    }

    #[test]
    fn lambda_http_subsegments_are_named_after_the_function() {
        let collector = Collector::start().unwrap();
        let names = with_env(
            &[
                (TRACE_ENV, Some(header(FROM_ENV, 1))),
                ("AWS_LAMBDA_FUNCTION_NAME", Some("checkout-fn".to_string())),
            ],
            async {
                // Read when the layer is built, as in a function's `main`.
                let layer = XRayHttpLayer::new().with_recorder(collector.recorder("unused"));
                invoke(layer).await;
                collector.wait_for_documents(1, WAIT);
                collector
                    .documents()
                    .into_iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
            },
        );
        assert_eq!(names, ["checkout-fn"]);
    }
}
