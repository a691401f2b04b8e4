//! A `lambda_runtime` function traced with one layer. Build with `cargo build -p xray-lambda
//! --example lambda_handler`; it runs only inside AWS Lambda (or the Lambda runtime emulator).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use tower::ServiceBuilder;
use xray_lambda::XRayLambdaLayer;

async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<serde_json::Value, Error> {
    // Each capture becomes a subsegment of the function's segment in X-Ray.
    let name = xray_core::capture("read-name", || {
        event.payload["name"]
            .as_str()
            .unwrap_or("world")
            .to_string()
    });
    xray_core::put_annotation("greeted", name.as_str());
    Ok(serde_json::json!({ "message": format!("hello, {name}") }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let service = ServiceBuilder::new()
        .layer(XRayLambdaLayer::new())
        .service(service_fn(handler));
    lambda_runtime::run(service).await
}
