//! Shared test scaffolding: real servers on loopback, a real HTTP client, a real UDP collector.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use xray_core::Document;
use xray_local::Collector;

pub const WAIT: Duration = Duration::from_secs(5);

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Serves `app` with axum on an ephemeral loopback port, with `ConnectInfo`.
pub async fn serve_axum(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// What came back from a request.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn trace_header(&self) -> Option<&str> {
        self.headers
            .get("x-amzn-trace-id")
            .and_then(|v| v.to_str().ok())
    }
}

/// Sends a GET with extra headers and reads the whole response.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    try_get(addr, path, headers).await.expect("request failed")
}

pub async fn try_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let mut req = http::Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client()
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Waits (off the async worker) until `pred` holds for the documents received.
pub fn wait_until(collector: &Collector, pred: impl FnMut(&[Document]) -> bool) -> Vec<Document> {
    tokio::task::block_in_place(|| collector.wait_until(WAIT, pred))
}

pub fn wait_for(collector: &Collector, n: usize) -> Vec<Document> {
    let docs = wait_until(collector, |d| d.len() >= n);
    assert!(docs.len() >= n, "expected {n} documents, got {docs:#?}");
    docs
}

/// The segment (not independent subsegment) documents received, waiting for `n`.
pub fn segments(collector: &Collector, n: usize) -> Vec<Document> {
    let docs = wait_until(collector, |d| {
        d.iter().filter(|d| d.kind.is_none()).count() >= n
    });
    let segs: Vec<Document> = docs.into_iter().filter(|d| d.kind.is_none()).collect();
    assert!(segs.len() >= n, "expected {n} segments, got {segs:#?}");
    segs
}

pub fn url_of(doc: &Document) -> String {
    doc.http
        .request
        .as_ref()
        .and_then(|r| r.url.clone())
        .unwrap_or_default()
}

pub fn status_of(doc: &Document) -> Option<u16> {
    doc.http.response.as_ref().and_then(|r| r.status)
}

/// The messages of the exceptions in a document's cause.
pub fn cause_messages(doc: &Document) -> Vec<String> {
    match &doc.cause {
        Some(xray_core::document::Cause::Exceptions(data)) => data
            .exceptions
            .iter()
            .filter_map(|e| e.message.clone())
            .collect(),
        _ => Vec::new(),
    }
}
