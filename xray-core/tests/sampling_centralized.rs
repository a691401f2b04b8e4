//! Centralized sampling against a real HTTP server on loopback that plays the daemon's
//! sampling proxy (`POST /GetSamplingRules`, `POST /SamplingTargets`), with the API's JSON
//! shapes, error statuses, garbage, chunked and slow answers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xray_core::daemon::DaemonAddress;
use xray_core::emitter::MemoryEmitter;
use xray_core::sampling::clock::{FixedRandom, ManualClock};
use xray_core::sampling::{CentralizedSampler, LocalRule, LocalSampler, Sampler, SamplingRequest};
use xray_core::time::Timestamp;
use xray_core::Recorder;

// ===== the fake daemon =====

/// How the fake daemon answers one call.
#[derive(Clone, Debug)]
enum Reply {
    /// A status and a JSON body with Content-Length.
    Json(u16, Value),
    /// A JSON body, 200, sent with chunked transfer encoding.
    Chunked(Value),
    /// Raw bytes, then close.
    Raw(Vec<u8>),
    /// Waits this long before answering `{}`.
    Hang(Duration),
    /// Closes the connection without answering.
    Close,
}

type Script = Box<dyn FnMut(&Value) -> Reply + Send>;

#[derive(Clone, Debug)]
struct Call {
    path: String,
    body: Value,
}

struct FakeDaemon {
    port: u16,
    rules: Arc<Mutex<Script>>,
    targets: Arc<Mutex<Script>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakeDaemon {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let d = FakeDaemon {
            port,
            rules: Arc::new(Mutex::new(Box::new(|_: &Value| {
                Reply::Json(200, json!({}))
            }))),
            targets: Arc::new(Mutex::new(Box::new(|_: &Value| {
                Reply::Json(200, json!({"SamplingTargetDocuments": []}))
            }))),
            calls: Arc::default(),
        };
        let (rules, targets, calls) = (d.rules.clone(), d.targets.clone(), d.calls.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (rules, targets, calls) = (rules.clone(), targets.clone(), calls.clone());
                std::thread::spawn(move || serve(stream, &rules, &targets, &calls));
            }
        });
        d
    }

    fn address(&self) -> DaemonAddress {
        DaemonAddress::parse(&format!("127.0.0.1:{}", self.port)).unwrap()
    }

    fn on_rules(&self, f: impl FnMut(&Value) -> Reply + Send + 'static) {
        *self.rules.lock().unwrap() = Box::new(f);
    }

    fn on_targets(&self, f: impl FnMut(&Value) -> Reply + Send + 'static) {
        *self.targets.lock().unwrap() = Box::new(f);
    }

    fn calls(&self, path: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.path == path)
            .map(|c| c.body.clone())
            .collect()
    }
}

fn serve(
    mut stream: TcpStream,
    rules: &Mutex<Script>,
    targets: &Mutex<Script>,
    calls: &Mutex<Vec<Call>>,
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + 4 + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body: Value =
        serde_json::from_slice(&buf[head_end + 4..head_end + 4 + length]).unwrap_or(Value::Null);
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    assert_eq!(method, "POST", "the sampler only POSTs");
    calls.lock().unwrap().push(Call {
        path: path.to_string(),
        body: body.clone(),
    });
    let reply = match path {
        "/GetSamplingRules" => (rules.lock().unwrap())(&body),
        "/SamplingTargets" => (targets.lock().unwrap())(&body),
        _ => Reply::Json(404, json!({"message": "unknown path"})),
    };
    let bytes = match reply {
        Reply::Json(status, v) => {
            let b = v.to_string();
            format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )
            .into_bytes()
        }
        Reply::Chunked(v) => {
            let b = v.to_string();
            let (a, c) = b.split_at(b.len() / 2);
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{c}\r\n0\r\n\r\n",
                a.len(),
                c.len()
            )
            .into_bytes()
        }
        Reply::Raw(b) => b,
        Reply::Hang(d) => {
            std::thread::sleep(d);
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec()
        }
        Reply::Close => return,
    };
    let _ = stream.write_all(&bytes);
}

// ===== API shapes =====

fn rule(name: &str, priority: i64, rate: f64, reservoir: i64, path: &str) -> Value {
    json!({
        "SamplingRule": {
            "RuleName": name,
            "RuleARN": format!("arn:aws:xray:us-east-1:123456789012:sampling-rule/{name}"),
            "ResourceARN": "*",
            "Priority": priority,
            "FixedRate": rate,
            "ReservoirSize": reservoir,
            "ServiceName": "*",
            "ServiceType": "*",
            "Host": "*",
            "HTTPMethod": "*",
            "URLPath": path,
            "Version": 1,
            "Attributes": {}
        },
        "CreatedAt": 1.7e9,
        "ModifiedAt": 1.7e9
    })
}

/// X-Ray's `Default` rule at rate 0 and an `api` rule sampling every `/api/*` request.
fn default_and_api_rules() -> Reply {
    Reply::Json(
        200,
        rules_page(vec![
            rule("Default", 10000, 0.0, 0, "*"),
            rule("api", 1, 1.0, 0, "/api/*"),
        ]),
    )
}

fn rules_page(rules: Vec<Value>) -> Value {
    json!({ "SamplingRuleRecords": rules })
}

fn target(name: &str, rate: f64, quota: i64, ttl: u64) -> Value {
    json!({
        "RuleName": name,
        "FixedRate": rate,
        "ReservoirQuota": quota,
        "ReservoirQuotaTTL": ttl,
        "Interval": 10
    })
}

fn targets(docs: Vec<Value>, last_modified: u64) -> Value {
    json!({
        "SamplingTargetDocuments": docs,
        "LastRuleModification": last_modified,
        "UnprocessedStatistics": []
    })
}

// ===== helpers =====

const T0: u64 = 1_700_000_000;

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_micros(T0 * 1_000_000)))
}

/// A fallback that never samples and names itself, so tests can tell who decided.
fn fallback() -> LocalSampler {
    LocalSampler::new(0, 0.0).with_rule(LocalRule::new(0, 0.0).description("local fallback"))
}

fn sampler(d: &FakeDaemon, clock: &Arc<ManualClock>) -> CentralizedSampler {
    CentralizedSampler::new(&d.address(), fallback())
        .with_clock(clock.clone())
        .with_random(Arc::new(FixedRandom::new(0.5)))
        .with_timeout(Duration::from_millis(500))
        .with_rules_interval(Duration::from_secs(3600))
        .with_targets_interval(Duration::from_secs(3600))
}

fn path(p: &str) -> SamplingRequest<'_> {
    SamplingRequest::new("svc")
        .method(Some("GET"))
        .url_path(Some(p))
}

fn sampled_of(s: &impl Sampler, req: &SamplingRequest<'_>, n: usize) -> usize {
    (0..n).filter(|_| s.should_sample(req).sampled).count()
}

fn rule_of(s: &impl Sampler, req: &SamplingRequest<'_>) -> String {
    s.should_sample(req)
        .rule_name
        .map(|n| n.to_string())
        .unwrap_or_default()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ===== tests =====

#[test]
fn poller_fetches_rules_at_start_and_they_replace_the_fallback() {
    let d = FakeDaemon::start();
    d.on_rules(|_| default_and_api_rules());
    let s = sampler(&d, &manual_clock()).with_rules_interval(Duration::from_secs(3600));
    assert_eq!(
        rule_of(&s, &path("/api/x")),
        "local fallback",
        "before start"
    );
    s.start();
    wait_until("rules", Duration::from_secs(5), || s.status().rules == 2);
    assert_eq!(s.rule_names(), ["api", "Default"]);
    let d1 = s.should_sample(&path("/api/x"));
    assert!(d1.sampled);
    assert_eq!(d1.rule_name.as_deref(), Some("api"));
    let d2 = s.should_sample(&path("/other"));
    assert!(!d2.sampled);
    assert_eq!(d2.rule_name.as_deref(), Some("Default"));
    assert_eq!(d.calls("/GetSamplingRules")[0], json!({}));
    s.stop();
}

#[test]
fn every_next_token_page_is_followed() {
    let d = FakeDaemon::start();
    d.on_rules(|body| match body.get("NextToken").and_then(Value::as_str) {
        None => Reply::Json(
            200,
            json!({"SamplingRuleRecords": [rule("a", 1, 1.0, 0, "/a")], "NextToken": "page-2"}),
        ),
        Some("page-2") => Reply::Json(
            200,
            json!({"SamplingRuleRecords": [rule("b", 2, 1.0, 0, "/b")], "NextToken": "page-3"}),
        ),
        Some(_) => Reply::Json(200, rules_page(vec![rule("Default", 10000, 0.0, 0, "*")])),
    });
    let s = sampler(&d, &manual_clock());
    assert!(s.refresh_rules_now());
    assert_eq!(s.rule_names(), ["a", "b", "Default"]);
    let bodies = d.calls("/GetSamplingRules");
    assert_eq!(
        bodies,
        [
            json!({}),
            json!({"NextToken": "page-2"}),
            json!({"NextToken": "page-3"})
        ]
    );
}

#[test]
fn statistics_are_reported_with_client_id_and_quota_is_exact_per_second() {
    let d = FakeDaemon::start();
    d.on_rules(|_| Reply::Json(200, rules_page(vec![rule("r", 1, 0.0, 10, "*")])));
    d.on_targets(|_| Reply::Json(200, targets(vec![target("r", 0.0, 3, T0 + 100)], 0)));
    let clock = manual_clock();
    let s = sampler(&d, &clock);
    assert!(s.refresh_rules_now());

    // No quota yet: one request per second is borrowed.
    assert_eq!(sampled_of(&s, &path("/x"), 5), 1);
    assert!(!s.report_now());
    let stats = d.calls("/SamplingTargets");
    assert_eq!(stats.len(), 1);
    let doc = &stats[0]["SamplingStatisticsDocuments"][0];
    assert_eq!(doc["RuleName"], "r");
    assert_eq!(doc["RequestCount"], 5);
    assert_eq!(doc["SampledCount"], 1);
    assert_eq!(doc["BorrowCount"], 1);
    assert_eq!(doc["Timestamp"], T0);
    let id = doc["ClientID"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(id, s.client_id());

    // Quota 3 arrived: exactly 3 per second.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(1));
        assert_eq!(sampled_of(&s, &path("/x"), 20), 3);
    }
    s.report_now();
    let doc = &d.calls("/SamplingTargets")[1]["SamplingStatisticsDocuments"][0];
    assert_eq!(
        doc["ClientID"], id,
        "the client id is fixed for the process"
    );
    assert_eq!(doc["RequestCount"], 60);
    assert_eq!(doc["SampledCount"], 9);
    assert_eq!(doc["BorrowCount"], 0);
}

#[test]
fn quota_expires_at_its_ttl_and_borrowing_resumes() {
    let d = FakeDaemon::start();
    d.on_rules(|_| Reply::Json(200, rules_page(vec![rule("r", 1, 0.0, 10, "*")])));
    d.on_targets(|_| Reply::Json(200, targets(vec![target("r", 0.0, 5, T0 + 2)], 0)));
    let clock = manual_clock();
    let s = sampler(&d, &clock);
    s.refresh_rules_now();
    s.should_sample(&path("/x"));
    s.report_now();
    clock.advance(Duration::from_secs(1));
    assert_eq!(sampled_of(&s, &path("/x"), 20), 5, "quota before the TTL");
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        sampled_of(&s, &path("/x"), 20),
        1,
        "TTL reached: borrow one"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(sampled_of(&s, &path("/x"), 20), 1);
}

#[test]
fn fixed_rate_from_targets_applies_after_the_reservoir() {
    let d = FakeDaemon::start();
    d.on_rules(|_| Reply::Json(200, rules_page(vec![rule("r", 1, 0.0, 0, "*")])));
    d.on_targets(|_| Reply::Json(200, targets(vec![target("r", 0.6, 0, T0 + 100)], 0)));
    let s = sampler(&d, &manual_clock()); // random source fixed at 0.5
    s.refresh_rules_now();
    assert_eq!(sampled_of(&s, &path("/x"), 10), 0, "rate 0 from the rule");
    s.report_now();
    assert_eq!(
        sampled_of(&s, &path("/x"), 10),
        10,
        "0.5 < 0.6 from the target"
    );
}

#[test]
fn newer_last_rule_modification_makes_the_poller_fetch_rules_again() {
    let d = FakeDaemon::start();
    let version = Arc::new(Mutex::new(1));
    let v = version.clone();
    d.on_rules(move |_| {
        let mut rules = vec![rule("Default", 10000, 0.0, 1, "*")];
        if *v.lock().unwrap() == 2 {
            rules.push(rule("new", 1, 1.0, 0, "/new"));
        }
        Reply::Json(200, rules_page(rules))
    });
    let v = version.clone();
    d.on_targets(move |_| {
        let modified = if *v.lock().unwrap() == 2 {
            T0 + 50
        } else {
            T0 - 50
        };
        Reply::Json(200, targets(vec![], modified))
    });
    let clock = manual_clock();
    let s = sampler(&d, &clock).with_targets_interval(Duration::from_millis(50));
    s.start();
    wait_until("first rules", Duration::from_secs(5), || {
        s.status().rules == 1
    });
    s.should_sample(&path("/x")); // the rule is now reported every interval
    wait_until("two reports", Duration::from_secs(5), || {
        s.status().target_fetches >= 2
    });
    assert_eq!(
        s.status().rule_fetches,
        1,
        "an older modification changes nothing"
    );
    *version.lock().unwrap() = 2;
    wait_until("the new rule", Duration::from_secs(5), || {
        s.rule_names().contains(&"new".to_string())
    });
    assert!(s.should_sample(&path("/new")).sampled);
    s.stop();
}

#[test]
fn every_kind_of_failure_keeps_the_last_good_rules_and_quota() {
    let d = FakeDaemon::start();
    d.on_rules(|_| Reply::Json(200, rules_page(vec![rule("r", 1, 0.0, 10, "*")])));
    d.on_targets(|_| Reply::Json(200, targets(vec![target("r", 0.0, 2, T0 + 1000)], 0)));
    let clock = manual_clock();
    let s = sampler(&d, &clock).with_timeout(Duration::from_millis(300));
    assert!(s.refresh_rules_now());
    s.should_sample(&path("/x"));
    s.report_now();
    let failures: Vec<(&str, Reply)> = vec![
        ("error status", Reply::Json(500, json!({"message": "boom"}))),
        (
            "throttled",
            Reply::Json(429, json!({"message": "slow down"})),
        ),
        ("garbage", Reply::Raw(b"\x00\x01garbage\r\n\r\n".to_vec())),
        (
            "not JSON",
            Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n<html>".to_vec()),
        ),
        ("wrong shape", Reply::Json(200, json!([1, 2, 3]))),
        ("no usable rule", Reply::Json(200, rules_page(vec![]))),
        ("slow", Reply::Hang(Duration::from_secs(2))),
        ("closed", Reply::Close),
        (
            "truncated",
            Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Sampl".to_vec()),
        ),
    ];
    for (i, (what, reply)) in failures.into_iter().enumerate() {
        let (r1, r2) = (reply.clone(), reply.clone());
        d.on_rules(move |_| r1.clone());
        let bad_targets = match r2 {
            Reply::Json(200, _) => Reply::Json(200, json!({"SamplingTargetDocuments": 5})),
            other => other,
        };
        d.on_targets(move |_| bad_targets.clone());
        let started = Instant::now();
        assert!(!s.refresh_rules_now(), "{what}");
        s.should_sample(&path("/x"));
        assert!(!s.report_now(), "{what}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what}: calls are bounded by the timeout"
        );
        assert_eq!(s.rule_names(), ["r"], "{what}");
        assert_eq!(s.status().rule_failures, i as u64 + 1, "{what}");
        assert_eq!(s.status().target_failures, i as u64 + 1, "{what}");
        clock.advance(Duration::from_secs(1));
        assert_eq!(sampled_of(&s, &path("/x"), 10), 2, "{what}: quota kept");
    }
}

#[test]
fn statistics_that_fail_to_reach_the_daemon_are_reported_next_time() {
    let d = FakeDaemon::start();
    d.on_rules(|_| Reply::Json(200, rules_page(vec![rule("r", 1, 0.0, 0, "*")])));
    d.on_targets(|_| Reply::Json(503, json!({})));
    let s = sampler(&d, &manual_clock());
    s.refresh_rules_now();
    sampled_of(&s, &path("/x"), 4);
    s.report_now();
    d.on_targets(|_| Reply::Json(200, targets(vec![], 0)));
    sampled_of(&s, &path("/x"), 3);
    s.report_now();
    let calls = d.calls("/SamplingTargets");
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1]["SamplingStatisticsDocuments"][0]["RequestCount"],
        7
    );
}

#[test]
fn statistics_are_sent_at_most_25_rules_per_call() {
    let d = FakeDaemon::start();
    d.on_rules(|_| {
        Reply::Json(
            200,
            rules_page(
                (0..30)
                    .map(|i| rule(&format!("r{i:02}"), 1, 0.0, 0, &format!("/r{i:02}")))
                    .collect(),
            ),
        )
    });
    let s = sampler(&d, &manual_clock());
    s.refresh_rules_now();
    for i in 0..30 {
        let p = format!("/r{i:02}");
        assert_eq!(rule_of(&s, &path(&p)), format!("r{i:02}"));
    }
    s.report_now();
    let sizes: Vec<usize> = d
        .calls("/SamplingTargets")
        .iter()
        .map(|c| c["SamplingStatisticsDocuments"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [25, 5]);
}

#[test]
fn chunked_answers_are_understood() {
    let d = FakeDaemon::start();
    d.on_rules(|_| Reply::Chunked(rules_page(vec![rule("chunky", 1, 1.0, 0, "*")])));
    let s = sampler(&d, &manual_clock());
    assert!(s.refresh_rules_now());
    assert_eq!(s.rule_names(), ["chunky"]);
}

#[test]
fn the_fallback_decides_while_the_daemon_has_never_answered() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: connections are refused
    let addr = DaemonAddress::parse(&format!("127.0.0.1:{port}")).unwrap();
    let s = CentralizedSampler::new(&addr, fallback())
        .with_timeout(Duration::from_millis(200))
        .with_targets_interval(Duration::from_millis(50));
    s.start();
    wait_until("retries", Duration::from_secs(5), || {
        s.status().rule_failures >= 2
    });
    assert_eq!(rule_of(&s, &path("/x")), "local fallback");
    assert_eq!(s.status().rules, 0);
    s.stop();
}

#[test]
fn deciding_does_not_wait_for_a_hanging_daemon() {
    let d = FakeDaemon::start();
    d.on_rules(|_| Reply::Hang(Duration::from_secs(3)));
    let s = CentralizedSampler::new(&d.address(), fallback()).with_timeout(Duration::from_secs(2));
    s.start();
    wait_until("the poller to call", Duration::from_secs(5), || {
        !d.calls("/GetSamplingRules").is_empty()
    });
    let started = Instant::now();
    for _ in 0..10_000 {
        s.should_sample(&path("/x"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn shutting_down_the_recorder_stops_the_poller() {
    let d = FakeDaemon::start();
    d.on_rules(|_| Reply::Json(200, rules_page(vec![rule("r", 1, 1.0, 0, "*")])));
    let s = Arc::new(
        CentralizedSampler::new(&d.address(), fallback())
            .with_rules_interval(Duration::from_millis(20))
            .with_targets_interval(Duration::from_millis(20)),
    );
    s.start();
    let recorder = Recorder::builder()
        .service_name("svc")
        .sampler(s.clone())
        .emitter(MemoryEmitter::new())
        .ignore_env()
        .build()
        .unwrap();
    wait_until("polls", Duration::from_secs(5), || {
        d.calls("/GetSamplingRules").len() >= 3
    });
    assert!(recorder.begin_segment("svc", None).is_sampled());
    assert!(s.is_running());
    recorder.shutdown(Duration::from_secs(1));
    assert!(!s.is_running());
    let after = d.calls("/GetSamplingRules").len();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        d.calls("/GetSamplingRules").len(),
        after,
        "no poll after shutdown"
    );
}

#[test]
fn a_recorder_without_a_sampler_follows_the_daemons_rules() {
    let d = FakeDaemon::start();
    d.on_rules(|_| default_and_api_rules());
    let recorder = xray_core::Recorder::builder()
        .daemon_address(format!("127.0.0.1:{}", d.port))
        .emitter(xray_core::emitter::MemoryEmitter::new())
        // The local rules sample everything: only the daemon's rules can say no.
        .fallback_rules(LocalSampler::new(0, 1.0))
        .ignore_env()
        .build()
        .unwrap();
    let sampler = recorder.sampler().clone();
    // The fallback's own default rule is also called "Default": wait for the daemon's "api".
    wait_until("the daemon's rules", Duration::from_secs(5), || {
        sampler.should_sample(&path("/api/x")).rule_name.as_deref() == Some("api")
    });
    let count = |p: &str| {
        (0..20)
            .filter(|_| sampler.should_sample(&path(p)).sampled)
            .count()
    };
    assert_eq!(count("/api/x"), 20);
    // The Default rule's rate is 0; before X-Ray grants a quota a rule may borrow one request
    // a second, so at most one or two of these (across a second's edge).
    assert!(count("/other") <= 2);
    assert!(!d.calls("/GetSamplingRules").is_empty());
    recorder.shutdown(Duration::from_secs(2));
}

#[test]
fn a_disabled_recorder_does_not_poll() {
    let d = FakeDaemon::start();
    let recorder = xray_core::Recorder::builder()
        .daemon_address(format!("127.0.0.1:{}", d.port))
        .enabled(false)
        .ignore_env()
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.calls("/GetSamplingRules").is_empty());
    drop(recorder);
}

/// Counts `WARN` events, from every thread.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0
                .lock()
                .unwrap()
                .push(event.metadata().target().to_string());
        }
    }
}

#[test]
fn an_absent_daemon_costs_one_warning_not_one_per_poll() {
    use tracing_subscriber::layer::SubscriberExt;
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    // A port where nothing listens.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let daemon = DaemonAddress::parse(&closed.to_string()).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let s =
            CentralizedSampler::new(&daemon, fallback()).with_timeout(Duration::from_millis(200));
        for _ in 0..5 {
            assert!(!s.refresh_rules_now());
            s.report_now();
            // Deciding still works, from the fallback, and never waits on the daemon.
            let _ = s.should_sample(&path("/x"));
        }
        assert_eq!(s.status().rule_failures, 5);
    });
    assert_eq!(
        warnings.0.lock().unwrap().len(),
        1,
        "{:?}",
        warnings.0.lock().unwrap()
    );
}

#[test]
fn a_server_reads_the_request_for_sampling_only_while_the_rules_look_at_it() {
    let d = FakeDaemon::start();
    d.on_rules(|_| Reply::Json(200, rules_page(vec![rule("Default", 10000, 1.0, 0, "*")])));
    // The tests' usual fallback has a rule of its own (on any path): it reads the request.
    assert!(sampler(&d, &manual_clock()).reads_request());
    let s = Arc::new(
        CentralizedSampler::new(&d.address(), LocalSampler::new(0, 0.0))
            .with_timeout(Duration::from_millis(500))
            .with_rules_interval(Duration::from_secs(3600))
            .with_targets_interval(Duration::from_secs(3600)),
    );
    assert!(
        !s.reads_request(),
        "a fallback with only its default rule does not"
    );
    let emitter = MemoryEmitter::new();
    let recorder = Recorder::builder()
        .sampler_arc(s.clone())
        .emitter(emitter.clone())
        .ignore_env()
        .build()
        .unwrap();
    let tracing = xray_core::http::ServerTracing::new("svc").with_recorder(recorder.clone());
    let serve = |path: &str| {
        let req = http::Request::builder()
            .uri(format!("http://shop.example{path}"))
            .body(())
            .unwrap();
        let mut exchange = tracing.begin_http(req.method(), req.uri(), req.headers(), || None);
        let sampled = exchange.is_sampled();
        exchange.finish(200, Some(2));
        sampled
    };

    // X-Ray's default rule alone does not look at the request.
    assert!(s.refresh_rules_now());
    assert!(!s.reads_request());
    assert!(serve("/other"), "the Default rule samples everything here");

    // A rule on the path: the server now reads it, and the decision follows it.
    d.on_rules(|_| default_and_api_rules());
    assert!(s.refresh_rules_now());
    assert!(s.reads_request());
    assert!(serve("/api/orders"));
    assert!(!serve("/other"));

    recorder.flush(Duration::from_secs(1));
    let urls: Vec<String> = emitter
        .documents()
        .iter()
        .filter_map(|d| d.http.request.as_ref()?.url.clone())
        .collect();
    assert_eq!(
        urls,
        [
            "http://shop.example/other",
            "http://shop.example/api/orders"
        ],
        "sampled requests record their URL on either path"
    );
    s.stop();
}
