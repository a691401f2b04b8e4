//! Spans over OTLP/HTTP, received beside the daemon's datagrams.
//!
//! An HTTP/1.1 server ([hyper]'s, on a Tokio runtime of its own on a background thread)
//! takes `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`, the way an
//! OpenTelemetry collector does. Each span is read back as a segment document (a server span
//! or a root as a segment, any other as an independent subsegment; see
//! [`xray_core::emitter::otlp`]) and handed to the collector as if it had arrived as a
//! datagram: it is checked, kept and assembled into its trace with the others, so the
//! terminal view shows traces sent with the OTLP exporter as it shows the daemon's.
//!
//! Answers: 200 with an `ExportTraceServiceResponse` (its partial success counts the spans
//! that could not be read or were dropped because the collector's queue was full), 400 for a
//! body that is not an export request, 404 for another path, 405 for another method, 413 for
//! a body over [`OTLP_MAX_BODY_BYTES`], 415 for JSON (only protobuf is spoken), 503 with
//! `Retry-After: 1` while [`OTLP_MAX_BODY_BYTES_IN_FLIGHT`] are being read. Like the
//! sampling API it holds to limits (see [`limits`](crate::limits)): at most
//! [`OTLP_MAX_CONNECTIONS`] connections at once, [`OTLP_REQUEST_DEADLINE`] per request,
//! request heads of [`OTLP_MAX_HEAD_BYTES`], and [`OTLP_MAX_SPANS_PER_REQUEST`] spans read per
//! request.
//!
//! [hyper]: https://docs.rs/hyper

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use xray_core::emitter::otlp::{decode_request, encode_response};
use xray_core::emitter::DATAGRAM_HEADER;

use crate::collector::Ingest;
use crate::limits::{
    OTLP_MAX_BODY_BYTES, OTLP_MAX_BODY_BYTES_IN_FLIGHT, OTLP_MAX_CONNECTIONS, OTLP_MAX_HEAD_BYTES,
    OTLP_MAX_SPANS_PER_REQUEST, OTLP_REQUEST_DEADLINE,
};

#[derive(Default)]
struct Counts {
    /// Body bytes being read now, over every connection.
    in_flight: std::sync::atomic::AtomicUsize,
    busy: AtomicU64,
    requests: AtomicU64,
    spans: AtomicU64,
    rejected: AtomicU64,
    connections_refused: AtomicU64,
    connections_cut: AtomicU64,
}

/// The OTLP/HTTP receiver of a [`Collector`](crate::Collector) (see
/// [`CollectorBuilder::otlp_listen`](crate::CollectorBuilder::otlp_listen)); it stops when
/// the collector is dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl OtlpReceiver {
    pub(crate) fn serve(addr: SocketAddr, ingest: Ingest) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let thread = std::thread::Builder::new()
            .name("xray-local-otlp".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => accept_loop(listener, ingest, c, stopped).await,
                        Err(e) => tracing::warn!(error = %e, "xray-local: OTLP not served"),
                    }
                });
            })?;
        Ok(Self {
            addr,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The TCP address served; spans go to `http://ADDR/v1/traces`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Export requests answered 200.
    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::Relaxed)
    }

    /// Spans read and handed to the collector.
    pub fn spans(&self) -> u64 {
        self.counts.spans.load(Ordering::Relaxed)
    }

    /// Spans rejected: unreadable (bad ids), over [`OTLP_MAX_SPANS_PER_REQUEST`], or dropped
    /// because the collector's queue was full.
    pub fn rejected_spans(&self) -> u64 {
        self.counts.rejected.load(Ordering::Relaxed)
    }

    /// Requests answered 503 because [`OTLP_MAX_BODY_BYTES_IN_FLIGHT`] were being read.
    pub fn busy(&self) -> u64 {
        self.counts.busy.load(Ordering::Relaxed)
    }

    /// Connections closed at once because [`OTLP_MAX_CONNECTIONS`] were open.
    pub fn connections_refused(&self) -> u64 {
        self.counts.connections_refused.load(Ordering::Relaxed)
    }

    /// Connections cut because a request was not complete within [`OTLP_REQUEST_DEADLINE`].
    pub fn connections_cut(&self) -> u64 {
        self.counts.connections_cut.load(Ordering::Relaxed)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    ingest: Ingest,
    counts: Arc<Counts>,
    mut stop: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(OTLP_MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    let n = counts.connections_refused.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(refused = n, "xray-local: OTLP at its connection limit");
                    }
                    drop(stream);
                    continue;
                };
                let ingest = ingest.clone();
                let counts = counts.clone();
                tokio::spawn(async move {
                    serve_connection(stream, ingest, counts).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "xray-local: OTLP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, ingest: Ingest, counts: Arc<Counts>) {
    let cut = counts.clone();
    crate::http_conn::serve(
        stream,
        OTLP_REQUEST_DEADLINE,
        OTLP_MAX_HEAD_BYTES,
        "OTLP",
        move |req| {
            let ingest = ingest.clone();
            let counts = counts.clone();
            async move { handle(req, &ingest, &counts).await }
        },
        move || {
            cut.connections_cut.fetch_add(1, Ordering::Relaxed);
        },
    )
    .await;
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Busy,
    Unreadable(String),
}

/// Body bytes reserved against [`OTLP_MAX_BODY_BYTES_IN_FLIGHT`], given back when dropped.
struct Reserved<'a> {
    counts: &'a Counts,
    bytes: usize,
}

impl Reserved<'_> {
    fn grow(&mut self, n: usize) -> bool {
        let before = self.counts.in_flight.fetch_add(n, Ordering::AcqRel);
        self.bytes += n;
        before + n <= OTLP_MAX_BODY_BYTES_IN_FLIGHT
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.counts
            .in_flight
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Reads a body of at most [`OTLP_MAX_BODY_BYTES`] (a larger one is read on and thrown away
/// up to twice the limit, so the 413 reaches the client), within the bytes all connections
/// may hold at once.
async fn read_body<'a>(
    req: Request<Incoming>,
    counts: &'a Counts,
) -> Result<(Vec<u8>, Reserved<'a>), BodyError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > 2 * OTLP_MAX_BODY_BYTES as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut reserved = Reserved { counts, bytes: 0 };
    let mut body = req.into_body();
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Unreadable(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= OTLP_MAX_BODY_BYTES {
                if !reserved.grow(data.len()) {
                    return Err(BodyError::Busy);
                }
                out.extend_from_slice(&data);
            } else if seen > 2 * OTLP_MAX_BODY_BYTES {
                break;
            }
        }
    }
    if seen > OTLP_MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    Ok((out, reserved))
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

async fn handle(req: Request<Incoming>, ingest: &Ingest, counts: &Counts) -> Response<Full<Bytes>> {
    if req.uri().path() != "/v1/traces" {
        return text(StatusCode::NOT_FOUND, "spans go to POST /v1/traces");
    }
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with("application/json"));
    if json {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "only application/x-protobuf is accepted",
        );
    }
    let (body, reserved) = match read_body(req, counts).await {
        Ok(read) => read,
        Err(BodyError::TooLarge) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body over {OTLP_MAX_BODY_BYTES} bytes"),
            )
        }
        Err(BodyError::Busy) => {
            let n = counts.busy.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    busy = n,
                    "xray-local: OTLP bodies at their limit; asking to retry"
                );
            }
            let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "busy; retry later");
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            return response;
        }
        Err(BodyError::Unreadable(e)) => {
            return text(StatusCode::BAD_REQUEST, &format!("unreadable body: {e}"))
        }
    };
    let decoded = decode_request(&body);
    drop(body);
    drop(reserved);
    let documents = match decoded {
        Ok(d) => d,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("not an OTLP ExportTraceServiceRequest: {e}"),
            )
        }
    };
    let total = documents.len();
    let (mut taken, mut rejected) = (0u64, 0u64);
    let mut first_error = None;
    for doc in documents.into_iter().take(OTLP_MAX_SPANS_PER_REQUEST) {
        match doc {
            Ok(doc) => {
                let mut datagram = DATAGRAM_HEADER.as_bytes().to_vec();
                doc.write_json(&mut datagram);
                if ingest.submit(datagram) {
                    taken += 1;
                } else {
                    rejected += 1;
                    first_error.get_or_insert_with(|| "collector queue full".to_string());
                }
            }
            Err(e) => {
                rejected += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if total > OTLP_MAX_SPANS_PER_REQUEST {
        rejected += (total - OTLP_MAX_SPANS_PER_REQUEST) as u64;
        first_error.get_or_insert_with(|| {
            format!("more than {OTLP_MAX_SPANS_PER_REQUEST} spans in one request")
        });
    }
    counts.requests.fetch_add(1, Ordering::Relaxed);
    counts.spans.fetch_add(taken, Ordering::Relaxed);
    counts.rejected.fetch_add(rejected, Ordering::Relaxed);
    let body = encode_response(
        i64::try_from(rejected).unwrap_or(i64::MAX),
        first_error.as_deref().unwrap_or_default(),
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    response
}
