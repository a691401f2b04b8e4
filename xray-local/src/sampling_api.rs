//! The daemon's sampling API (SPEC §4) served from a local rules file, so that centralized
//! sampling can be exercised without AWS.
//!
//! An HTTP/1.1 server ([hyper]'s, on a Tokio runtime of its own on a background thread)
//! answers `POST /GetSamplingRules` and `POST /SamplingTargets`. Each local rule becomes a
//! sampling rule named `local-N` with priority N (file order), `ReservoirSize` =
//! `fixed_target`, `FixedRate` = `rate`, any service type and `ResourceARN` `*`; the file's
//! `default` becomes the `Default` rule (priority 10000). Every statistics document for a
//! known rule is answered with a target granting `ReservoirQuota` = `fixed_target` for
//! [`SamplingApi::quota_ttl`].
//!
//! Anyone who can reach the port can talk to it, so it holds to limits (see
//! [`limits`](crate::limits)): at most [`SAMPLING_API_MAX_CONNECTIONS`] connections at once
//! (more are closed as soon as they are accepted), [`SAMPLING_API_REQUEST_DEADLINE`] for a
//! whole request however slowly its bytes arrive, request heads of
//! [`SAMPLING_API_MAX_HEAD_BYTES`] and bodies of [`SAMPLING_API_MAX_BODY_BYTES`] (413 beyond),
//! and the statistics it keeps for [`SamplingApi::statistics`] bounded by number and size.
//!
//! ```
//! use std::io::{Read, Write};
//! use xray_core::sampling::LocalRules;
//! use xray_local::sampling_api::SamplingApi;
//!
//! let rules = LocalRules::from_json(r#"{"version":2,"rules":[],"default":{"fixed_target":1,"rate":0.05}}"#).unwrap();
//! let api = SamplingApi::serve("127.0.0.1:0".parse().unwrap(), rules).unwrap();
//!
//! let mut tcp = std::net::TcpStream::connect(api.addr()).unwrap();
//! tcp.write_all(b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}").unwrap();
//! let mut answer = String::new();
//! tcp.read_to_string(&mut answer).unwrap();
//! assert!(answer.starts_with("HTTP/1.1 200"));
//! assert!(answer.contains(r#""RuleName":"Default""#));
//! ```
//!
//! [hyper]: https://docs.rs/hyper

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use xray_core::sampling::LocalRules;
use xray_core::time::Timestamp;

use crate::limits::{
    value_size, SAMPLING_API_MAX_BODY_BYTES, SAMPLING_API_MAX_CONNECTIONS,
    SAMPLING_API_MAX_HEAD_BYTES, SAMPLING_API_MAX_STATISTICS, SAMPLING_API_MAX_STATISTICS_BYTES,
    SAMPLING_API_REQUEST_DEADLINE,
};

/// Seconds between target polls advertised to clients.
const INTERVAL_SECS: u64 = 10;

/// The statistics documents kept, oldest first, within [`SAMPLING_API_MAX_STATISTICS`] and
/// [`SAMPLING_API_MAX_STATISTICS_BYTES`].
#[derive(Default)]
struct Statistics {
    entries: VecDeque<(Value, usize)>,
    bytes: usize,
    forgotten: u64,
}

impl Statistics {
    fn keep(&mut self, entry: Value) {
        let size = value_size(&entry);
        self.entries.push_back((entry, size));
        self.bytes += size;
        while self.entries.len() > SAMPLING_API_MAX_STATISTICS
            || self.bytes > SAMPLING_API_MAX_STATISTICS_BYTES
        {
            let Some((_, size)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= size;
            self.forgotten += 1;
        }
    }
}

struct Inner {
    rules: Vec<Value>,
    targets: Vec<(String, f64, u32)>,
    modified_at: u64,
    page_size: usize,
    quota_ttl: Duration,
    statistics: Mutex<Statistics>,
    rule_requests: AtomicU64,
    target_requests: AtomicU64,
    connections_refused: AtomicU64,
    connections_cut: AtomicU64,
}

/// A running sampling API server; stops when dropped.
pub struct SamplingApi {
    addr: SocketAddr,
    inner: Arc<Inner>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SamplingApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplingApi")
            .field("addr", &self.addr)
            .field("rules", &self.inner.rules.len())
            .finish()
    }
}

/// Builds the `SamplingRule` objects for a rules file, highest priority first, `Default` last.
pub fn sampling_rules(rules: &LocalRules) -> Vec<Value> {
    let mut out: Vec<Value> = rules
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            rule_json(
                &format!("local-{}", i + 1),
                i as u64 + 1,
                r.fixed_target,
                r.rate,
                &r.host,
                &r.http_method,
                &r.url_path,
            )
        })
        .collect();
    out.push(rule_json(
        "Default",
        10_000,
        rules.default.fixed_target,
        rules.default.rate,
        "*",
        "*",
        "*",
    ));
    out
}

fn rule_json(
    name: &str,
    priority: u64,
    fixed_target: u32,
    rate: f64,
    host: &str,
    method: &str,
    path: &str,
) -> Value {
    json!({
        "RuleName": name,
        "RuleARN": format!("arn:aws:xray:local:000000000000:sampling-rule/{name}"),
        "ResourceARN": "*",
        "Priority": priority,
        "FixedRate": rate,
        "ReservoirSize": fixed_target,
        "ServiceName": "*",
        "ServiceType": "*",
        "Host": host,
        "HTTPMethod": method,
        "URLPath": path,
        "Version": 1,
        "Attributes": {},
    })
}

impl SamplingApi {
    /// Serves `rules` on `addr` (port 0 picks one), every rule on one page.
    pub fn serve(addr: SocketAddr, rules: LocalRules) -> io::Result<Self> {
        Self::serve_with(addr, rules, usize::MAX, Duration::from_secs(10))
    }

    /// Serves `rules` on `addr` with at most `page_size` rules per `GetSamplingRules` answer
    /// (later pages through `NextToken`) and reservoir quotas valid for `quota_ttl`.
    pub fn serve_with(
        addr: SocketAddr,
        rules: LocalRules,
        page_size: usize,
        quota_ttl: Duration,
    ) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let targets = rules
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("local-{}", i + 1), r.rate, r.fixed_target))
            .chain(std::iter::once((
                "Default".to_string(),
                rules.default.rate,
                rules.default.fixed_target,
            )))
            .collect();
        let inner = Arc::new(Inner {
            rules: sampling_rules(&rules),
            targets,
            modified_at: Timestamp::now().as_secs(),
            page_size: page_size.max(1),
            quota_ttl,
            statistics: Mutex::new(Statistics::default()),
            rule_requests: AtomicU64::new(0),
            target_requests: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_cut: AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let i = inner.clone();
        let thread = std::thread::Builder::new()
            .name("xray-local-sampling".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => accept_loop(listener, i, stopped).await,
                        Err(e) => tracing::warn!(error = %e, "xray-local: sampling API not served"),
                    }
                });
                // Dropping the runtime ends every connection still open.
            })?;
        Ok(Self {
            addr,
            inner,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The TCP address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How long granted reservoir quotas last.
    pub fn quota_ttl(&self) -> Duration {
        self.inner.quota_ttl
    }

    fn statistics_kept(&self) -> MutexGuard<'_, Statistics> {
        self.inner
            .statistics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The `SamplingStatisticsDocuments` entries received, in order: the latest
    /// [`SAMPLING_API_MAX_STATISTICS`] within [`SAMPLING_API_MAX_STATISTICS_BYTES`].
    pub fn statistics(&self) -> Vec<Value> {
        self.statistics_kept()
            .entries
            .iter()
            .map(|(v, _)| v.clone())
            .collect()
    }

    /// Statistics entries received but no longer kept.
    pub fn statistics_forgotten(&self) -> u64 {
        self.statistics_kept().forgotten
    }

    /// Number of `GetSamplingRules` calls answered.
    pub fn rule_requests(&self) -> u64 {
        self.inner.rule_requests.load(Ordering::Relaxed)
    }

    /// Number of `SamplingTargets` calls answered.
    pub fn target_requests(&self) -> u64 {
        self.inner.target_requests.load(Ordering::Relaxed)
    }

    /// Connections closed as soon as they were accepted, because
    /// [`SAMPLING_API_MAX_CONNECTIONS`] were open.
    pub fn connections_refused(&self) -> u64 {
        self.inner.connections_refused.load(Ordering::Relaxed)
    }

    /// Connections closed because a request was not done within
    /// [`SAMPLING_API_REQUEST_DEADLINE`] (or the connection stayed idle that long).
    pub fn connections_cut(&self) -> u64 {
        self.inner.connections_cut.load(Ordering::Relaxed)
    }
}

impl Drop for SamplingApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until stopped, at most [`SAMPLING_API_MAX_CONNECTIONS`] served at
/// once: one more is closed as soon as it is accepted.
async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, mut stop: oneshot::Receiver<()>) {
    let slots = Arc::new(Semaphore::new(SAMPLING_API_MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    let n = inner.connections_refused.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(
                            refused = n,
                            "xray-local: sampling API at its connection limit"
                        );
                    }
                    drop(stream);
                    continue;
                };
                let inner = inner.clone();
                tokio::spawn(async move {
                    serve_connection(stream, inner).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "xray-local: sampling API accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves one connection (see [`crate::http_conn::serve`] for the deadline).
async fn serve_connection(stream: TcpStream, inner: Arc<Inner>) {
    let cut = inner.clone();
    crate::http_conn::serve(
        stream,
        SAMPLING_API_REQUEST_DEADLINE,
        SAMPLING_API_MAX_HEAD_BYTES,
        "sampling API",
        move |req| {
            let inner = inner.clone();
            async move { handle(req, &inner).await }
        },
        move || {
            cut.connections_cut.fetch_add(1, Ordering::Relaxed);
        },
    )
    .await;
}

/// Why a request body was not read.
enum BodyError {
    TooLarge,
    Unreadable(String),
}

/// Reads a request body of at most [`SAMPLING_API_MAX_BODY_BYTES`]. A larger body is read on
/// (and thrown away) up to twice the limit, so that the 413 answer reaches the client instead
/// of a reset connection.
async fn read_body(req: Request<Incoming>) -> Result<Vec<u8>, BodyError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > 2 * SAMPLING_API_MAX_BODY_BYTES as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = req.into_body();
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Unreadable(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= SAMPLING_API_MAX_BODY_BYTES {
                out.extend_from_slice(&data);
            } else if seen > 2 * SAMPLING_API_MAX_BODY_BYTES {
                break;
            }
        }
    }
    if seen > SAMPLING_API_MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn handle(req: Request<Incoming>, inner: &Inner) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = read_body(req).await;
    let (status, value) = match body {
        Ok(body) => answer(&method, &path, &body, inner),
        Err(BodyError::TooLarge) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            error_body(
                "InvalidRequestException",
                &format!("request body over {SAMPLING_API_MAX_BODY_BYTES} bytes"),
            ),
        ),
        Err(BodyError::Unreadable(e)) => (
            StatusCode::BAD_REQUEST,
            error_body(
                "InvalidRequestException",
                &format!("unreadable request body: {e}"),
            ),
        ),
    };
    json_response(status, &value)
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"__type": kind, "message": message})
}

/// The answer to one request: 404 for an unknown path, 405 for a method other than `POST`,
/// 400 for a body that is not JSON or not what the operation takes.
fn answer(method: &Method, path: &str, body: &[u8], inner: &Inner) -> (StatusCode, Value) {
    if path != "/GetSamplingRules" && path != "/SamplingTargets" {
        return (
            StatusCode::NOT_FOUND,
            error_body("NotFound", &format!("no such operation {path}")),
        );
    }
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            error_body("MethodNotAllowed", "use POST"),
        );
    }
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    error_body("InvalidRequestException", &format!("body is not JSON: {e}")),
                )
            }
        }
    };
    if path == "/GetSamplingRules" {
        inner.rule_requests.fetch_add(1, Ordering::Relaxed);
        get_sampling_rules(&body, inner)
    } else {
        inner.target_requests.fetch_add(1, Ordering::Relaxed);
        sampling_targets(&body, inner)
    }
}

fn get_sampling_rules(body: &Value, inner: &Inner) -> (StatusCode, Value) {
    let start = match body.get("NextToken") {
        None | Some(Value::Null) => 0,
        Some(Value::String(t)) => match t.parse::<usize>() {
            Ok(n) if n <= inner.rules.len() => n,
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    error_body("InvalidRequestException", "unknown NextToken"),
                )
            }
        },
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                error_body("InvalidRequestException", "NextToken must be a string"),
            )
        }
    };
    let end = start.saturating_add(inner.page_size).min(inner.rules.len());
    let records: Vec<Value> = inner.rules[start..end]
        .iter()
        .map(|r| {
            json!({
                "SamplingRule": r,
                "CreatedAt": inner.modified_at,
                "ModifiedAt": inner.modified_at,
            })
        })
        .collect();
    let mut out = json!({ "SamplingRuleRecords": records });
    if end < inner.rules.len() {
        out["NextToken"] = Value::from(end.to_string());
    }
    (StatusCode::OK, out)
}

fn sampling_targets(body: &Value, inner: &Inner) -> (StatusCode, Value) {
    let Some(docs) = body
        .get("SamplingStatisticsDocuments")
        .and_then(Value::as_array)
    else {
        return (
            StatusCode::BAD_REQUEST,
            error_body(
                "InvalidRequestException",
                "SamplingStatisticsDocuments is required",
            ),
        );
    };
    let now = Timestamp::now().as_secs_f64();
    let mut targets = Vec::new();
    let mut unprocessed = Vec::new();
    {
        let mut stats = inner.statistics.lock().unwrap_or_else(|p| p.into_inner());
        for d in docs {
            stats.keep(d.clone());
        }
    }
    for d in docs {
        let name = d
            .get("RuleName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match inner.targets.iter().find(|(n, _, _)| n == name) {
            Some((n, rate, quota)) => targets.push(json!({
                "RuleName": n,
                "FixedRate": rate,
                "ReservoirQuota": quota,
                "ReservoirQuotaTTL": now + inner.quota_ttl.as_secs_f64(),
                "Interval": INTERVAL_SECS,
            })),
            None => unprocessed.push(json!({
                "RuleName": name,
                "ErrorCode": "400",
                "Message": "unknown rule",
            })),
        }
    }
    (
        StatusCode::OK,
        json!({
            "SamplingTargetDocuments": targets,
            "LastRuleModification": inner.modified_at,
            "UnprocessedStatistics": unprocessed,
        }),
    )
}
