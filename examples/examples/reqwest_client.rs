//! Tracing outgoing HTTP calls made with reqwest.
//!
//! `cargo run -p examples --example reqwest_client` calls a small local server twice from a
//! traced job, shows the trace header the server received, and prints the trace.

use std::time::Duration;

use axum::{http::HeaderMap, routing::get, Router};
use reqwest_middleware::ClientBuilder;
use xray_core::context;
use xray_local::{render_trace, Collector, RenderOptions};
use xray_reqwest::XRayMiddleware;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A downstream service that echoes the trace header it receives.
    let app = Router::new().route(
        "/inventory",
        get(|headers: HeaderMap| async move { format!("{:?}", headers.get("x-amzn-trace-id")) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Build the client once, with the middleware; share it (it is cheap to clone).
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(XRayMiddleware::new())
        .build();

    let collector = Collector::start()?;
    let recorder = collector.recorder("reqwest-client");

    // Inside a traced request (xray-tower, xray-actix) the segment is already current; a
    // background job opens its own.
    let segment = recorder.begin_segment("nightly-sync", None);
    context::scope(segment.clone(), async {
        // Each call becomes a `remote` subsegment and carries X-Amzn-Trace-Id.
        let echoed = client
            .get(format!("{base}/inventory"))
            .send()
            .await?
            .text()
            .await?;
        println!("the server received X-Amzn-Trace-Id: {echoed}");
        // A 404 is recorded as `error` on the call's subsegment.
        let missing = client.get(format!("{base}/missing")).send().await?;
        println!("GET /missing → {}\n", missing.status());
        Ok::<_, reqwest_middleware::Error>(())
    })
    .await?;
    segment.end();

    let trace = collector
        .wait_for_trace(|_| true, Duration::from_secs(5))
        .ok_or("no trace arrived")?;
    print!("{}", render_trace(&trace, &RenderOptions::default()));
    Ok(())
}
