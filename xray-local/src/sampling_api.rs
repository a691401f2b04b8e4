//! The daemon's sampling API (SPEC §4) served from a local rules file, so that centralized
//! sampling can be exercised without AWS.
//!
//! A small HTTP/1.1 server on a background thread answers `POST /GetSamplingRules` and
//! `POST /SamplingTargets`. Each local rule becomes a sampling rule named `local-N` with
//! priority N (file order), `ReservoirSize` = `fixed_target`, `FixedRate` = `rate`, any
//! service type and `ResourceARN` `*`; the file's `default` becomes the `Default` rule
//! (priority 10000). Every statistics document for a known rule is answered with a target
//! granting `ReservoirQuota` = `fixed_target` for [`SamplingApi::quota_ttl`].
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

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use xray_core::time::Timestamp;

use xray_core::sampling::LocalRules;

/// Largest request head and body accepted.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;
/// How long an idle connection is kept.
const IDLE: Duration = Duration::from_secs(5);
/// Seconds between target polls advertised to clients.
const INTERVAL_SECS: u64 = 10;

struct Inner {
    rules: Vec<Value>,
    targets: Vec<(String, f64, u32)>,
    modified_at: u64,
    page_size: usize,
    quota_ttl: Duration,
    statistics: Mutex<Vec<Value>>,
    rule_requests: AtomicU64,
    target_requests: AtomicU64,
    stop: AtomicBool,
}

/// A running sampling API server; stops when dropped.
pub struct SamplingApi {
    addr: SocketAddr,
    inner: Arc<Inner>,
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
        let listener = TcpListener::bind(addr)?;
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
            statistics: Mutex::new(Vec::new()),
            rule_requests: AtomicU64::new(0),
            target_requests: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let i = inner.clone();
        std::thread::Builder::new()
            .name("xray-local-sampling".into())
            .spawn(move || accept_loop(listener, i))?;
        Ok(Self { addr, inner })
    }

    /// The TCP address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How long granted reservoir quotas last.
    pub fn quota_ttl(&self) -> Duration {
        self.inner.quota_ttl
    }

    /// Every `SamplingStatisticsDocuments` entry received, in order.
    pub fn statistics(&self) -> Vec<Value> {
        self.inner
            .statistics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Number of `GetSamplingRules` calls answered.
    pub fn rule_requests(&self) -> u64 {
        self.inner.rule_requests.load(Ordering::Relaxed)
    }

    /// Number of `SamplingTargets` calls answered.
    pub fn target_requests(&self) -> u64 {
        self.inner.target_requests.load(Ordering::Relaxed)
    }
}

impl Drop for SamplingApi {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    for stream in listener.incoming() {
        if inner.stop.load(Ordering::Relaxed) {
            return;
        }
        match stream {
            Ok(s) => {
                let i = inner.clone();
                let spawned = std::thread::Builder::new()
                    .name("xray-local-sampling-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve_connection(s, &i) {
                            tracing::debug!(error = %e, "xray-local: sampling API connection ended");
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "xray-local: cannot start a connection thread");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "xray-local: sampling API accept failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads one request; `None` at a clean end of stream.
fn read_request(r: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(bad("connection closed inside the request head"));
        }
        if head.len() + line.len() > MAX_HEAD {
            return Err(bad("request head too large"));
        }
        let blank = line == b"\r\n" || line == b"\n";
        if blank && head.is_empty() {
            continue; // tolerate stray blank lines between requests
        }
        head.extend_from_slice(&line);
        if blank {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.lines();
    let start = lines.next().unwrap_or_default();
    let mut parts = start.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let version = parts.next().unwrap_or_default();
    let mut close = version == "HTTP/1.0";
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse().map_err(|_| bad("bad Content-Length"))?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            let v = v.to_ascii_lowercase();
            if v.contains("close") {
                close = true;
            } else if v.contains("keep-alive") {
                close = false;
            }
        }
    }
    let body = if chunked {
        read_chunked(r)?
    } else {
        let n = length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(bad("request body too large"));
        }
        let mut body = vec![0u8; n];
        r.read_exact(&mut body)?;
        body
    };
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.by_ref().take(1024).read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut t = String::new();
                let n = r.by_ref().take(1024).read_line(&mut t)?;
                if n == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}

fn serve_connection(stream: TcpStream, inner: &Inner) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader)? {
        let (status, body) = answer(&req, inner);
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            _ => "Method Not Allowed",
        };
        let body = body.to_string();
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if req.close { "Connection: close\r\n" } else { "" }
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(body.as_bytes())?;
        writer.flush()?;
        if req.close {
            break;
        }
    }
    Ok(())
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"__type": kind, "message": message})
}

fn answer(req: &Request, inner: &Inner) -> (u16, Value) {
    let path = req.path.split('?').next().unwrap_or_default();
    if path != "/GetSamplingRules" && path != "/SamplingTargets" {
        return (
            404,
            error_body("NotFound", &format!("no such operation {path}")),
        );
    }
    if req.method != "POST" {
        return (405, error_body("MethodNotAllowed", "use POST"));
    }
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    400,
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

fn get_sampling_rules(body: &Value, inner: &Inner) -> (u16, Value) {
    let start = match body.get("NextToken") {
        None | Some(Value::Null) => 0,
        Some(Value::String(t)) => match t.parse::<usize>() {
            Ok(n) if n <= inner.rules.len() => n,
            _ => {
                return (
                    400,
                    error_body("InvalidRequestException", "unknown NextToken"),
                )
            }
        },
        Some(_) => {
            return (
                400,
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
    (200, out)
}

fn sampling_targets(body: &Value, inner: &Inner) -> (u16, Value) {
    let Some(docs) = body
        .get("SamplingStatisticsDocuments")
        .and_then(Value::as_array)
    else {
        return (
            400,
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
        stats.extend(docs.iter().cloned());
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
        200,
        json!({
            "SamplingTargetDocuments": targets,
            "LastRuleModification": inner.modified_at,
            "UnprocessedStatistics": unprocessed,
        }),
    )
}
