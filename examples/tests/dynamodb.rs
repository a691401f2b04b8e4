//! `/dynamodb/{table}/{key}` against moto (a local AWS emulator), on both services.
//!
//! `scripts/test` starts moto and sets `XRAY_TEST_MOTO_ENDPOINT`. Without it the tests are
//! skipped loudly, or fail when `XRAY_REQUIRE_PEERS=1`.

mod common;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use common::{Options, Service};

fn moto_endpoint(test: &str) -> Option<String> {
    match std::env::var("XRAY_TEST_MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("XRAY_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!("{test}: XRAY_TEST_MOTO_ENDPOINT is not set and XRAY_REQUIRE_PEERS=1");
            }
            // Straight to stderr: the test harness would hide `eprintln!` of a passing test.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!! SKIPPED {test}: XRAY_TEST_MOTO_ENDPOINT is not set (run scripts/test to start moto) !!!!!\n"
            );
            None
        }
    }
}

/// Creates a table with one item `id = "k1"` in moto, through a plain (untraced) client.
async fn seed(endpoint: &str, table: &str) {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    client
        .create_table()
        .table_name(table)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table in moto");
    client
        .put_item()
        .table_name(table)
        .item("id", AttributeValue::S("k1".into()))
        .item("colour", AttributeValue::S("teal".into()))
        .item("count", AttributeValue::N("3".into()))
        .send()
        .await
        .expect("put item in moto");
}

async fn dynamodb_route_gets_items_through_the_traced_sdk(bin: &str, test: &str) {
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let table = format!(
        "examples-{}-{}",
        test.replace(['_', ':'], "-"),
        std::process::id()
    );
    seed(&endpoint, &table).await;
    let svc = Service::start_with(
        bin,
        Options {
            // No credentials or region given: the service falls back to its defaults.
            env: &[
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
            ..Options::default()
        },
    );

    let (status, body, trace) = svc.traced(&format!("/dynamodb/{table}/k1")).await;
    assert_eq!(status, 200, "{body}");
    let item: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(item["colour"], "teal");
    assert_eq!(item["count"], 3);
    let call = trace.find("DynamoDB").expect("a DynamoDB subsegment");
    let doc = call.document();
    assert_eq!(doc.namespace.as_deref(), Some("aws"));
    assert_eq!(doc.aws["operation"], "GetItem");
    assert_eq!(doc.aws["table_name"], table.as_str());

    let (status, _, _) = svc.traced(&format!("/dynamodb/{table}/missing")).await;
    assert_eq!(status, 404);

    let (status, _, trace) = svc.traced("/dynamodb/no-such-table/k1").await;
    assert_eq!(status, 502);
    let call = trace.find("DynamoDB").expect("a DynamoDB subsegment");
    assert!(call.document().error, "a 400 from DynamoDB is an error");
}

#[tokio::test]
async fn axum_service_dynamodb_route_gets_items_through_the_traced_sdk() {
    dynamodb_route_gets_items_through_the_traced_sdk(
        env!("CARGO_BIN_EXE_axum-service"),
        "axum_service_dynamodb",
    )
    .await
}

#[tokio::test]
async fn actix_service_dynamodb_route_gets_items_through_the_traced_sdk() {
    dynamodb_route_gets_items_through_the_traced_sdk(
        env!("CARGO_BIN_EXE_actix-service"),
        "actix_service_dynamodb",
    )
    .await
}
