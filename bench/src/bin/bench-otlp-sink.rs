//! An OTLP/HTTP sink standing in for a collector in the load benchmark's `otlp` and `otel`
//! modes: takes `POST /v1/traces`, counts requests and bytes (without decoding, as
//! `bench-sink` does not parse datagrams), answers 200 with an empty export response, and
//! prints the counts every 10 s. It also stands in for the X-Ray API in the `xray-api` mode:
//! `POST /TraceSegments` (`PutTraceSegments`) is counted the same way and answered
//! `{"UnprocessedTraceSegments":[]}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use xray_core::emitter::otlp::encode_response;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4318".into());
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let c = c.clone();
            async move {
                c.requests.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    encode_response(0, ""),
                )
            }
        }),
    );
    let c = counts.clone();
    let app = app.route(
        "/TraceSegments",
        post(move |body: Bytes| {
            let c = c.clone();
            async move {
                c.requests.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"UnprocessedTraceSegments":[]}"#,
                )
            }
        }),
    );
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            eprintln!(
                "bench-otlp-sink: {} requests, {} bytes",
                c.requests.load(Ordering::Relaxed),
                c.bytes.load(Ordering::Relaxed)
            );
        }
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
