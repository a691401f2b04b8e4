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
