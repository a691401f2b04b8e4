//! Shared scaffolding: a real hyper server on loopback (with header limits raised so hostile
//! headers reach the X-Ray layer instead of being refused by the HTTP parser), a real HTTP
//! client, recorders sending over real UDP.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;
use xray_core::daemon::DaemonAddress;
use xray_core::emitter::UdpEmitter;
use xray_core::sampling::AlwaysSample;
use xray_core::{Document, Recorder};
use xray_local::Collector;

/// How long a test waits for documents before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A recorder sampling everything and sending over UDP to `daemon` through a queue of
/// `queue` documents.
/// `GET /work` behind the X-Ray layer: an annotation, then a subsegment with metadata, then
/// `ok`. The burst and memory tests load it.
pub fn work_app(recorder: &Recorder) -> Router {
    Router::new()
        .route(
            "/work",
            axum::routing::get(|| async {
                xray_core::put_annotation("user", "someone");
                xray_core::capture_async("db", async {
                    xray_core::put_metadata("rows", vec![1, 2, 3]);
                })
                .await;
                "ok"
            }),
        )
        .layer(xray_tower::XRayLayer::new("faults").with_recorder(recorder.clone()))
}

pub fn udp_recorder(daemon: &str, queue: usize) -> Recorder {
    let address = DaemonAddress::parse(daemon).expect("valid daemon address");
    Recorder::builder()
        .service_name("faults")
        .daemon_address(daemon)
        .sampler(AlwaysSample)
        .emitter(
            UdpEmitter::builder()
                .address(&address)
                .queue_capacity(queue)
                .build(),
        )
        .ignore_env()
        .build()
        .expect("recorder")
}

/// A loopback UDP port nobody listens on (bound, then released).
pub fn closed_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// Serves `app` on an ephemeral loopback port with hyper-util's HTTP/1 + HTTP/2 server,
/// accepting headers up to 8 MiB in total and 20 000 header lines, with `ConnectInfo`.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, peer)) = listener.accept().await else {
                continue;
            };
            let svc = app
                .clone()
                .map_request(move |mut req: http::Request<Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
            tokio::spawn(async move {
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder.http1().max_buf_size(8 << 20).max_headers(20_000);
                builder.http2().max_concurrent_streams(20_000);
                let _ = builder
                    .serve_connection(TokioIo::new(socket), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    addr
}

/// An HTTP/1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 (prior knowledge) client: one connection carries every request.
pub fn h2_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// What came back.
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

/// Sends a request and reads the whole response.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> Result<Reply, String> {
    let res = client.request(req).await.map_err(|e| format!("{e:?}"))?;
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

/// A GET of `path` with extra headers.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &[u8])]) -> Reply {
    let mut req = http::Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, http::HeaderValue::from_bytes(v).expect("header value"));
    }
    send(&client(), req.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("request failed")
}

/// Writes raw bytes on a fresh connection and reads until the server closes it or 5 s pass.
/// Returns the status code of the first response line, if any.
pub async fn raw_request(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.ok()?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Waits, off the async workers, until `pred` holds for the documents received.
pub fn wait_until(collector: &Collector, pred: impl FnMut(&[Document]) -> bool) -> Vec<Document> {
    tokio::task::block_in_place(|| collector.wait_until(WAIT, pred))
}

/// Waits for `n` segment documents (not independent subsegments) and returns them.
pub fn segments(collector: &Collector, n: usize) -> Vec<Document> {
    let docs = wait_until(collector, |d| {
        d.iter().filter(|d| d.kind.is_none()).count() >= n
    });
    let segs: Vec<Document> = docs.into_iter().filter(|d| d.kind.is_none()).collect();
    assert!(segs.len() >= n, "expected {n} segments, got {}", segs.len());
    segs
}

/// Fails with every rule violation the collector found in what it received.
pub fn assert_no_violations(collector: &Collector) {
    let v = collector.violations();
    assert!(
        v.is_empty(),
        "documents the X-Ray service would refuse: {v:#?}"
    );
    assert_eq!(collector.garbage_count(), 0, "malformed datagrams received");
}

/// Every datagram received is within the 64 000-byte budget.
pub fn assert_datagrams_fit(collector: &Collector) {
    for r in collector.received() {
        assert!(
            r.bytes.len() <= xray_core::emitter::MAX_DATAGRAM_BYTES,
            "datagram of {} bytes",
            r.bytes.len()
        );
    }
}

/// Median of some durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `n` sequential GETs of `path`.
pub async fn latencies(addr: SocketAddr, path: &str, n: usize) -> Vec<Duration> {
    let client = client();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let req = http::Request::get(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let t = Instant::now();
        let reply = send(&client, req).await.expect("request failed");
        out.push(t.elapsed());
        assert_eq!(reply.status, 200);
    }
    out
}
