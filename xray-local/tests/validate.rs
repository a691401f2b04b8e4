//! The document rules of SPEC §3, one test per rule.

use std::time::Duration;

use serde_json::{json, Value};
use xray_core::emitter::DATAGRAM_HEADER;
use xray_core::http::{begin_outbound, IncomingRequest, OutboundOptions, ServerTracing};
use xray_core::time::Timestamp;
use xray_core::{EntityId, TraceId};
use xray_local::validate::{validate_datagram, validate_document, Violation};
use xray_local::Collector;

fn segment() -> Value {
    let t = Timestamp::now().as_secs_f64();
    json!({
        "name": "web", "id": EntityId::new().to_string(), "trace_id": TraceId::new().to_string(),
        "start_time": t, "end_time": t + 0.01
    })
}

fn with(mut doc: Value, key: &str, value: Value) -> Value {
    doc[key] = value;
    doc
}

fn without(mut doc: Value, key: &str) -> Value {
    doc.as_object_mut().unwrap().remove(key);
    doc
}

fn sub(name: &str) -> Value {
    let t = Timestamp::now().as_secs_f64();
    json!({"name": name, "id": EntityId::new().to_string(), "start_time": t, "end_time": t + 0.001})
}

/// The paths of the violations, asserting there is at least one.
fn paths(doc: &Value) -> Vec<String> {
    let v = validate_document(doc);
    assert!(!v.is_empty(), "expected a violation in {doc}");
    v.into_iter().map(|v| v.path).collect()
}

fn one(doc: &Value) -> Violation {
    let v = validate_document(doc);
    assert_eq!(v.len(), 1, "expected exactly one violation: {v:?}");
    v.into_iter().next().unwrap()
}

#[test]
fn a_well_formed_segment_has_no_violations() {
    assert_eq!(validate_document(&segment()), []);
}

#[test]
fn documents_recorded_by_xray_core_pass_every_rule() {
    let c = Collector::start().unwrap();
    let server = ServerTracing::new("checkout").with_recorder(c.recorder("checkout"));
    let request = IncomingRequest {
        method: "GET",
        host: Some("shop.example"),
        path_and_query: "/cart?x=1",
        user_agent: Some("curl/8"),
        x_forwarded_for: Some("203.0.113.7, 10.0.0.1"),
        ..IncomingRequest::default()
    };
    let mut exchange = server.begin(&request);
    let segment = exchange.entity().expect("an open exchange").clone();
    segment.put_annotation("customer", 42);
    segment.put_annotation("tier", "gold");
    segment.put_annotation("bad-key", 1); // dropped by the recorder, never sent
    segment.put_annotation("nan", f64::NAN); // dropped too
    segment.put_metadata("cart", json!({"items": [1, 2]}));
    segment.set_user("alice");
    let mut call = begin_outbound(
        Some(segment.clone()),
        "POST",
        "http://user:secret@backend:8080/price?id=1",
        &OutboundOptions::default(),
    )
    .unwrap();
    call.finish(503, Some(12));
    let mut failed = begin_outbound(
        Some(segment.clone()),
        "GET",
        "http://down/",
        &OutboundOptions::default(),
    )
    .unwrap();
    let err = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    failed.fail(&err, "std::io::Error");
    let local = segment.begin_subsegment("local work <1>");
    local.add_error(&std::io::Error::other("oops"));
    local.end();
    exchange.finish(500, None);
    let trace = c
        .wait_for_trace_id(segment.trace_id(), Duration::from_secs(5))
        .expect("arrives");
    assert_eq!(trace.len(), 4, "{}", trace.outline());
    assert_eq!(
        c.violations(),
        [],
        "xray-core sent a document X-Ray would refuse"
    );
}

#[test]
fn name_is_required() {
    assert_eq!(one(&without(segment(), "name")).path, "name");
}

#[test]
fn name_has_at_most_200_characters() {
    assert!(validate_document(&with(segment(), "name", json!("n".repeat(200)))).is_empty());
    assert_eq!(
        one(&with(segment(), "name", json!("n".repeat(201)))).path,
        "name"
    );
}

#[test]
fn name_allows_letters_digits_spaces_and_listed_punctuation_only() {
    let ok = "Café 42 _.:/%&#=+\\-@";
    assert!(validate_document(&with(segment(), "name", json!(ok))).is_empty());
    for bad in ["a<b", "a!b", "a(b)", "a*b", "a\"b"] {
        let v = one(&with(segment(), "name", json!(bad)));
        assert_eq!(v.path, "name", "{bad}");
    }
}

#[test]
fn id_is_16_lower_case_hex_digits_and_not_zero() {
    for bad in [
        "123",
        "0123456789ABCDEF",
        "0123456789abcdeg",
        "0000000000000000",
    ] {
        assert_eq!(one(&with(segment(), "id", json!(bad))).path, "id", "{bad}");
    }
    assert_eq!(one(&with(segment(), "id", json!(12))).path, "id");
    assert_eq!(one(&without(segment(), "id")).path, "id");
}

#[test]
fn trace_id_has_the_version_epoch_random_shape() {
    for bad in [
        "2-5759e988-bd862e3fe1be46a994272793",
        "1-5759e988bd862e3fe1be46a994272793",
        "1-5759E988-bd862e3fe1be46a994272793",
        "1-5759e988-bd862e3fe1be46a99427279",
    ] {
        assert_eq!(
            one(&with(segment(), "trace_id", json!(bad))).path,
            "trace_id",
            "{bad}"
        );
    }
    assert_eq!(one(&without(segment(), "trace_id")).path, "trace_id");
}

#[test]
fn trace_id_older_than_30_days_or_in_the_future_is_refused() {
    let now = Timestamp::now().as_secs() as u32;
    let old = TraceId::with_epoch(now - 31 * 24 * 3600).to_string();
    let v = one(&with(segment(), "trace_id", json!(old)));
    assert!(v.message.contains("30 days"), "{v:?}");
    let future = TraceId::with_epoch(now + 3600).to_string();
    assert!(one(&with(segment(), "trace_id", json!(future)))
        .message
        .contains("future"));
    let recent = TraceId::with_epoch(now - 29 * 24 * 3600).to_string();
    assert!(validate_document(&with(segment(), "trace_id", json!(recent))).is_empty());
}

#[test]
fn independent_subsegment_needs_trace_id_and_parent_id() {
    let mut s = sub("db");
    s["type"] = json!("subsegment");
    let p = paths(&s);
    assert_eq!(p, ["trace_id", "parent_id"]);
    s["trace_id"] = json!(TraceId::new().to_string());
    s["parent_id"] = json!(EntityId::new().to_string());
    assert_eq!(validate_document(&s), []);
}

#[test]
fn type_is_subsegment_or_absent() {
    assert_eq!(one(&with(segment(), "type", json!("segment"))).path, "type");
}

#[test]
fn end_time_or_in_progress_is_required_but_not_both() {
    let open = with(without(segment(), "end_time"), "in_progress", json!(true));
    assert_eq!(validate_document(&open), []);
    assert_eq!(one(&without(segment(), "end_time")).path, "end_time");
    assert_eq!(
        one(&with(segment(), "in_progress", json!(true))).path,
        "in_progress"
    );
}

#[test]
fn end_time_is_not_before_start_time() {
    let d = segment();
    let start = d["start_time"].as_f64().unwrap();
    let v = one(&with(d, "end_time", json!(start - 1.0)));
    assert_eq!(v.path, "end_time");
}

#[test]
fn times_are_positive_numbers() {
    assert_eq!(
        one(&with(segment(), "start_time", json!("now"))).path,
        "start_time"
    );
    assert_eq!(one(&without(segment(), "start_time")).path, "start_time");
}

#[test]
fn namespace_is_aws_or_remote_only() {
    for ok in ["aws", "remote"] {
        let mut s = sub("x");
        s["namespace"] = json!(ok);
        assert_eq!(
            validate_document(&with(segment(), "subsegments", json!([s]))),
            []
        );
    }
    for bad in ["local", "dummy", "AWS"] {
        let mut s = sub("x");
        s["namespace"] = json!(bad);
        let v = one(&with(segment(), "subsegments", json!([s])));
        assert_eq!(v.path, "subsegments[0].namespace", "{bad}");
    }
}

#[test]
fn embedded_subsegments_are_checked_at_any_depth() {
    let mut inner = sub("inner");
    inner["name"] = json!("bad<name>");
    let mut mid = sub("mid");
    mid["subsegments"] = json!([sub("ok"), inner]);
    let v = one(&with(segment(), "subsegments", json!([mid])));
    assert_eq!(v.path, "subsegments[0].subsegments[1].name");
}

#[test]
fn annotation_keys_are_letters_digits_and_underscores_up_to_500() {
    let ok = json!({"user_id": 1, "A9": "x", "k".repeat(500): true});
    assert_eq!(validate_document(&with(segment(), "annotations", ok)), []);
    for bad in ["user-id", "user.id", "clé", ""] {
        let v = one(&with(segment(), "annotations", json!({ bad: 1 })));
        assert_eq!(v.path, format!("annotations.{bad}"));
    }
    let long = "k".repeat(501);
    assert_eq!(
        one(&with(segment(), "annotations", json!({ long.clone(): 1 }))).path,
        format!("annotations.{long}")
    );
}

#[test]
fn annotation_values_are_strings_numbers_or_booleans() {
    for bad in [
        json!(null),
        json!([1]),
        json!({"a": 1}),
        json!("v".repeat(1001)),
    ] {
        let v = one(&with(segment(), "annotations", json!({ "k": bad })));
        assert_eq!(v.path, "annotations.k");
    }
}

#[test]
fn metadata_namespaces_hold_objects_and_aws_prefix_is_reserved() {
    let ok = json!({"default": {"a": [1, 2]}, "custom": {}});
    assert_eq!(validate_document(&with(segment(), "metadata", ok)), []);
    assert_eq!(
        one(&with(segment(), "metadata", json!({"AWS.mine": {}}))).path,
        "metadata.AWS.mine"
    );
    assert_eq!(
        one(&with(segment(), "metadata", json!({"default": 3}))).path,
        "metadata.default"
    );
}

#[test]
fn http_status_and_content_length_are_numbers() {
    let ok = json!({"request": {"method": "GET", "url": "http://x/", "x_forwarded_for": true},
                    "response": {"status": 200, "content_length": 12}});
    assert_eq!(validate_document(&with(segment(), "http", ok)), []);
    let v = one(&with(
        segment(),
        "http",
        json!({"response": {"status": "200"}}),
    ));
    assert_eq!(v.path, "http.response.status");
    let v = one(&with(
        segment(),
        "http",
        json!({"response": {"status": 42}}),
    ));
    assert_eq!(v.path, "http.response.status");
    let v = one(&with(
        segment(),
        "http",
        json!({"response": {"content_length": -1}}),
    ));
    assert_eq!(v.path, "http.response.content_length");
    let v = one(&with(
        segment(),
        "http",
        json!({"request": {"traced": "yes"}}),
    ));
    assert_eq!(v.path, "http.request.traced");
}

#[test]
fn cause_is_an_exception_id_or_exceptions_with_ids() {
    let ok = json!({"working_directory": "/srv", "paths": ["a.rs"], "exceptions": [
        {"id": "0123456789abcdef", "message": "boom", "type": "Error", "remote": true,
         "cause": "1123456789abcdef", "skipped": 2,
         "stack": [{"path": "a.rs", "line": 3, "label": "main"}]}]});
    assert_eq!(validate_document(&with(segment(), "cause", ok)), []);
    assert_eq!(
        validate_document(&with(segment(), "cause", json!("0123456789abcdef"))),
        []
    );
    assert_eq!(one(&with(segment(), "cause", json!("boom"))).path, "cause");
    assert_eq!(one(&with(segment(), "cause", json!(3))).path, "cause");
    let no_id = json!({"exceptions": [{"message": "boom"}]});
    assert_eq!(
        one(&with(segment(), "cause", no_id)).path,
        "cause.exceptions[0].id"
    );
    let bad_line = json!({"exceptions": [{"id": "0123456789abcdef", "stack": [{"line": "3"}]}]});
    assert_eq!(
        one(&with(segment(), "cause", bad_line)).path,
        "cause.exceptions[0].stack[0].line"
    );
}

#[test]
fn sql_url_looks_like_scheme_host_database() {
    let ok = json!({"url": "postgresql://db:5432/shop", "sanitized_query": "SELECT ?"});
    assert_eq!(validate_document(&with(segment(), "sql", ok)), []);
    assert_eq!(
        one(&with(segment(), "sql", json!({"url": "db:5432"}))).path,
        "sql.url"
    );
}

#[test]
fn user_has_at_most_250_characters() {
    assert_eq!(
        validate_document(&with(segment(), "user", json!("u".repeat(250)))),
        []
    );
    assert_eq!(
        one(&with(segment(), "user", json!("u".repeat(251)))).path,
        "user"
    );
}

#[test]
fn flags_are_booleans() {
    assert_eq!(one(&with(segment(), "fault", json!(1))).path, "fault");
}

#[test]
fn precursor_ids_are_entity_ids() {
    let mut s = sub("x");
    s["precursor_ids"] = json!([EntityId::new().to_string(), "nope"]);
    let v = one(&with(segment(), "subsegments", json!([s])));
    assert_eq!(v.path, "subsegments[0].precursor_ids[1]");
}

#[test]
fn violations_name_the_top_level_document() {
    let d = with(segment(), "name", json!("bad!"));
    let v = one(&d);
    assert_eq!(v.document_id.as_deref(), d["id"].as_str());
}

fn datagram(body: &str) -> Vec<u8> {
    format!("{DATAGRAM_HEADER}{body}").into_bytes()
}

#[test]
fn datagram_needs_the_header_line() {
    let body = segment().to_string();
    assert_eq!(validate_datagram(&datagram(&body)), []);
    let v = validate_datagram(body.as_bytes());
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].path, "(datagram)");
    let v = validate_datagram(format!("{{\"format\":\"xml\"}}\n{body}").as_bytes());
    assert_eq!(v.len(), 1);
    assert!(v[0].message.contains("header"));
}

#[test]
fn datagram_is_at_most_64000_bytes() {
    let mut d = segment();
    d["metadata"] = json!({"default": {"blob": ""}});
    let fixed = datagram(&d.to_string()).len();
    d["metadata"]["default"]["blob"] = json!("x".repeat(64_000 - fixed));
    assert_eq!(validate_datagram(&datagram(&d.to_string())), []);
    d["metadata"]["default"]["blob"] = json!("x".repeat(64_001 - fixed));
    let v = validate_datagram(&datagram(&d.to_string()));
    assert_eq!(v.len(), 1);
    assert!(v[0].message.contains("64000"), "{v:?}");
}

#[test]
fn datagram_body_must_be_a_json_object() {
    let v = validate_datagram(&datagram("{oops"));
    assert_eq!(v.len(), 1);
    assert!(v[0].message.contains("not JSON"));
    let v = validate_datagram(&datagram("[1]"));
    assert_eq!(v[0].path, "(document)");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed & 0xff) as u8
            })
            .collect();
        let _ = validate_datagram(&bytes);
        let mut with_header = DATAGRAM_HEADER.as_bytes().to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = validate_datagram(&with_header);
    }
}

/// Found by the `datagram_validation` fuzz target: a count too large for xray-core's
/// `Document` passed every rule, and the collector then counted the datagram as garbage
/// without a word.
#[test]
fn a_valid_document_the_collector_cannot_read_is_reported_not_dropped_silently() {
    let mut doc = segment();
    doc["cause"] =
        json!({"exceptions": [{"id": "c000000000000001", "truncated": 5_000_000_000u64}]});
    assert_eq!(
        validate_document(&doc),
        [],
        "no rule of the X-Ray service is broken"
    );
    let v = validate_datagram(format!("{DATAGRAM_HEADER}{doc}").as_bytes());
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].message.contains("cannot read"), "{v:?}");

    let c = Collector::start().unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(format!("{DATAGRAM_HEADER}{doc}").as_bytes(), c.addr())
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while c.violations().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(c.violations()[0].message.contains("cannot read"));
    assert_eq!(c.garbage_count(), 1);
}
