//! The sampling API served from a local rules file, over real TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use xray_core::daemon::DaemonAddress;
use xray_core::sampling::{CentralizedSampler, LocalRules, LocalSampler, Sampler, SamplingRequest};
use xray_core::time::Timestamp;
use xray_local::sampling_api::SamplingApi;
use xray_local::Collector;

const RULES: &str = r#"{
  "version": 2,
  "rules": [
    {"description": "health", "host": "*", "http_method": "GET", "url_path": "/health", "fixed_target": 0, "rate": 0.0},
    {"description": "api", "host": "api.example.com", "http_method": "*", "url_path": "/v1/*", "fixed_target": 3, "rate": 1.0}
  ],
  "default": {"fixed_target": 2, "rate": 0.25}
}"#;

fn rules() -> LocalRules {
    LocalRules::from_json(RULES).unwrap()
}

fn serve() -> SamplingApi {
    SamplingApi::serve("127.0.0.1:0".parse().unwrap(), rules()).unwrap()
}

/// One request on a keep-alive connection; returns (status, body).
fn call(reader: &mut BufReader<TcpStream>, method: &str, path: &str, body: &str) -> (u16, Value) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    reader.get_mut().write_all(head.as_bytes()).unwrap();
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
        }
    }
    let mut buf = vec![0u8; length];
    reader.read_exact(&mut buf).unwrap();
    (status, serde_json::from_slice(&buf).unwrap())
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    BufReader::new(s)
}

#[test]
fn local_rules_become_sampling_rules_by_file_order_then_default() {
    let api = serve();
    let mut c = connect(api.addr());
    let (status, body) = call(&mut c, "POST", "/GetSamplingRules", "{}");
    assert_eq!(status, 200);
    let records = body["SamplingRuleRecords"].as_array().unwrap();
    let rules: Vec<&Value> = records.iter().map(|r| &r["SamplingRule"]).collect();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0]["RuleName"], "local-1");
    assert_eq!(rules[0]["Priority"], 1);
    assert_eq!(rules[0]["URLPath"], "/health");
    assert_eq!(rules[0]["HTTPMethod"], "GET");
    assert_eq!(rules[1]["RuleName"], "local-2");
    assert_eq!(rules[1]["Priority"], 2);
    assert_eq!(rules[1]["Host"], "api.example.com");
    assert_eq!(rules[1]["ReservoirSize"], 3);
    assert_eq!(rules[1]["FixedRate"], 1.0);
    assert_eq!(rules[2]["RuleName"], "Default");
    assert_eq!(rules[2]["Priority"], 10000);
    assert_eq!(rules[2]["ReservoirSize"], 2);
    assert_eq!(rules[2]["FixedRate"], 0.25);
    for r in &rules {
        assert_eq!(r["Version"], 1);
        assert_eq!(r["ResourceARN"], "*");
        assert_eq!(r["ServiceName"], "*");
        assert_eq!(r["ServiceType"], "*");
        assert!(r["Attributes"].is_object());
    }
    assert!(body.get("NextToken").is_none());
    assert_eq!(api.rule_requests(), 1);
}

#[test]
fn rules_are_paged_through_next_token() {
    let api = SamplingApi::serve_with(
        "127.0.0.1:0".parse().unwrap(),
        rules(),
        2,
        Duration::from_secs(10),
    )
    .unwrap();
    let mut c = connect(api.addr());
    let (_, first) = call(&mut c, "POST", "/GetSamplingRules", "{}");
    assert_eq!(first["SamplingRuleRecords"].as_array().unwrap().len(), 2);
    let token = first["NextToken"]
        .as_str()
        .expect("a second page")
        .to_string();
    let (_, second) = call(
        &mut c,
        "POST",
        "/GetSamplingRules",
        &json!({ "NextToken": token }).to_string(),
    );
    let names: Vec<&str> = second["SamplingRuleRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["SamplingRule"]["RuleName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default"]);
    assert!(second.get("NextToken").is_none());
}

#[test]
fn sampling_targets_grant_the_fixed_target_as_quota_with_a_ttl() {
    let api = serve();
    let mut c = connect(api.addr());
    let now = Timestamp::now().as_secs_f64();
    let stats = json!({"SamplingStatisticsDocuments": [
        {"RuleName": "local-2", "ClientID": "0123456789abcdef01234567", "Timestamp": now,
         "RequestCount": 10, "SampledCount": 4, "BorrowCount": 1},
        {"RuleName": "nope", "ClientID": "0123456789abcdef01234567", "Timestamp": now,
         "RequestCount": 1, "SampledCount": 0, "BorrowCount": 0}
    ]});
    let (status, body) = call(&mut c, "POST", "/SamplingTargets", &stats.to_string());
    assert_eq!(status, 200);
    let targets = body["SamplingTargetDocuments"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["RuleName"], "local-2");
    assert_eq!(targets[0]["ReservoirQuota"], 3);
    assert_eq!(targets[0]["FixedRate"], 1.0);
    let ttl = targets[0]["ReservoirQuotaTTL"].as_f64().unwrap();
    assert!(
        ttl > now + 5.0 && ttl < now + 15.0,
        "ttl {ttl} vs now {now}"
    );
    assert_eq!(targets[0]["Interval"], 10);
    assert!(body["LastRuleModification"].as_f64().unwrap() <= now + 1.0);
    assert_eq!(body["UnprocessedStatistics"][0]["RuleName"], "nope");
    assert_eq!(api.statistics().len(), 2);
    assert_eq!(api.statistics()[0]["RequestCount"], 10);
}

#[test]
fn unknown_paths_wrong_methods_and_bad_json_get_http_errors() {
    let api = serve();
    let mut c = connect(api.addr());
    assert_eq!(call(&mut c, "POST", "/GetSamplingTargets", "{}").0, 404);
    assert_eq!(call(&mut c, "GET", "/GetSamplingRules", "").0, 405);
    assert_eq!(call(&mut c, "POST", "/SamplingTargets", "{oops").0, 400);
    assert_eq!(call(&mut c, "POST", "/SamplingTargets", "{}").0, 400);
    // The connection is still usable after errors.
    assert_eq!(call(&mut c, "POST", "/GetSamplingRules", "").0, 200);
}

#[test]
fn chunked_request_bodies_are_read() {
    let api = serve();
    let mut c = connect(api.addr());
    let body = r#"{"NextToken":null}"#;
    let req = format!(
        "POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    c.get_mut().write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("local-1"));
}

#[test]
fn collector_serves_the_sampling_api_on_its_own_port() {
    let collector = Collector::builder()
        .sampling_rules(rules())
        .start()
        .unwrap();
    let api = collector.sampling_api().expect("served");
    assert_eq!(api.addr(), collector.addr());
    let mut c = connect(collector.addr());
    let (status, _) = call(&mut c, "POST", "/GetSamplingRules", "{}");
    assert_eq!(status, 200);
}

#[test]
fn centralized_sampler_follows_the_local_rules_served() {
    let collector = Collector::builder()
        .sampling_rules(rules())
        .start()
        .unwrap();
    let daemon = DaemonAddress::parse(&collector.daemon_address()).unwrap();
    // A fallback that never samples, so any sampled decision comes from the served rules.
    let sampler = CentralizedSampler::new(&daemon, LocalSampler::new(0, 0.0));
    assert!(sampler.refresh_rules_now(), "rules installed");
    assert_eq!(sampler.rule_names(), ["local-1", "local-2", "Default"]);

    let health = SamplingRequest::new("svc")
        .host(Some("api.example.com"))
        .method(Some("GET"))
        .url_path(Some("/health"));
    let api = SamplingRequest::new("svc")
        .host(Some("api.example.com"))
        .method(Some("POST"))
        .url_path(Some("/v1/orders"));
    for _ in 0..5 {
        assert!(!sampler.should_sample(&health).sampled, "0 and 0 %: never");
        assert!(sampler.should_sample(&api).sampled, "rate 1.0: always");
    }
    sampler.report_now();
    let stats = collector.sampling_api().unwrap().statistics();
    let api_stats = stats
        .iter()
        .find(|s| s["RuleName"] == "local-2")
        .expect("statistics reported for local-2");
    assert_eq!(api_stats["RequestCount"], 5);
    assert_eq!(api_stats["SampledCount"], 5);
}

use xray_local::limits::{
    SAMPLING_API_MAX_CONNECTIONS as MAX_CONNECTIONS, SAMPLING_API_MAX_STATISTICS,
    SAMPLING_API_MAX_STATISTICS_BYTES, SAMPLING_API_REQUEST_DEADLINE as REQUEST_DEADLINE,
};

/// Reads what the server sends until it closes the connection (or 10 s pass): `None` when it
/// closed without answering.
fn answer_or_close(stream: &mut TcpStream) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned())
}

const GET_RULES: &[u8] =
    b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";

#[test]
fn connections_beyond_the_limit_are_closed_without_an_answer() {
    let api = serve();
    // Fill every slot with a connection that has not finished its request.
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut s = TcpStream::connect(api.addr()).unwrap();
            s.write_all(b"POST /GetSamplingRules HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(api.addr()).unwrap();
    let _ = extra.write_all(GET_RULES);
    assert_eq!(
        answer_or_close(&mut extra),
        None,
        "one connection too many is answered"
    );

    // A slot frees up when a held connection goes away.
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = TcpStream::connect(api.addr()).unwrap();
    again.write_all(GET_RULES).unwrap();
    let answer = answer_or_close(&mut again).expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_client_trickling_one_byte_at_a_time_is_cut_off_at_the_request_deadline() {
    let api = serve();
    let mut s = TcpStream::connect(api.addr()).unwrap();
    let started = std::time::Instant::now();
    // A never-ending header, one byte every 200 ms: every single read succeeds quickly.
    s.write_all(b"POST /GetSamplingRules HTTP/1.1\r\nX-Slow: ")
        .unwrap();
    let cut = loop {
        std::thread::sleep(Duration::from_millis(200));
        if s.write_all(b"a").is_err() {
            break started.elapsed();
        }
        // A closed connection shows on the read side first.
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        let closed = matches!(s.read(&mut b), Ok(0))
            || matches!(s.read(&mut b), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock);
        s.set_nonblocking(false).unwrap();
        if closed {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < REQUEST_DEADLINE + Duration::from_secs(3),
            "still connected after {:?}",
            started.elapsed()
        );
    };
    assert!(
        cut >= REQUEST_DEADLINE - Duration::from_millis(500),
        "cut after {cut:?}"
    );
    // The server still answers others.
    let mut c = connect(api.addr());
    assert_eq!(call(&mut c, "POST", "/GetSamplingRules", "{}").0, 200);
}

#[test]
fn a_chunk_size_that_overflows_64_bits_is_refused_with_400() {
    let api = serve();
    let mut s = TcpStream::connect(api.addr()).unwrap();
    // 2^64: one hex digit more than a u64 holds.
    s.write_all(
        b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          1\r\n{\r\n10000000000000000\r\n}",
    )
    .unwrap();
    let answer = answer_or_close(&mut s).expect("an answer, not a dropped connection");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let mut c = connect(api.addr());
    assert_eq!(call(&mut c, "POST", "/GetSamplingRules", "{}").0, 200);
}

#[test]
fn a_chunk_of_the_largest_size_is_refused_with_413_once_past_the_body_limit() {
    let api = serve();
    let mut s = TcpStream::connect(api.addr()).unwrap();
    // After a 1-byte chunk, a chunk of 2^64 - 1 bytes: the hand-written server added the two
    // sizes in a usize and overflowed.
    s.write_all(
        b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          1\r\n{\r\nffffffffffffffff\r\n",
    )
    .unwrap();
    // Its data keeps coming, past twice the body limit (the server may stop reading).
    let data = vec![b' '; 64 * 1024];
    for _ in 0..40 {
        if s.write_all(&data).is_err() {
            break;
        }
    }
    let answer = answer_or_close(&mut s).expect("an answer, not a dropped connection");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let mut c = connect(api.addr());
    assert_eq!(call(&mut c, "POST", "/GetSamplingRules", "{}").0, 200);
}

#[test]
fn a_body_over_one_mebibyte_is_refused_with_413() {
    let api = serve();
    let mut s = TcpStream::connect(api.addr()).unwrap();
    let body = vec![b' '; (1 << 20) + 1];
    let head = format!(
        "POST /SamplingTargets HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&body);
    let answer = answer_or_close(&mut s).expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[test]
fn statistics_kept_are_bounded_in_number_and_bytes() {
    let api = serve();
    let mut c = connect(api.addr());
    // 25 documents per call, as the SDKs send at most; 500 calls.
    let docs: Vec<Value> = (0..25)
        .map(|i| {
            json!({"RuleName": "Default", "ClientID": "0123456789abcdef01234567",
                        "Timestamp": 1, "RequestCount": i, "SampledCount": 0, "BorrowCount": 0})
        })
        .collect();
    let body = json!({ "SamplingStatisticsDocuments": docs }).to_string();
    for _ in 0..500 {
        assert_eq!(call(&mut c, "POST", "/SamplingTargets", &body).0, 200);
    }
    assert!(
        api.statistics().len() <= SAMPLING_API_MAX_STATISTICS,
        "{} kept",
        api.statistics().len()
    );
    // Large documents count by their size.
    let big = json!({"SamplingStatisticsDocuments": [
        {"RuleName": "Default", "ClientID": "x".repeat(900_000)}
    ]})
    .to_string();
    for _ in 0..20 {
        assert_eq!(call(&mut c, "POST", "/SamplingTargets", &big).0, 200);
    }
    let kept: usize = api.statistics().iter().map(|s| s.to_string().len()).sum();
    assert!(
        kept <= SAMPLING_API_MAX_STATISTICS_BYTES,
        "{kept} bytes of statistics kept"
    );
    assert!(api.statistics_forgotten() > 0);
    // The newest are kept.
    assert_eq!(
        api.statistics().last().unwrap()["ClientID"]
            .as_str()
            .map(str::len),
        Some(900_000)
    );
}
