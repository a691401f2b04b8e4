//! A `lambda_http` function (API Gateway, ALB or function URL) traced with one layer. Build
//! with `cargo build -p xray-lambda --example lambda_http_handler`; it runs only inside AWS
//! Lambda (or the Lambda runtime emulator).
//!
//! Each invocation gets a subsegment under the function's segment with the request's method,
//! URL, user agent and client IP, the response's status and length, and the flags they imply.

use lambda_http::{service_fn, tower::Layer, Body, Error, Request, RequestExt, Response};
use xray_lambda::XRayHttpLayer;

async fn handler(req: Request) -> Result<Response<Body>, Error> {
    let name = req
        .query_string_parameters_ref()
        .and_then(|q| q.first("name"))
        .unwrap_or("world")
        .to_string();
    if name.is_empty() {
        // A 4xx marks the subsegment `error`; an `Err` here would mark it `fault`.
        return Ok(Response::builder()
            .status(400)
            .body("name is empty".into())?);
    }
    // Nested under the invocation's subsegment.
    let greeting = xray_core::capture("greet", || format!("hello, {name}"));
    xray_core::put_annotation("greeted", name.as_str());
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(greeting.into())?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(XRayHttpLayer::new().layer(service_fn(handler))).await
}
