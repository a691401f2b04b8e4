//! `lambda_http` invocations through `XRayHttpLayer`, built from real event JSON and driven
//! through `lambda_http`'s own adapter (what `lambda_http::run` does), with the documents
//! checked as they arrive on a real UDP receiver.
#![cfg(feature = "http")]

use std::sync::LazyLock;
use std::time::Duration;

use lambda_http::request::LambdaRequest;
use lambda_http::{service_fn, Adapter, Body, Context, Error, LambdaEvent, Request, Response};
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};
use xray_lambda::{XRayHttpLayer, XRayLambdaLayer};
use xray_local::Collector;

const FUNCTION_SEGMENT: &str = "53995c3f42cd8ad8";
const WAIT: Duration = Duration::from_secs(5);

/// A trace that started now: collectors refuse trace ids more than 30 days old.
static ROOT: LazyLock<String> = LazyLock::new(|| xray_core::TraceId::new().to_string());

/// The invocation's trace header, as Lambda hands it over: the function's segment as parent.
fn sampled() -> String {
    format!(
        "Root={};Parent={FUNCTION_SEGMENT};Sampled=1;Lineage=a87bd80c:0",
        *ROOT
    )
}

/// API Gateway REST API (payload v1), trimmed from a real event.
const REST_API: &str = r#"{
  "resource": "/orders/{id}",
  "path": "/orders/7",
  "httpMethod": "GET",
  "headers": {
    "Host": "abc123.execute-api.us-east-1.amazonaws.com",
    "User-Agent": "curl/8.5.0",
    "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678;Parent=1111111111111111;Sampled=1",
    "X-Forwarded-For": "203.0.113.9, 10.0.0.1",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Proto": "https"
  },
  "queryStringParameters": { "token": "secret" },
  "pathParameters": { "id": "7" },
  "requestContext": {
    "accountId": "123456789012",
    "resourcePath": "/orders/{id}",
    "httpMethod": "GET",
    "stage": "Prod",
    "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    "identity": { "sourceIp": "203.0.113.9", "userAgent": "curl/8.5.0" },
    "apiId": "abc123"
  },
  "body": null,
  "isBase64Encoded": false
}"#;

/// API Gateway HTTP API (payload v2), trimmed from a real event: no `X-Forwarded-For`.
const HTTP_API: &str = r#"{
  "version": "2.0",
  "routeKey": "POST /items",
  "rawPath": "/items",
  "rawQueryString": "",
  "headers": {
    "content-type": "application/json",
    "host": "xyz789.execute-api.eu-west-1.amazonaws.com",
    "user-agent": "python-requests/2.31.0",
    "x-forwarded-proto": "https"
  },
  "requestContext": {
    "accountId": "123456789012",
    "apiId": "xyz789",
    "domainName": "xyz789.execute-api.eu-west-1.amazonaws.com",
    "http": {
      "method": "POST",
      "path": "/items",
      "protocol": "HTTP/1.1",
      "sourceIp": "198.51.100.23",
      "userAgent": "python-requests/2.31.0"
    },
    "requestId": "JKJaXmPLvHcESHA=",
    "routeKey": "POST /items",
    "stage": "$default",
    "time": "10/Mar/2020:05:16:23 +0000",
    "timeEpoch": 1583817383220
  },
  "body": "{\"name\":\"pen\"}",
  "isBase64Encoded": false
}"#;

/// Application Load Balancer target group event.
const ALB: &str = r#"{
  "requestContext": {
    "elb": {
      "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/lambda-279XGJDqGZ5rsrHC2Fjr/49e9d65c45c6791a"
    }
  },
  "httpMethod": "DELETE",
  "path": "/sessions/42",
  "queryStringParameters": {},
  "headers": {
    "host": "lambda-alb-123578498.us-east-2.elb.amazonaws.com",
    "user-agent": "Mozilla/5.0",
    "x-amzn-trace-id": "Root=1-5c536348-3d683b8b04734faae651f476",
    "x-forwarded-for": "72.12.164.125",
    "x-forwarded-port": "80",
    "x-forwarded-proto": "http"
  },
  "body": "",
  "isBase64Encoded": false
}"#;

/// Lambda function URL (payload v2 from a `lambda-url` domain).
const FUNCTION_URL: &str = r#"{
  "version": "2.0",
  "routeKey": "$default",
  "rawPath": "/report",
  "rawQueryString": "format=csv",
  "headers": {
    "host": "a1b2c3d4e5.lambda-url.us-east-1.on.aws",
    "user-agent": "curl/7.68.0",
    "x-forwarded-for": "65.78.31.245",
    "x-forwarded-proto": "https"
  },
  "requestContext": {
    "accountId": "anonymous",
    "apiId": "a1b2c3d4e5",
    "domainName": "a1b2c3d4e5.lambda-url.us-east-1.on.aws",
    "domainPrefix": "a1b2c3d4e5",
    "http": {
      "method": "GET",
      "path": "/report",
      "protocol": "HTTP/1.1",
      "sourceIp": "65.78.31.245",
      "userAgent": "curl/7.68.0"
    },
    "requestId": "id",
    "routeKey": "$default",
    "stage": "$default",
    "time": "12/Mar/2020:19:03:58 +0000",
    "timeEpoch": 1583348638390
  },
  "isBase64Encoded": false
}"#;

/// One invocation as the runtime hands it over: the event and a context carrying `header`.
fn invocation(event: &str, header: Option<String>) -> LambdaEvent<LambdaRequest> {
    let mut ctx = Context::default();
    ctx.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".into();
    ctx.xray_trace_id = header;
    let payload: LambdaRequest = serde_json::from_str(event).expect("a valid event");
    LambdaEvent::new(payload, ctx)
}

/// Runs one invocation through `layer` around `handler`, as `lambda_http::run` does, and
/// returns what would go back to Lambda, as JSON.
async fn invoke<H, F>(
    layer: XRayHttpLayer,
    handler: H,
    event: LambdaEvent<LambdaRequest>,
) -> Result<Value, Error>
where
    H: FnMut(Request) -> F + Send + 'static,
    F: std::future::Future<Output = Result<Response<Body>, Error>> + Send + 'static,
{
    let adapter = Adapter::from(layer.layer(service_fn(handler)));
    let response = adapter.oneshot(event).await?;
    Ok(serde_json::to_value(response).unwrap())
}

/// The same without the layer: what Lambda would get from the bare handler.
async fn invoke_untraced<H, F>(handler: H, event: LambdaEvent<LambdaRequest>) -> Value
where
    H: FnMut(Request) -> F + Send + 'static,
    F: std::future::Future<Output = Result<Response<Body>, Error>> + Send + 'static,
{
    let adapter = Adapter::from(service_fn(handler));
    serde_json::to_value(adapter.oneshot(event).await.unwrap()).unwrap()
}

async fn ok_handler(_req: Request) -> Result<Response<Body>, Error> {
    let body = xray_core::capture("load-order", || "ok".to_string());
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(body.into())?)
}

fn layer(collector: &Collector) -> XRayHttpLayer {
    XRayHttpLayer::named("orders").with_recorder(collector.recorder("unused"))
}

/// The single document sent, as it went over the wire, after checking it against the rules
/// collectors apply.
fn only_document(collector: &Collector) -> Value {
    collector.wait_for_documents(1, WAIT);
    // Anything sent after the first document would arrive right behind it.
    std::thread::sleep(Duration::from_millis(100));
    let docs = collector.documents();
    assert_eq!(docs.len(), 1, "one subsegment per invocation: {docs:?}");
    let violations = collector.violations();
    assert!(violations.is_empty(), "{violations:?}");
    serde_json::to_value(&docs[0]).unwrap()
}

fn assert_under_the_function_segment(doc: &Value) {
    assert_eq!(doc["type"], "subsegment");
    assert_eq!(doc["trace_id"], *ROOT);
    assert_eq!(doc["parent_id"], FUNCTION_SEGMENT);
    assert!(doc["end_time"].as_f64().is_some(), "{doc}");
}

#[tokio::test]
async fn rest_api_event_is_a_subsegment_of_the_function_segment_with_its_http_block() {
    let collector = Collector::start().unwrap();
    let out = invoke(
        layer(&collector),
        ok_handler,
        invocation(REST_API, Some(sampled())),
    )
    .await
    .unwrap();
    assert_eq!(out["statusCode"], 200);
    assert_eq!(out["body"], "ok");

    let doc = only_document(&collector);
    assert_under_the_function_segment(&doc);
    assert_eq!(doc["name"], "orders");
    assert_eq!(
        doc["http"]["request"],
        json!({
            "method": "GET",
            // lambda_http puts the stage in the path, as the caller's URL had it; no query.
            "url": "https://abc123.execute-api.us-east-1.amazonaws.com/Prod/orders/7",
            "user_agent": "curl/8.5.0",
            "client_ip": "203.0.113.9",
            "x_forwarded_for": true
        })
    );
    assert_eq!(
        doc["http"]["response"],
        json!({ "status": 200, "content_length": 2 })
    );
    for flag in ["error", "throttle", "fault"] {
        assert!(doc.get(flag).is_none(), "{flag} on a 200: {doc}");
    }
    // The handler's own work nests in the invocation's subsegment.
    assert_eq!(doc["subsegments"][0]["name"], "load-order");
}

#[tokio::test]
async fn http_api_event_takes_the_client_ip_from_the_source_ip() {
    let collector = Collector::start().unwrap();
    let handler = |req: Request| async move {
        assert_eq!(req.body().as_ref(), br#"{"name":"pen"}"#);
        Ok::<_, Error>(
            Response::builder()
                .status(201)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"id":1}"#))?,
        )
    };
    let out = invoke(
        layer(&collector),
        handler,
        invocation(HTTP_API, Some(sampled())),
    )
    .await
    .unwrap();
    assert_eq!(out["statusCode"], 201);

    let doc = only_document(&collector);
    assert_under_the_function_segment(&doc);
    assert_eq!(
        doc["http"]["request"],
        json!({
            "method": "POST",
            "url": "https://xyz789.execute-api.eu-west-1.amazonaws.com/items",
            "user_agent": "python-requests/2.31.0",
            "client_ip": "198.51.100.23"
        })
    );
    assert_eq!(
        doc["http"]["response"],
        json!({ "status": 201, "content_length": 8 })
    );
}

#[tokio::test]
async fn alb_event_takes_the_client_ip_from_x_forwarded_for() {
    let collector = Collector::start().unwrap();
    let handler = |_req: Request| async move {
        Ok::<_, Error>(Response::builder().status(204).body(Body::Empty)?)
    };
    let out = invoke(layer(&collector), handler, invocation(ALB, Some(sampled())))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 204);
    assert_eq!(out["statusDescription"], "204 No Content", "{out}");
    assert_eq!(
        out,
        invoke_untraced(handler, invocation(ALB, Some(sampled()))).await,
        "Lambda gets the response the bare handler gives"
    );

    let doc = only_document(&collector);
    assert_under_the_function_segment(&doc);
    assert_eq!(
        doc["http"]["request"],
        json!({
            "method": "DELETE",
            "url": "http://lambda-alb-123578498.us-east-2.elb.amazonaws.com/sessions/42",
            "user_agent": "Mozilla/5.0",
            "client_ip": "72.12.164.125",
            "x_forwarded_for": true
        })
    );
    assert_eq!(
        doc["http"]["response"],
        json!({ "status": 204, "content_length": 0 })
    );
}

#[tokio::test]
async fn function_url_event_records_the_url_without_its_query_unless_asked() {
    for (record_query, url) in [
        (
            false,
            "https://a1b2c3d4e5.lambda-url.us-east-1.on.aws/report",
        ),
        (
            true,
            "https://a1b2c3d4e5.lambda-url.us-east-1.on.aws/report?format=csv",
        ),
    ] {
        let collector = Collector::start().unwrap();
        let layer = layer(&collector).record_query(record_query);
        invoke(layer, ok_handler, invocation(FUNCTION_URL, Some(sampled())))
            .await
            .unwrap();
        let doc = only_document(&collector);
        assert_under_the_function_segment(&doc);
        assert_eq!(doc["http"]["request"]["method"], "GET");
        assert_eq!(doc["http"]["request"]["url"], url);
        assert_eq!(doc["http"]["request"]["client_ip"], "65.78.31.245");
        assert_eq!(doc["http"]["response"]["status"], 200);
    }
}

#[tokio::test]
async fn response_status_sets_error_throttle_and_fault() {
    for (status, flags) in [
        (404, ["error"].as_slice()),
        (429, ["error", "throttle"].as_slice()),
        (500, ["fault"].as_slice()),
        (503, ["fault"].as_slice()),
    ] {
        let collector = Collector::start().unwrap();
        let handler = move |_req: Request| async move {
            Ok::<_, Error>(Response::builder().status(status).body(Body::Empty)?)
        };
        let out = invoke(
            layer(&collector),
            handler,
            invocation(HTTP_API, Some(sampled())),
        )
        .await
        .unwrap();
        assert_eq!(out["statusCode"], status);
        let doc = only_document(&collector);
        assert_eq!(doc["http"]["response"]["status"], status);
        for flag in ["error", "throttle", "fault"] {
            assert_eq!(
                doc.get(flag) == Some(&Value::Bool(true)),
                flags.contains(&flag),
                "{flag} on {status}: {doc}"
            );
        }
        assert!(doc.get("cause").is_none(), "a status is not an exception");
    }
}

#[tokio::test]
async fn handler_error_is_a_fault_with_the_error_as_cause() {
    let collector = Collector::start().unwrap();
    let handler =
        |_req: Request| async move { Err::<Response<Body>, Error>("database unavailable".into()) };
    let err = invoke(
        layer(&collector),
        handler,
        invocation(REST_API, Some(sampled())),
    )
    .await
    .expect_err("the error reaches the runtime unchanged");
    assert_eq!(err.to_string(), "database unavailable");

    let doc = only_document(&collector);
    assert_under_the_function_segment(&doc);
    assert_eq!(doc["fault"], true);
    assert!(doc.get("error").is_none(), "{doc}");
    assert!(doc["http"].get("response").is_none(), "no response: {doc}");
    let exception = &doc["cause"]["exceptions"][0];
    assert_eq!(exception["message"], "database unavailable");
    assert!(
        exception.get("remote").is_none(),
        "the function's own error"
    );
}

#[tokio::test]
async fn handler_panic_is_a_fault_and_keeps_unwinding_into_the_runtime() {
    let collector = Collector::start().unwrap();
    let adapter = Adapter::from(
        layer(&collector).layer(service_fn(|_req: Request| async move {
            if true {
                panic!("index out of range");
            }
            Ok::<Response<Body>, Error>(Response::new(Body::Empty))
        })),
    );
    let event = invocation(HTTP_API, Some(sampled()));
    let joined = tokio::spawn(adapter.oneshot(event)).await;
    assert!(joined.unwrap_err().is_panic(), "the panic goes on");

    let doc = only_document(&collector);
    assert_under_the_function_segment(&doc);
    assert_eq!(doc["fault"], true);
    let exception = &doc["cause"]["exceptions"][0];
    assert_eq!(exception["type"], "panic");
    assert!(
        exception["message"]
            .as_str()
            .unwrap()
            .contains("index out of range"),
        "{exception}"
    );
}

#[tokio::test]
async fn unsampled_invocation_sends_nothing() {
    let collector = Collector::start().unwrap();
    let header = format!("Root={};Parent={FUNCTION_SEGMENT};Sampled=0", *ROOT);
    let out = invoke(
        layer(&collector),
        ok_handler,
        invocation(REST_API, Some(header)),
    )
    .await
    .unwrap();
    assert_eq!(out["statusCode"], 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        collector.documents().is_empty(),
        "{:?}",
        collector.documents()
    );
}

#[tokio::test]
async fn the_request_trace_header_is_never_the_parent() {
    // The event's own X-Amzn-Trace-Id says Sampled=1 with a Parent, but it names API
    // Gateway's segment, not the function's: without the invocation's header (and without
    // `_X_AMZN_TRACE_ID`, which this test binary never sets) nothing is recorded.
    let collector = Collector::start().unwrap();
    let out = invoke(layer(&collector), ok_handler, invocation(REST_API, None))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        collector.documents().is_empty(),
        "{:?}",
        collector.documents()
    );
}

#[tokio::test]
async fn inside_xray_lambda_layer_the_subsegment_hangs_under_its_facade() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("unused");
    let http = XRayHttpLayer::named("orders").with_recorder(recorder.clone());
    let service = XRayLambdaLayer::new()
        .with_recorder(recorder)
        .layer(Adapter::from(http.layer(service_fn(ok_handler))));
    service
        .oneshot(invocation(REST_API, Some(sampled())))
        .await
        .unwrap();
    let doc = only_document(&collector);
    assert_under_the_function_segment(&doc);
    assert_eq!(doc["name"], "orders");
    assert_eq!(doc["http"]["response"]["status"], 200);
}

#[tokio::test]
async fn lambda_gets_the_response_the_bare_handler_gives() {
    // Converted once: a Latin-1 body decoded twice, or an empty body turned into "", would
    // show here.
    type Make = fn() -> Response<Body>;
    let responses: [Make; 4] = [
        || Response::new(Body::Empty),
        || {
            Response::builder()
                .header("content-type", "text/plain; charset=iso-8859-1")
                .body(Body::from(vec![b'c', b'a', b'f', 0xe9]))
                .unwrap()
        },
        || {
            Response::builder()
                .header("content-type", "image/png")
                .body(Body::from(vec![0x89, b'P', b'N', b'G', 0, 0xff]))
                .unwrap()
        },
        || {
            Response::builder()
                .status(201)
                .header("content-type", "application/json")
                .header("set-cookie", "a=1")
                .body(Body::from(r#"{"ok":true}"#))
                .unwrap()
        },
    ];
    for make in responses {
        for event in [REST_API, HTTP_API, ALB] {
            let collector = Collector::start().unwrap();
            let handler = move |_req: Request| async move { Ok::<_, Error>(make()) };
            let traced = invoke(
                layer(&collector),
                handler,
                invocation(event, Some(sampled())),
            )
            .await
            .unwrap();
            let bare = invoke_untraced(handler, invocation(event, Some(sampled()))).await;
            assert_eq!(traced, bare);
        }
    }
}
