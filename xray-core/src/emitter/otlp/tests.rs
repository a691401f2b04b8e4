//! The mapping, both ways, on documents built by hand.

use opentelemetry_proto::tonic::trace::v1::{span, status, Span};
use serde_json::json;

use super::attrs::Attrs;
use super::*;
use crate::document::{Cause, Document};
use crate::{EntityId, TraceId};

fn doc(json: serde_json::Value) -> Document {
    serde_json::from_value(json).unwrap()
}

fn rich() -> Document {
    doc(json!({
        "name": "checkout", "id": "70de5b6f19ff9a0a",
        "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
        "parent_id": "53995c3f42cd8ad8",
        "start_time": 1465510280.5, "end_time": 1465510281.25,
        "user": "alice",
        "origin": "AWS::EC2::Instance",
        "service": {"version": "1.2.3", "runtime": "rust", "runtime_version": "1.95.0"},
        "aws": {"xray": {"sdk": "X-Ray for Rust", "sdk_version": "0.1.0"},
                "ec2": {"instance_id": "i-0abc", "availability_zone": "us-east-1a"}},
        "http": {"request": {"method": "POST", "url": "https://shop.example/cart?x=1",
                             "user_agent": "curl/8", "client_ip": "203.0.113.9",
                             "x_forwarded_for": true},
                 "response": {"status": 500, "content_length": 42}},
        "fault": true,
        "cause": {"working_directory": "/srv", "paths": ["src/main.rs"], "exceptions": [
            {"id": "1111111111111111", "message": "db down", "type": "std::io::Error",
             "cause": "2222222222222222",
             "stack": [{"path": "src/main.rs", "line": 12, "label": "checkout::pay"},
                       {"label": "tokio::run"}]},
            {"id": "2222222222222222", "message": "refused", "type": "Os", "remote": true,
             "truncated": 3, "skipped": 1}]},
        "annotations": {"order": "o-1", "total": 12.5, "items": 3, "vip": true},
        "metadata": {"default": {"cart": {"n": 3}}, "debug": {"trace": [1, 2]}},
        "subsegments": [
            {"name": "DynamoDB", "id": "70de5b6f19ff9a0b", "namespace": "aws",
             "start_time": 1465510280.6, "end_time": 1465510280.7,
             "aws": {"operation": "PutItem", "region": "us-east-1", "request_id": "R1",
                     "table_name": "orders", "retries": 1, "bucket_name": "b"},
             "http": {"response": {"status": 200}},
             "subsegments": [
                {"name": "marshal", "id": "70de5b6f19ff9a0c",
                 "start_time": 1465510280.61, "end_time": 1465510280.62}]},
            {"name": "orders@db.internal", "id": "70de5b6f19ff9a0d", "namespace": "remote",
             "start_time": 1465510280.8, "end_time": 1465510280.9,
             "sql": {"url": "postgresql://app@db.internal:5432/orders",
                     "sanitized_query": "SELECT * FROM t WHERE id = $1",
                     "database_type": "PostgreSQL", "database_version": "16.2",
                     "driver_version": "tokio-postgres 0.7", "user": "app",
                     "preparation": "statement"}},
            {"name": "client-error", "id": "70de5b6f19ff9a0e",
             "start_time": 1465510280.95, "end_time": 1465510281.0, "error": true,
             "cause": "1111111111111111"},
            {"name": "still-running", "id": "70de5b6f19ff9a0f",
             "start_time": 1465510281.0, "in_progress": true}
        ]
    }))
}

fn attr(span: &Span, key: &str) -> serde_json::Value {
    let mut a = Attrs::new(&span.attributes);
    a.take(key).map(attrs::to_json).unwrap_or_default()
}

#[test]
fn trace_ids_convert_both_ways() {
    let id: TraceId = "1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
    let bytes = trace_id_to_otlp(id);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "5759e988bd862e3fe1be46a994272793");
    assert_eq!(trace_id_from_otlp(&bytes), Some(id));
    assert_eq!(trace_id_from_otlp(&[0; 16]), None);
    assert_eq!(trace_id_from_otlp(&bytes[..15]), None);
    let e: EntityId = "53995c3f42cd8ad8".parse().unwrap();
    assert_eq!(
        span_id_to_otlp(e),
        [0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8]
    );
    assert_eq!(span_id_from_otlp(&span_id_to_otlp(e)), Some(e));
    assert_eq!(span_id_from_otlp(&[0; 8]), None);
}

#[test]
fn each_complete_entity_is_one_span_with_its_kind_and_parent() {
    let d = rich();
    let out = document_to_spans(&d, None);
    let names: Vec<&str> = out.spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "checkout",
            "DynamoDB",
            "marshal",
            "orders@db.internal",
            "client-error"
        ]
    );
    assert_eq!(out.skipped, 1, "the in-progress subsegment");
    let kinds: Vec<i32> = out.spans.iter().map(|s| s.kind).collect();
    use span::SpanKind::*;
    assert_eq!(
        kinds,
        [Server, Client, Internal, Client, Internal].map(|k| k as i32)
    );
    let id = |s: &str| span_id_to_otlp(s.parse().unwrap()).to_vec();
    assert_eq!(out.spans[0].parent_span_id, id("53995c3f42cd8ad8"));
    assert_eq!(out.spans[1].parent_span_id, id("70de5b6f19ff9a0a"));
    assert_eq!(out.spans[2].parent_span_id, id("70de5b6f19ff9a0b"));
    for s in &out.spans {
        assert_eq!(s.trace_id, trace_id_to_otlp(d.trace_id.unwrap()).to_vec());
    }
    assert_eq!(out.spans[0].start_time_unix_nano, 1_465_510_280_500_000_000);
    assert_eq!(out.spans[0].end_time_unix_nano, 1_465_510_281_250_000_000);
}

#[test]
fn fields_become_the_attributes_aws_translation_reads() {
    let out = document_to_spans(&rich(), None);
    let seg = &out.spans[0];
    assert_eq!(attr(seg, "http.request.method"), "POST");
    assert_eq!(attr(seg, "url.full"), "https://shop.example/cart?x=1");
    assert_eq!(attr(seg, "user_agent.original"), "curl/8");
    assert_eq!(attr(seg, "client.address"), "203.0.113.9");
    assert_eq!(attr(seg, "network.peer.address"), json!(null), "forwarded");
    assert_eq!(attr(seg, "http.response.status_code"), 500);
    assert_eq!(attr(seg, "enduser.id"), "alice");
    assert_eq!(attr(seg, "order"), "o-1");
    assert_eq!(attr(seg, "total"), 12.5);
    assert_eq!(attr(seg, "items"), 3);
    assert_eq!(attr(seg, "vip"), true);
    assert_eq!(
        attr(seg, "aws.xray.annotations"),
        json!(["items", "order", "total", "vip"])
    );
    assert_eq!(
        attr(seg, "aws.xray.metadata.default"),
        r#"{"cart":{"n":3}}"#
    );
    let status = seg.status.as_ref().unwrap();
    assert_eq!(status.code, status::StatusCode::Error as i32);
    assert_eq!(seg.events.len(), 2);
    let ev = &seg.events[0];
    assert_eq!(ev.name, "exception");
    let mut a = Attrs::new(&ev.attributes);
    assert_eq!(a.str("exception.type"), Some("std::io::Error"));
    assert_eq!(a.str("exception.message"), Some("db down"));
    assert_eq!(
        a.str("exception.stacktrace"),
        Some("std::io::Error: db down\n\tat checkout::pay(src/main.rs:12)\n\tat tokio::run()")
    );
    let ddb = &out.spans[1];
    assert_eq!(attr(ddb, "rpc.system"), "aws-api");
    assert_eq!(attr(ddb, "aws.service"), "DynamoDB");
    assert_eq!(attr(ddb, "aws.operation"), "PutItem");
    assert_eq!(attr(ddb, "rpc.method"), "PutItem");
    assert_eq!(attr(ddb, "aws.region"), "us-east-1");
    assert_eq!(attr(ddb, "aws.request_id"), "R1");
    assert_eq!(attr(ddb, "aws.table_name"), "orders");
    assert_eq!(attr(ddb, "aws.xray.retries"), 1);
    assert_eq!(attr(ddb, "aws.bucket_name"), "b");
    let sql = &out.spans[3];
    assert_eq!(attr(sql, "db.system"), "postgresql");
    assert_eq!(attr(sql, "db.name"), "orders");
    assert_eq!(
        attr(sql, "db.connection_string"),
        "postgresql://app@db.internal:5432"
    );
    assert_eq!(attr(sql, "db.statement"), "SELECT * FROM t WHERE id = $1");
    assert_eq!(attr(sql, "db.user"), "app");
    // A client error without an HTTP status: the flags go along explicitly.
    let ce = &out.spans[4];
    assert_eq!(attr(ce, "aws.xray.error"), true);
    assert_eq!(attr(ce, "aws.xray.fault"), false);
    assert_eq!(ce.status.as_ref().unwrap().message, "1111111111111111");
    // The segment's status code explains its fault: no explicit flags.
    assert_eq!(attr(seg, "aws.xray.fault"), json!(null));

    let mut r = Attrs::new(&out.resource);
    assert_eq!(r.str("service.name"), Some("checkout"));
    assert_eq!(r.str("service.version"), Some("1.2.3"));
    assert_eq!(r.str("telemetry.sdk.name"), Some("X-Ray"));
    assert_eq!(r.str("telemetry.sdk.language"), Some("rust"));
    assert_eq!(r.str("cloud.provider"), Some("aws"));
    assert_eq!(r.str("cloud.platform"), Some("aws_ec2"));
    assert_eq!(r.str("host.id"), Some("i-0abc"));
    assert_eq!(r.str("cloud.availability_zone"), Some("us-east-1a"));
}

/// What a document becomes once its spans are read back: one document per entity, the
/// subsegments independent ones.
fn round_trip(d: &Document) -> Vec<Document> {
    let out = document_to_spans(d, None);
    out.spans
        .iter()
        .map(|s| span_to_document(s, &out.resource).unwrap())
        .collect()
}

/// `d`'s entities flattened as independent documents, as the reverse mapping gives them.
fn flattened(d: &Document) -> Vec<Document> {
    let mut out = Vec::new();
    let mut stack = vec![(d.clone(), d.parent_id, true)];
    while let Some((mut e, parent, top)) = stack.pop() {
        if e.in_progress || e.end_time.is_none() {
            continue;
        }
        for s in e.subsegments.drain(..).rev() {
            stack.push((s, Some(e.id), false));
        }
        if !top {
            e.kind = Some("subsegment".into());
        }
        e.trace_id = d.trace_id;
        e.parent_id = parent;
        out.push(e);
    }
    out
}

#[test]
fn documents_come_back_from_their_spans() {
    let d = rich();
    let back = round_trip(&d);
    let want = flattened(&d);
    assert_eq!(back.len(), want.len());
    for (b, w) in back.iter().zip(&want) {
        assert_eq!(b, w, "{}", w.name);
    }
}

#[test]
fn flags_and_causes_survive_every_combination() {
    for (status, fault, error, throttle) in [
        (None, false, false, false),
        (None, true, false, false),
        (None, false, true, false),
        (None, false, true, true),
        (Some(404), false, true, false),
        (Some(429), false, true, true),
        (Some(503), true, false, false),
        (Some(200), true, false, false),
        (Some(404), true, true, false),
    ] {
        for namespace in [None, Some("remote")] {
            let mut d = Document::new("svc");
            d.trace_id = Some(TraceId::new());
            d.end_time = Some(d.start_time);
            d.fault = fault;
            d.error = error;
            d.throttle = throttle;
            d.namespace = namespace.map(str::to_string);
            if let Some(s) = status {
                d.http.response = Some(crate::document::HttpResponse {
                    status: Some(s),
                    content_length: None,
                });
            }
            let back = round_trip(&d).remove(0);
            assert_eq!(
                (back.fault, back.error, back.throttle),
                (fault, error, throttle),
                "{status:?} {namespace:?}"
            );
        }
    }
}

#[test]
fn spans_of_other_sdks_read_as_x_ray_shows_them() {
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    let kv = |k: &str, v: opentelemetry_proto::tonic::common::v1::AnyValue| KeyValue {
        key: k.into(),
        value: Some(v),
    };
    let trace = trace_id_to_otlp("1-5759e988-bd862e3fe1be46a994272793".parse().unwrap());
    let span = Span {
        trace_id: trace.to_vec(),
        span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
        parent_span_id: vec![8, 7, 6, 5, 4, 3, 2, 1],
        name: "GET /users".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_000_000_000_123,
        end_time_unix_nano: 2_000_000_000_000,
        attributes: vec![
            kv("http.method", attrs::string("GET")),
            kv("http.status_code", attrs::int(503)),
            kv("http.url", attrs::string("http://h/users")),
            kv("custom", attrs::int(7)),
        ],
        ..Default::default()
    };
    let resource = vec![kv("service.name", attrs::string("users-api"))];
    let d = span_to_document(&span, &resource).unwrap();
    assert_eq!(
        d.name, "users-api",
        "a server span is named after its service"
    );
    assert_eq!(d.kind, None);
    assert_eq!(d.start_time.as_micros(), 1_000_000_000);
    let req = d.http.request.as_ref().unwrap();
    assert_eq!(req.method.as_deref(), Some("GET"));
    assert_eq!(req.url.as_deref(), Some("http://h/users"));
    assert!(d.fault && !d.error);
    assert_eq!(d.metadata["default"]["custom"], 7);
    // An unreadable span is an error, not a panic.
    let bad = Span {
        trace_id: vec![1, 2],
        ..span.clone()
    };
    assert!(span_to_document(&bad, &[]).is_err());
    let no_id = Span {
        span_id: vec![],
        ..span
    };
    assert!(span_to_document(&no_id, &[]).is_err());
}

#[test]
fn garbage_bodies_and_stacks_never_panic() {
    for body in [
        &b""[..],
        b"\x0a",
        b"\xff\xff\xff",
        b"\x0a\x05\x12\x03\x12\x01\x00",
    ] {
        let _ = decode_request(body);
    }
    for text in [
        "",
        "\tat ",
        "\tat (",
        "\tat x)",
        "\tat a(b:c:12)",
        "\tat ((:)):9",
    ] {
        let _ = from_spans::parse_stack(text);
    }
    assert_eq!(
        from_spans::parse_stack("T: m\n\tat f(a:b.rs:7)")[0],
        crate::document::StackFrame::new(Some("a:b.rs".into()), Some(7), Some("f".into()))
    );
}

#[test]
fn a_reference_cause_and_sql_url_quirks_round_trip() {
    let d = doc(json!({
        "name": "q", "id": "70de5b6f19ff9a0a", "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
        "start_time": 1.0, "end_time": 2.0, "namespace": "remote",
        "cause": "1111111111111111",
        "sql": {"url": "mysql://h/db?ssl=true", "database_type": "mysql"}
    }));
    let back = round_trip(&d).remove(0);
    assert_eq!(
        back.cause,
        Some(Cause::Reference("1111111111111111".into()))
    );
    assert_eq!(back.sql, d.sql);
    let out = document_to_spans(&d, None);
    assert_eq!(attr(&out.spans[0], "db.name"), "db");
    assert_eq!(
        attr(&out.spans[0], "aws.xray.sql.url"),
        "mysql://h/db?ssl=true"
    );
}

#[test]
fn huge_and_deep_spans_are_read_in_linear_time() {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
    let trace = trace_id_to_otlp(TraceId::new());
    let attributes: Vec<KeyValue> = (0..100_000)
        .map(|i| attrs::kv(format!("k{}", i % 50_000), attrs::int(i)))
        .collect();
    let mut deep = attrs::int(1);
    for _ in 0..200 {
        deep = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![attrs::kv("x", deep)],
            })),
        };
    }
    let mut attributes = attributes;
    attributes.push(attrs::kv("deep", deep));
    let span = Span {
        trace_id: trace.to_vec(),
        span_id: vec![9; 8],
        name: "big".into(),
        attributes,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let d = span_to_document(&span, &[]).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let default = d.metadata["default"].as_object().unwrap();
    assert_eq!(default.len(), 50_001, "duplicate keys: the first wins");
    assert_eq!(default["k7"], 7);
    assert!(d.in_progress, "no end time");
}
