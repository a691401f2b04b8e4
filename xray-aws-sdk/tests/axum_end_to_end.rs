//! End to end: an HTTP request with a trace header reaches an axum handler behind
//! `xray_tower::XRayLayer`; the handler calls DynamoDB (moto); the request's segment holds the
//! DynamoDB subsegment, and DynamoDB was sent the trace with that subsegment as parent.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use common::{assert_aws_subsegment, aws_str, moto_endpoint, sdk_config, unique, Spy, Traced};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xray_aws_sdk::XRayInterceptor;

#[derive(Clone)]
struct App {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

async fn order(State(app): State<App>, Path(id): Path<String>) -> String {
    let found = app
        .dynamodb
        .get_item()
        .table_name(&app.table)
        .key("pk", AttributeValue::S(id))
        .send()
        .await
        .expect("GetItem");
    format!("found: {}", found.item().is_some())
}

#[tokio::test]
async fn handler_dynamodb_call_is_a_subsegment_of_the_request_segment() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let traced = Traced::new();
    let table = unique("e2e");

    // Set-up without tracing.
    let plain = aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint));
    plain
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();

    let spy = Spy::default();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk_config(&endpoint))
            .interceptor(XRayInterceptor::new())
            .interceptor(spy.clone())
            .build(),
    );
    let app = Router::new()
        .route("/orders/{id}", get(order))
        .layer(xray_tower::XRayLayer::new("orders").with_recorder(traced.recorder.clone()))
        .with_state(App {
            dynamodb,
            table: table.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let root = "1-5759e988-bd862e3fe1be46a994272793";
    let caller = "53995c3f42cd8ad8";
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /orders/42 HTTP/1.1\r\nHost: {addr}\r\nX-Amzn-Trace-Id: Root={root};Parent={caller};Sampled=1\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("found: false"), "{response}");

    let docs = traced.collector.wait_until(Duration::from_secs(5), |docs| {
        docs.iter().any(|d| d.kind.is_none() && d.name == "orders")
    });
    let segment = docs
        .iter()
        .find(|d| d.kind.is_none() && d.name == "orders")
        .expect("the request's segment arrived");
    assert_eq!(segment.trace_id.unwrap().to_string(), root);
    assert_eq!(segment.parent_id.unwrap().to_string(), caller);
    assert_eq!(segment.subsegments.len(), 1, "{segment:?}");
    let sub = &segment.subsegments[0];
    let wire = spy.last();
    assert_aws_subsegment(sub, "DynamoDB", "GetItem", &wire);
    assert_eq!(aws_str(sub, "table_name"), Some(table.as_str()));
    assert_eq!(
        wire.trace_header.as_deref(),
        Some(format!("Root={root};Parent={};Sampled=1", sub.id).as_str()),
        "DynamoDB is told the call's subsegment is the parent"
    );
}
