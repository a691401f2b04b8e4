//! Tracing AWS SDK calls.
//!
//! `cargo run -p examples --example aws_sdk_client` makes a DynamoDB `GetItem` call and prints
//! the trace. It calls `AWS_ENDPOINT_URL` when set (moto, DynamoDB Local, or real AWS with
//! your credentials), else a tiny stand-in for DynamoDB started here, so it runs anywhere.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::{routing::post, Router};
use xray_aws_sdk::XRayInterceptor;
use xray_core::context;
use xray_local::{render_trace, Collector, RenderOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) => url,
        Err(_) => fake_dynamodb().await?,
    };

    // Register the interceptor once per client; every call on it is then traced.
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "example",
        ))
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk_config)
            .interceptor(XRayInterceptor::new())
            .build(),
    );

    let collector = Collector::start()?;
    let recorder = collector.recorder("aws-sdk-client");
    let segment = recorder.begin_segment("orders", None);
    let result = context::scope(segment.clone(), async {
        dynamodb
            .get_item()
            .table_name("orders")
            .key("id", AttributeValue::S("order-1".into()))
            .send()
            .await
    })
    .await;
    segment.end();
    match result {
        Ok(out) => println!("GetItem on {endpoint}: item = {:?}\n", out.item()),
        Err(e) => println!(
            "GetItem on {endpoint} failed (recorded on the subsegment): {}\n",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        ),
    }

    let trace = collector
        .wait_for_trace(|_| true, Duration::from_secs(5))
        .ok_or("no trace arrived")?;
    print!("{}", render_trace(&trace, &RenderOptions::default()));
    Ok(())
}

/// Answers every DynamoDB call with an empty result, like a `GetItem` that found nothing.
async fn fake_dynamodb() -> std::io::Result<String> {
    let app = Router::new().route(
        "/",
        post(|| async {
            (
                [
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amzn-requestid", "FAKE-REQUEST-1"),
                ],
                "{}",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
