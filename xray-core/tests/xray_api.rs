//! The X-Ray API emitter (cargo feature `xray-api`) against moto's X-Ray API: documents read
//! back with `BatchGetTraces`, throttling and unprocessed documents played by a proxy in front
//! of moto, an unreachable endpoint, sampling through the SDK, and `XRAY_EXPORTER=xray-api`.
//!
//! moto's server is started by `scripts/test` (`XRAY_TEST_MOTO_ENDPOINT`). moto has no
//! sampling API, so the proxy serves `CreateSamplingRule`, `GetSamplingRules` and
//! `GetSamplingTargets` itself, from the rules created through it.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_xray::config::{BehaviorVersion, Credentials, Region};
use serde_json::{json, Value};
use xray_core::document::Sql;
use xray_core::emitter::{Emitter, EmitterStats, MemoryEmitter, XRayApiEmitter};
use xray_core::http::{begin_outbound, OutboundOptions, ServerTracing};
use xray_core::sampling::{AlwaysSample, LocalSampler, Sampler, SamplingRequest};
use xray_core::{Document, Namespace, Recorder, TraceId};

// ===== peers =====

/// moto's endpoint, or `None` (after a loud message) when the test should be skipped.
fn moto() -> Option<String> {
    match std::env::var("XRAY_TEST_MOTO_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().trim_end_matches('/').to_string()),
        _ => {
            if std::env::var("XRAY_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!("XRAY_TEST_MOTO_ENDPOINT is not set and XRAY_REQUIRE_PEERS=1");
            }
            eprintln!(
                "\n*** skipped: set XRAY_TEST_MOTO_ENDPOINT (scripts/test starts moto) ***\n"
            );
            None
        }
    }
}

fn client(endpoint: &str) -> aws_sdk_xray::Client {
    let config = aws_sdk_xray::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_xray::Client::from_conf(config)
}

/// Runs `f` on a throw-away runtime (the test's own calls to moto).
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Every document moto holds for these traces, parsed, by entity id.
fn stored(endpoint: &str, traces: &[String]) -> HashMap<String, Vec<Value>> {
    let c = client(endpoint);
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    block_on(async {
        for chunk in traces.chunks(5) {
            let r = c
                .batch_get_traces()
                .set_trace_ids(Some(chunk.to_vec()))
                .send()
                .await
                .unwrap();
            for t in r.traces() {
                for s in t.segments() {
                    let v: Value = serde_json::from_str(s.document().unwrap()).unwrap();
                    out.entry(v["id"].as_str().unwrap().to_string())
                        .or_default()
                        .push(v);
                }
            }
        }
    });
    out
}

/// Sends each document to both emitters: what the memory emitter keeps is what the API
/// emitter sends (the same encoding).
#[derive(Debug, Clone)]
struct Tee(MemoryEmitter, XRayApiEmitter);

impl Emitter for Tee {
    fn emit(&self, document: Document) {
        self.0.emit(document.clone());
        self.1.emit(document);
    }
    fn flush(&self, timeout: Duration) -> bool {
        self.1.flush(timeout)
    }
    fn stats(&self) -> EmitterStats {
        self.1.stats()
    }
}

fn adds_up(s: &EmitterStats) -> bool {
    s.sent + s.dropped + s.errors == s.accepted
}

// ===== the proxy in front of moto =====

#[derive(Default)]
struct Script {
    /// `PutTraceSegments` calls still to answer with 429 ThrottledException.
    throttle: u32,
    /// Calls still to answer with 503.
    unavailable: u32,
    /// Ids withheld from moto and returned unprocessed, once each.
    withhold_once: HashSet<String>,
    /// Ids always withheld and returned unprocessed.
    withhold_always: HashSet<String>,
    /// Ids whose in-progress version is withheld once.
    withhold_in_progress: HashSet<String>,
    /// Documents per `PutTraceSegments` call that reached the proxy.
    calls: Vec<usize>,
    /// Every document id that reached the proxy, in order.
    seen: Vec<String>,
    /// Sampling rules created through the proxy.
    rules: Vec<Value>,
    /// Bodies of `GetSamplingRules` and `GetSamplingTargets` calls.
    rule_calls: u32,
    statistics: Vec<Value>,
}

struct Proxy {
    url: String,
    script: Arc<Mutex<Script>>,
}

impl Proxy {
    fn start(moto: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script::default()));
        let (s, moto) = (script.clone(), moto.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, moto) = (s.clone(), moto.clone());
                std::thread::spawn(move || serve(conn, &s, &moto));
            }
        });
        Proxy { url, script }
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }
}

/// One HTTP/1.1 connection: requests with Content-Length bodies, kept alive.
fn serve(conn: TcpStream, script: &Mutex<Script>, moto: &str) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, extra, reply) = answer(&path, &headers, &body, script, moto);
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
            reply.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(&reply).is_err() {
            return;
        }
    }
}

fn forward(moto: &str, path: &str, headers: &[(String, String)], body: Vec<u8>) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("{moto}{path}"));
    for (k, v) in headers {
        if !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("host") {
            req = req.header(k, v);
        }
    }
    let mut r = agent.run(req.body(body).unwrap()).unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_vec().unwrap())
}

fn error(status: u16, kind: &str) -> (u16, String, Vec<u8>) {
    (
        status,
        format!("x-amzn-ErrorType: {kind}\r\n"),
        serde_json::to_vec(&json!({"__type": kind, "message": "played by the test proxy"}))
            .unwrap(),
    )
}

fn answer(
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    script: &Mutex<Script>,
    moto: &str,
) -> (u16, String, Vec<u8>) {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut s = script.lock().unwrap();
    match path {
        "/TraceSegments" => {
            let docs: Vec<String> = req["TraceSegmentDocuments"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            s.calls.push(docs.len());
            if s.throttle > 0 {
                s.throttle -= 1;
                return error(429, "ThrottledException");
            }
            if s.unavailable > 0 {
                s.unavailable -= 1;
                return error(503, "ServiceUnavailableException");
            }
            let (mut keep, mut unprocessed) = (Vec::new(), Vec::new());
            for d in docs {
                let v: Value = serde_json::from_str(&d).unwrap();
                let id = v["id"].as_str().unwrap_or_default().to_string();
                s.seen.push(id.clone());
                let in_progress = v["in_progress"] == json!(true);
                let withheld = s.withhold_always.contains(&id)
                    || s.withhold_once.remove(&id)
                    || (in_progress && s.withhold_in_progress.remove(&id));
                if withheld {
                    unprocessed.push(
                        json!({"Id": id, "ErrorCode": "ThrottledException", "Message": "played"}),
                    );
                } else {
                    keep.push(d);
                }
            }
            drop(s);
            let fwd = serde_json::to_vec(&json!({ "TraceSegmentDocuments": keep })).unwrap();
            let (status, reply) = forward(moto, path, headers, fwd);
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
            let mut reply: Value = serde_json::from_slice(&reply).unwrap();
            let list = reply["UnprocessedTraceSegments"].as_array_mut().unwrap();
            assert!(list.is_empty(), "moto refused a document: {list:?}");
            list.extend(unprocessed);
            (200, String::new(), serde_json::to_vec(&reply).unwrap())
        }
        "/CreateSamplingRule" => {
            let mut rule = req["SamplingRule"].clone();
            rule["RuleARN"] = json!(format!(
                "arn:aws:xray:us-east-1:123456789012:sampling-rule/{}",
                rule["RuleName"].as_str().unwrap_or_default()
            ));
            s.rules.push(rule.clone());
            let record = json!({"SamplingRule": rule, "CreatedAt": 1.7e9, "ModifiedAt": 1.7e9});
            (
                200,
                String::new(),
                serde_json::to_vec(&json!({"SamplingRuleRecord": record})).unwrap(),
            )
        }
        "/GetSamplingRules" => {
            s.rule_calls += 1;
            let records: Vec<Value> = s
                .rules
                .iter()
                .map(|r| json!({"SamplingRule": r, "CreatedAt": 1.7e9, "ModifiedAt": 1.7e9}))
                .collect();
            (
                200,
                String::new(),
                serde_json::to_vec(&json!({"SamplingRuleRecords": records})).unwrap(),
            )
        }
        "/SamplingTargets" => {
            s.statistics.push(req.clone());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let targets: Vec<Value> = req["SamplingStatisticsDocuments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    let name = d["RuleName"].as_str().unwrap_or_default();
                    let rate = s
                        .rules
                        .iter()
                        .find(|r| r["RuleName"] == name)
                        .map_or(json!(0.0), |r| r["FixedRate"].clone());
                    json!({"RuleName": name, "FixedRate": rate, "ReservoirQuota": 0,
                           "ReservoirQuotaTTL": now + 60.0, "Interval": 10})
                })
                .collect();
            let body = json!({"SamplingTargetDocuments": targets,
                              "LastRuleModification": 1.7e9, "UnprocessedStatistics": []});
            (200, String::new(), serde_json::to_vec(&body).unwrap())
        }
        _ => {
            drop(s);
            let (status, reply) = forward(moto, path, headers, body.to_vec());
            (status, String::new(), reply)
        }
    }
}

// ===== the traced request =====

/// Serves one request the way an adapter does: the segment from the request's head, an
/// outbound HTTP call (to moto, for real), an AWS call, a SQL query, annotations, metadata and
/// a failure with its cause. With a streaming threshold of 2, finished subsegments go out on
/// their own before the segment.
fn traced_request(recorder: &Recorder, moto: &str) -> String {
    let tracing = ServerTracing::new("api-emitter-test").with_recorder(recorder.clone());
    let request = http::Request::builder()
        .method("POST")
        .uri("http://shop.example/orders/42?debug=1")
        .header("user-agent", "xray-api-test")
        .header("x-forwarded-for", "203.0.113.9")
        .body(())
        .unwrap();
    let mut exchange =
        tracing.begin_http(request.method(), request.uri(), request.headers(), || None);
    let seg = exchange.entity().unwrap().clone();
    seg.put_annotation("order", 42);
    seg.put_annotation("customer", "c-7");
    seg.put_metadata("cart", json!({"items": [1, 2, 3], "total": 12.5}));
    seg.set_user("alice");

    // An outbound call, made for real, recorded as the HTTP client adapters do.
    let url = format!("{moto}/moto-api/");
    let mut call = begin_outbound(Some(seg.clone()), "GET", &url, &OutboundOptions::default())
        .expect("the call is recorded");
    let mut headers = http::HeaderMap::new();
    assert!(call.inject(&mut headers));
    let mut get = ureq::get(&url);
    for (k, v) in &headers {
        get = get.header(k.as_str(), v.to_str().unwrap());
    }
    let status = get.call().map(|r| r.status().as_u16()).unwrap_or(599);
    call.finish(status, None);
    drop(call);

    let aws = seg.begin_subsegment("DynamoDB");
    aws.set_namespace(Namespace::Aws);
    aws.set_aws("operation", "GetItem");
    aws.set_aws("table_name", "orders");
    aws.set_aws("region", "us-east-1");
    aws.set_aws("request_id", "REQ123");
    aws.end();

    let db = seg.begin_subsegment("orders@db.example");
    db.set_namespace(Namespace::Remote);
    let mut sql = Sql::default();
    sql.url = Some("postgresql://db.example:5432/orders".into());
    sql.sanitized_query = Some("SELECT * FROM orders WHERE id = $1".into());
    sql.database_type = Some("PostgreSQL".into());
    db.set_sql(sql);
    db.end();

    let work = seg.begin_subsegment("render");
    let inner = work.begin_subsegment("template");
    inner.add_error(&std::io::Error::other("template missing"));
    inner.end();
    work.end();

    exchange.respond(500, Some(17));
    exchange.complete();
    seg.trace_id().to_string()
}

// ===== tests =====

#[test]
fn documents_of_a_traced_request_come_back_whole_from_batch_get_traces() {
    let Some(moto) = moto() else { return };
    let api = XRayApiEmitter::builder()
        .client(client(&moto))
        .build()
        .unwrap();
    let memory = MemoryEmitter::new();
    let recorder = Recorder::builder()
        .ignore_env()
        .sampler(AlwaysSample)
        .emitter(Tee(memory.clone(), api.clone()))
        .streaming_threshold(2)
        .service_name("api-emitter-test")
        .build()
        .unwrap();
    let trace = traced_request(&recorder, &moto);
    let started = Instant::now();
    assert!(recorder.shutdown(Duration::from_secs(5)));
    let flushed_in = started.elapsed();

    let sent = memory.values();
    assert!(
        sent.len() >= 3,
        "streamed subsegments and the segment: {sent:#?}"
    );
    let back = stored(&moto, std::slice::from_ref(&trace));
    for doc in &sent {
        let id = doc["id"].as_str().unwrap();
        let got = back
            .get(id)
            .unwrap_or_else(|| panic!("{id} not in moto: {doc}"));
        assert_eq!(got, &vec![doc.clone()], "document {id} came back whole");
    }
    assert_eq!(back.values().map(Vec::len).sum::<usize>(), sent.len());

    // The fields a reader of the trace relies on are there, as recorded.
    let seg = sent.iter().find(|d| d.get("type").is_none()).unwrap();
    assert_eq!(seg["trace_id"], trace);
    assert_eq!(seg["http"]["request"]["method"], "POST");
    assert_eq!(seg["http"]["response"]["status"], 500);
    assert_eq!(seg["fault"], true);
    assert_eq!(seg["annotations"]["order"], 42);
    assert_eq!(seg["metadata"]["default"]["cart"]["total"], 12.5);
    assert_eq!(seg["user"], "alice");
    let all: Vec<&Value> = sent.iter().collect();
    let find = |name: &str| -> Value {
        fn walk(v: &Value, name: &str) -> Option<Value> {
            if v["name"] == name {
                return Some(v.clone());
            }
            v["subsegments"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|s| walk(s, name))
        }
        all.iter().find_map(|d| walk(d, name)).unwrap()
    };
    assert_eq!(find("DynamoDB")["aws"]["table_name"], "orders");
    assert_eq!(
        find("orders@db.example")["sql"]["database_type"],
        "PostgreSQL"
    );
    let outbound = sent
        .iter()
        .flat_map(|d| std::iter::once(d).chain(d["subsegments"].as_array().into_iter().flatten()))
        .find(|d| d["namespace"] == "remote" && d.get("sql").is_none())
        .expect("the outbound call's subsegment");
    assert_eq!(outbound["http"]["request"]["method"], "GET");
    assert_eq!(outbound["http"]["response"]["status"], 200);
    let template = find("template");
    assert_eq!(
        template["cause"]["exceptions"][0]["message"],
        "template missing"
    );

    let s = api.stats();
    assert_eq!(
        (s.accepted, s.sent, s.dropped, s.errors),
        (sent.len() as u64, sent.len() as u64, 0, 0),
        "{s:?}"
    );
    let a = api.api_stats();
    assert!(
        a.calls >= 1 && a.throttled == 0 && a.unprocessed == 0,
        "{a:?}"
    );
    eprintln!(
        "{} documents of one request, {} call(s), flushed by shutdown in {flushed_in:?}",
        sent.len(),
        a.calls
    );
}

/// `n` finished segments of fresh traces.
fn segments(n: usize, name: &str) -> Vec<Document> {
    (0..n)
        .map(|i| {
            let mut d = Document::new(format!("{name}-{i}"));
            d.trace_id = Some(TraceId::new());
            d.end_time = Some(d.start_time);
            d.annotations.insert("i".into(), (i as i64).into());
            d
        })
        .collect()
}

#[test]
fn throttling_server_errors_and_unprocessed_documents_are_retried_until_everything_arrives() {
    let Some(moto) = moto() else { return };
    let proxy = Proxy::start(&moto);
    let docs = segments(60, "retried");
    let ids: Vec<String> = docs.iter().map(|d| d.id.to_string()).collect();
    let traces: Vec<String> = docs
        .iter()
        .map(|d| d.trace_id.unwrap().to_string())
        .collect();
    {
        let mut s = proxy.script();
        s.throttle = 1;
        s.unavailable = 1;
        // Two returned once (then accepted), one returned every time.
        s.withhold_once.extend([ids[3].clone(), ids[55].clone()]);
        s.withhold_always.insert(ids[10].clone());
    }
    let api = XRayApiEmitter::builder()
        .client(client(&proxy.url))
        .backoff(Duration::from_millis(20))
        .build()
        .unwrap();
    let started = Instant::now();
    for d in docs {
        api.emit(d);
    }
    let emitted_in = started.elapsed();
    assert!(api.flush(Duration::from_secs(10)));
    let took = started.elapsed();

    let s = api.stats();
    assert_eq!(
        (s.accepted, s.sent, s.errors, s.dropped),
        (60, 59, 1, 0),
        "{s:?}"
    );
    assert!(adds_up(&s));
    let a = api.api_stats();
    assert_eq!(
        (a.throttled, a.server_errors, a.transport_errors),
        (1, 1, 0),
        "{a:?}"
    );
    // ids[3] and ids[55] once each; ids[10] on its first call and on each of its 3 resends.
    assert_eq!((a.unprocessed, a.resent), (6, 5), "{a:?}");

    let back = stored(&moto, &traces);
    for (i, id) in ids.iter().enumerate() {
        let n = back.get(id).map_or(0, Vec::len);
        assert_eq!(
            n,
            usize::from(i != 10),
            "document {i} ({id}) in moto {n} times"
        );
    }
    let calls = proxy.script().calls.clone();
    assert!(calls.iter().all(|&n| n <= 50), "{calls:?}");
    // The throttled call, then the one answered 503, then the same documents accepted.
    assert!(
        calls[0] == calls[1] && calls[1] == calls[2],
        "one call tried three times: {calls:?}"
    );
    eprintln!("60 documents, calls {calls:?}; emit {emitted_in:?}, all settled in {took:?}");
}

#[test]
fn an_in_progress_segment_returned_unprocessed_is_not_resent_over_its_completed_version() {
    let Some(moto) = moto() else { return };
    let proxy = Proxy::start(&moto);
    let mut open = Document::new("long-request");
    open.trace_id = Some(TraceId::new());
    open.in_progress = true;
    let mut done = open.clone();
    done.in_progress = false;
    done.end_time = Some(done.start_time);
    let id = open.id.to_string();
    let trace = open.trace_id.unwrap().to_string();
    proxy.script().withhold_in_progress.insert(id.clone());
    let api = XRayApiEmitter::builder()
        .client(client(&proxy.url))
        .build()
        .unwrap();
    api.emit(open);
    api.emit(done);
    assert!(api.flush(Duration::from_secs(5)));
    let s = api.stats();
    assert_eq!((s.accepted, s.sent, s.errors), (2, 2, 0), "{s:?}");
    let a = api.api_stats();
    assert_eq!((a.unprocessed, a.superseded, a.resent), (1, 1, 0), "{a:?}");
    assert!(proxy.script().seen.contains(&id));
    let back = stored(&moto, &[trace]);
    let versions = &back[&id];
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert!(versions[0].get("end_time").is_some() && versions[0].get("in_progress").is_none());
}

/// Ends `n` segments through `recorder`; returns the time per segment and the slowest.
fn end_segments(recorder: &Recorder, n: u32) -> (Duration, Duration) {
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        recorder.begin_segment("unreachable", None).end();
        slowest = slowest.max(t.elapsed());
    }
    (started.elapsed() / n, slowest)
}

fn recorder_with(api: &XRayApiEmitter) -> Recorder {
    Recorder::builder()
        .ignore_env()
        .sampler(AlwaysSample)
        .emitter(api.clone())
        .build()
        .unwrap()
}

#[test]
fn a_refused_endpoint_costs_errors_and_drops_never_a_blocked_request() {
    // moto down: a port nobody listens at.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let api = XRayApiEmitter::builder()
        .client(client(&url))
        .queue_capacity(1000)
        .build()
        .unwrap();
    let recorder = recorder_with(&api);
    let (each, slowest) = end_segments(&recorder, 3000);
    let t = Instant::now();
    recorder.shutdown(Duration::from_millis(300));
    let shutdown = t.elapsed();
    assert!(
        shutdown < Duration::from_millis(800),
        "shutdown took {shutdown:?}"
    );
    // Once the endpoint proved unreachable each call gets one attempt: all settles soon.
    assert!(api.flush(Duration::from_secs(10)));
    let s = api.stats();
    assert_eq!((s.accepted, s.sent), (3000, 0), "{s:?}");
    assert!(s.errors > 0 && adds_up(&s), "{s:?}");
    let a = api.api_stats();
    assert!(
        a.transport_errors >= 1 && a.calls == a.transport_errors,
        "{a:?}"
    );
    assert!(
        slowest < Duration::from_millis(200),
        "one request took {slowest:?}"
    );
    eprintln!(
        "3000 segments, endpoint refused: {each:?} per segment, slowest {slowest:?}, \
         shutdown(300 ms) returned in {shutdown:?}; dropped {}, errors {}, calls {}",
        s.dropped, s.errors, a.calls
    );
}

#[test]
fn an_endpoint_that_never_answers_blocks_no_request_and_no_shutdown() {
    // Takes connections and never answers: each call lasts its whole timeout (300 ms here),
    // so a request or a shutdown that waited on the network would show it.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", hole.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for c in hole.incoming().flatten() {
            h.lock().unwrap().push(c);
        }
    });
    let api = XRayApiEmitter::builder()
        .client(client(&url))
        .queue_capacity(200)
        .request_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(10))
        .build()
        .unwrap();
    let recorder = recorder_with(&api);
    let (each, slowest) = end_segments(&recorder, 1000);
    let t = Instant::now();
    let flushed = recorder.shutdown(Duration::from_millis(200));
    let shutdown = t.elapsed();
    assert!(!flushed, "nothing can have been delivered");
    assert!(
        shutdown < Duration::from_millis(700),
        "shutdown took {shutdown:?}"
    );
    assert!(
        slowest < Duration::from_millis(200),
        "one request took {slowest:?}"
    );
    // The documents taken settle as errors after the timeouts; the rest were dropped.
    assert!(api.flush(Duration::from_secs(15)));
    let s = api.stats();
    assert_eq!((s.accepted, s.sent), (1000, 0), "{s:?}");
    assert!(s.dropped > 0 && s.errors >= 50 && adds_up(&s), "{s:?}");
    let a = api.api_stats();
    assert!(
        a.transport_errors >= 1 && a.calls == a.transport_errors,
        "{a:?}"
    );
    assert!(!held.lock().unwrap().is_empty(), "the emitter connected");
    eprintln!(
        "1000 segments, endpoint silent: {each:?} per segment, slowest {slowest:?}, \
         shutdown(200 ms) returned in {shutdown:?}; dropped {}, errors {}, calls {}",
        s.dropped, s.errors, a.calls
    );
}

#[test]
fn sampling_rules_from_the_api_decide_through_the_sdk_client() {
    let Some(moto) = moto() else { return };
    let proxy = Proxy::start(&moto);
    let c = client(&proxy.url);
    block_on(async {
        for (name, priority, service, rate) in [
            ("checkout-all", 1, "checkout", 1.0),
            ("everything-else", 9000, "*", 0.0),
        ] {
            let rule = aws_sdk_xray::types::SamplingRule::builder()
                .rule_name(name)
                .resource_arn("*")
                .priority(priority)
                .fixed_rate(rate)
                .reservoir_size(0)
                .service_name(service)
                .service_type("*")
                .host("*")
                .http_method("*")
                .url_path("*")
                .version(1)
                .build()
                .unwrap();
            c.create_sampling_rule()
                .sampling_rule(rule)
                .send()
                .await
                .unwrap();
        }
    });
    let api = XRayApiEmitter::builder().client(c).build().unwrap();
    // The fallback would sample everything: decisions below come from the API's rules.
    let fallback = LocalSampler::new(1, 1.0);
    let sampler = api.centralized_sampler(fallback);
    assert!(sampler.refresh_rules_now());
    assert_eq!(sampler.rule_names(), ["checkout-all", "everything-else"]);
    let ask = |service: &str| {
        sampler.should_sample(
            &SamplingRequest::new(service)
                .method(Some("GET"))
                .url_path(Some("/")),
        )
    };
    for _ in 0..20 {
        let d = ask("checkout");
        assert!(d.sampled);
        assert_eq!(d.rule_name.as_deref(), Some("checkout-all"));
        let d = ask("billing");
        assert!(!d.sampled);
        assert_eq!(d.rule_name.as_deref(), Some("everything-else"));
    }
    sampler.report_now();
    let stats = proxy.script().statistics.clone();
    let docs = stats[0]["SamplingStatisticsDocuments"].as_array().unwrap();
    let of = |name: &str| docs.iter().find(|d| d["RuleName"] == name).unwrap().clone();
    assert_eq!(of("checkout-all")["RequestCount"], 20);
    assert_eq!(of("checkout-all")["SampledCount"], 20);
    assert_eq!(of("everything-else")["RequestCount"], 20);
    assert_eq!(of("everything-else")["SampledCount"], 0);
    assert_eq!(of("checkout-all")["ClientID"], sampler.client_id());
    let status = sampler.status();
    assert_eq!(
        (status.rule_fetches, status.target_fetches),
        (1, 1),
        "{status:?}"
    );
    // Once the emitter is gone, calls fail and the rules in hand stay.
    drop(api);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!sampler.refresh_rules_now());
    assert_eq!(ask("checkout").rule_name.as_deref(), Some("checkout-all"));
}

/// Set (to the proxy's URL) in the child process that
/// [`xray_exporter_xray_api_sends_through_the_api_and_samples_through_it`] starts.
const CHILD: &str = "XRAY_API_TEST_CHILD_PROXY";

/// The environment is read by a child process (this test binary, running
/// [`recorder_from_the_environment_in_a_child_process`] alone): setting variables in this
/// process while other tests' threads read theirs is not safe.
#[test]
fn xray_exporter_xray_api_sends_through_the_api_and_samples_through_it() {
    let Some(moto) = moto() else { return };
    let proxy = Proxy::start(&moto);
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "recorder_from_the_environment_in_a_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &proxy.url)
        .env("XRAY_EXPORTER", "xray-api")
        .env("AWS_ENDPOINT_URL_XRAY", &proxy.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_XRAY_SDK_ENABLED")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        // The harness writes the test's name on the same line first.
        .find_map(|l| l.split_once("CHILD ").map(|(_, rest)| rest.to_string()));
    // The child's recorder is still up: its default sampler polls the API through the same
    // client, so the rules are asked for.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.script().rule_calls == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rule_calls = proxy.script().rule_calls;
    // Lets the child shut its recorder down and exit.
    let _ = child.stdin.take().unwrap().write_all(b"done\n");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {}", rest.join("\n"));
    let line = line.expect("the child test did not run");
    let (trace, id) = line.split_once(' ').unwrap();
    assert!(rule_calls >= 1, "no GetSamplingRules call");
    assert!(proxy.script().seen.iter().any(|s| s == id));
    let back = stored(&moto, &[trace.to_string()]);
    assert_eq!(back[id][0]["name"], "from-env");
}

/// The child half of the test above; does nothing unless started by it.
#[test]
fn recorder_from_the_environment_in_a_child_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let recorder = Recorder::builder()
        .service_name("from-env")
        .build()
        .unwrap();
    let seg = recorder.begin_segment("from-env", None);
    let trace = seg.trace_id().to_string();
    let id = seg.id().to_string();
    assert!(
        seg.is_sampled(),
        "the fallback's reservoir takes the first request"
    );
    seg.end();
    assert!(recorder.flush(Duration::from_secs(5)));
    println!("CHILD {trace} {id}");
    // The parent watches the sampling API's calls while the recorder is up, then says when
    // to shut down (or goes away).
    let mut said = String::new();
    let _ = std::io::stdin().read_line(&mut said);
    assert!(recorder.shutdown(Duration::from_secs(2)));
}
