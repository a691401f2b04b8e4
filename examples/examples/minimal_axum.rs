//! The smallest traced axum service.
//!
//! `cargo run -p examples --example minimal_axum` serves one request to itself and prints the
//! trace an in-process collector received.

use std::net::SocketAddr;
use std::time::Duration;

use axum::{routing::get, Router};
use xray_local::{render_trace, Collector, RenderOptions};
use xray_tower::{Segment, XRayLayer};

async fn hello(segment: Segment) -> &'static str {
    // The segment of this request, also reachable with `xray_core::current()`.
    segment.put_annotation("greeting", "hello");
    "hello"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in for the X-Ray daemon. In production leave out `with_recorder`: segments then
    // go to the daemon at AWS_XRAY_DAEMON_ADDRESS (default 127.0.0.1:2000).
    let collector = Collector::start()?;
    let layer = XRayLayer::new("minimal-axum").with_recorder(collector.recorder("minimal-axum"));

    // `Router::layer` traces every route (and the 404 fallback).
    let app = Router::new().route("/", get(hello)).layer(layer);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // `ConnectInfo<SocketAddr>` lets the layer record the client IP.
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, make_service).await });

    let body = reqwest::get(format!("http://{addr}/"))
        .await?
        .text()
        .await?;
    println!("GET / → {body}\n");
    let trace = collector
        .wait_for_trace(|_| true, Duration::from_secs(5))
        .ok_or("no trace arrived")?;
    print!("{}", render_trace(&trace, &RenderOptions::default()));
    Ok(())
}
