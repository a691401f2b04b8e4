//! Real servers on loopback for the tests, and helpers to read what the collector received.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use xray_core::{Document, EntityId, TraceId};
use xray_reqwest::XRayMiddleware;

/// How long tests wait for documents to arrive over UDP.
pub const WAIT: Duration = Duration::from_secs(5);

/// The loopback test server.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Requests `/flaky` has answered so far.
    pub flaky_hits: Arc<AtomicUsize>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Starts the axum server: `/echo` returns the request headers as JSON, `/status/{code}`
/// answers with that status, `/slow` answers after two seconds, `/flaky` answers 500 twice and
/// then 200.
pub async fn start_server() -> TestServer {
    let flaky_hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/echo", get(echo).post(echo))
        .route("/status/{code}", get(status))
        .route("/slow", get(slow))
        .route("/flaky", get(flaky))
        .with_state(flaky_hits.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TestServer { addr, flaky_hits }
}

async fn echo(headers: HeaderMap) -> Json<BTreeMap<String, String>> {
    Json(
        headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    )
}

async fn status(Path(code): Path<u16>) -> (StatusCode, String) {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (status, format!("status {code}"))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(2)).await;
    "finally"
}

async fn flaky(State(hits): State<Arc<AtomicUsize>>) -> StatusCode {
    if hits.fetch_add(1, Ordering::SeqCst) < 2 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// A raw HTTP/1.1 server that sends the response head at once and its 10-byte body only after
/// `delay`, to show when the subsegment ends.
pub async fn start_slow_body_server(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                // Read the request head; it fits in one read for these small requests.
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n";
                socket.write_all(head.as_bytes()).await.unwrap();
                socket.flush().await.unwrap();
                tokio::time::sleep(delay).await;
                let _ = socket.write_all(b"0123456789").await;
            });
        }
    });
    addr
}

/// A loopback address nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// A client with only the X-Ray middleware.
pub fn client(middleware: XRayMiddleware) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

/// The trace header the echo server received, if any.
pub async fn echoed_trace_header(res: reqwest::Response) -> Option<String> {
    body_json(res)
        .await
        .get("x-amzn-trace-id")
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// The response body as JSON (reqwest's `json` feature is not enabled).
pub async fn body_json(res: reqwest::Response) -> serde_json::Value {
    let bytes = res.bytes().await.expect("response body");
    serde_json::from_slice(&bytes).expect("JSON body")
}

/// The segment document of `trace`, waiting for it to arrive.
pub fn segment_doc(collector: &xray_local::Collector, trace: TraceId) -> Document {
    let docs = collector.wait_until(WAIT, |docs| {
        docs.iter()
            .any(|d| d.trace_id == Some(trace) && d.kind.is_none())
    });
    docs.into_iter()
        .find(|d| d.trace_id == Some(trace) && d.kind.is_none())
        .unwrap_or_else(|| panic!("no segment document for trace {trace} arrived"))
}

/// A parsed `Root=..;Parent=..;Sampled=..` header, as a map.
pub fn header_fields(header: &str) -> BTreeMap<String, String> {
    header
        .split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn id_string(id: EntityId) -> String {
    id.to_string()
}
