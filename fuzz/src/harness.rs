//! One function per fuzz target. Every function must hold for any input: it panics (and so
//! reports a finding) only when a parser panics or a stated property fails.
//!
//! This file is also compiled into the `faults` crate's `fuzz_corpus` test (through
//! `#[path]`), which replays the stored corpus on stable Rust; keep it free of anything but
//! `xray-core`, `serde`, `serde_json`, `thiserror` and `tracing`.

use serde_json::{json, Value};
use xray_core::daemon::DaemonAddress;
use xray_core::header::MAX_HEADER_LEN;
use xray_core::sampling::{LocalRules, LocalSampler, Sampler, SamplingRequest};
use xray_core::w3c::{from_traceparent, to_traceparent};
use xray_core::{Sampled, TraceHeader};

// The sampling API response parser is crate-private in xray-core; its source file depends on
// nothing else in the crate, so it is compiled here as is (the path is relative to this file).
#[allow(dead_code, unreachable_pub)]
#[path = "../../xray-core/src/sampling/api.rs"]
mod api;

/// `X-Amzn-Trace-Id`: parsing never panics; a parsed header formats to at most
/// `MAX_HEADER_LEN` bytes of text that parses back to the same header; a header with Root and
/// Parent survives the trip through `traceparent`.
pub fn trace_header(data: &[u8]) {
    let Ok(h) = TraceHeader::from_bytes(data) else {
        assert!(TraceHeader::parse_or_warn(Some(data)).is_none());
        return;
    };
    let text = h.to_string();
    assert!(text.len() <= MAX_HEADER_LEN, "formatted header too long");
    assert!(text.len() <= data.len(), "formatting grew the header");
    let again = TraceHeader::from_bytes(text.as_bytes()).expect("formatted header parses");
    assert_eq!(again, h, "header changed through format and parse");
    assert_eq!(again.to_string(), text);
    if let (Some(root), Some(parent)) = (h.root, h.parent) {
        let tp = to_traceparent(&h).expect("root and parent make a traceparent");
        let back = from_traceparent(&tp).expect("our traceparent parses");
        assert_eq!(back.root, Some(root));
        assert_eq!(back.parent, Some(parent));
        let expected = if h.sampled == Some(Sampled::Yes) {
            Sampled::Yes
        } else {
            Sampled::No
        };
        assert_eq!(back.sampled, Some(expected));
    }
}

/// W3C `traceparent`: parsing never panics; what parses converts back to a `traceparent` that
/// parses to the same header, and to an `X-Amzn-Trace-Id` that parses to the same header.
pub fn traceparent(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(h) = from_traceparent(&text) else {
        return;
    };
    assert!(h.root.is_some() && h.parent.is_some() && h.sampled.is_some());
    let tp = to_traceparent(&h).expect("a parsed traceparent has root and parent");
    assert_eq!(tp.len(), 55);
    assert_eq!(from_traceparent(&tp).as_ref(), Ok(&h), "{tp}");
    let xray: TraceHeader = h.to_string().parse().expect("X-Ray form parses");
    assert_eq!(xray, h);
}

/// `AWS_XRAY_DAEMON_ADDRESS`: parsing never panics; an accepted address formats to text that
/// parses to the same address; a refused one gets a message that says what was expected,
/// quoting at most 200 characters of the input.
pub fn daemon_address(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match DaemonAddress::parse(&text) {
        Ok(a) => {
            assert_ne!(a.udp.port, 0);
            assert_ne!(a.tcp.port, 0);
            let shown = a.to_string();
            let again = DaemonAddress::parse(&shown).expect("formatted address parses");
            assert_eq!(again, a, "{shown}");
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("expected"), "{message}");
            // The quoted input is cut at 200 characters (escaping may lengthen it).
            assert!(message.chars().count() <= 200 * 10 + 200, "{message}");
        }
    }
}

/// Local sampling rules: validation never panics; an accepted document written back out (in
/// its own version's field names) is accepted again with the same content; a sampler built
/// from it decides for a request made of the same bytes without panicking.
pub fn sampling_rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let rules = match LocalRules::from_json(&text) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(rules.version == 1 || rules.version == 2);
    assert!((0.0..=1.0).contains(&rules.default.rate));
    let host_key = if rules.version == 1 {
        "service_name"
    } else {
        "host"
    };
    let written: Vec<Value> = rules
        .rules
        .iter()
        .map(|r| {
            assert!((0.0..=1.0).contains(&r.rate));
            assert!(!r.host.is_empty() && !r.http_method.is_empty() && !r.url_path.is_empty());
            let mut o = json!({
                host_key: r.host,
                "http_method": r.http_method,
                "url_path": r.url_path,
                "fixed_target": r.fixed_target,
                "rate": r.rate,
            });
            if let Some(d) = &r.description {
                o["description"] = Value::from(d.as_str());
            }
            o
        })
        .collect();
    let doc = json!({
        "version": rules.version,
        "rules": written,
        "default": {"fixed_target": rules.default.fixed_target, "rate": rules.default.rate},
    });
    let again = LocalRules::from_json(&doc.to_string()).expect("rules written back parse");
    assert_eq!(again, rules);

    let sampler = LocalSampler::from_rules(rules);
    let request = SamplingRequest::new("svc")
        .host(Some(&text))
        .method(Some(&text))
        .url_path(Some(&text));
    let _ = sampler.should_sample(&request);
}

/// Sampling API answers (`GetSamplingRules`, `SamplingTargets`): reading never panics, and
/// what is kept obeys the rules the sampler relies on.
pub fn sampling_api_response(data: &[u8]) {
    if let Ok(page) = api::parse_rules_page(data) {
        for rule in &page.rules {
            assert_eq!(rule.version, 1);
            assert_eq!(rule.resource_arn, "*");
            assert!(rule.fixed_rate.is_finite());
            assert!(!rule.rule_name.is_empty());
        }
        assert!(page.next_token.as_deref() != Some(""));
    }
    if let Ok(answer) = api::parse_targets(data) {
        for target in &answer.targets {
            let _ = (&target.rule_name, target.fixed_rate, target.reservoir_quota);
        }
        let _ = (answer.last_rule_modification, answer.unprocessed);
    }
}
