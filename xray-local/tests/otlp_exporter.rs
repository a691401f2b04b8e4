//! The OTLP exporter against a receiver that decodes with an independent implementation (the
//! OpenTelemetry project's Python messages), and the same request sent once through the UDP
//! emitter to compare with.
#![cfg(feature = "otlp")]

mod otlp_peer;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use otlp_peer::{attr, python, Receiver};
use serde_json::{json, Value};
use xray_core::document::{Cause, HttpRequest, Sql};
use xray_core::emitter::otlp::{trace_id_from_otlp, OtlpEmitter};
use xray_core::emitter::Emitter;
use xray_core::sampling::AlwaysSample;
use xray_core::{Namespace, Recorder, TraceHeader, TraceId};
use xray_local::{Collector, Trace};

/// The caller's trace header, the same for both runs of the request.
fn header() -> &'static TraceHeader {
    static HEADER: std::sync::OnceLock<TraceHeader> = std::sync::OnceLock::new();
    HEADER.get_or_init(|| {
        format!("Root={};Parent=53995c3f42cd8ad8;Sampled=1", TraceId::new())
            .parse()
            .unwrap()
    })
}

#[derive(Debug)]
struct OutOfStock(std::io::Error);

impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("item out of stock")
    }
}

impl std::error::Error for OutOfStock {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// One traced request with everything the adapters and a handler record: HTTP, an AWS call,
/// SQL, annotations, metadata, a failed downstream call, an error with a source, nested
/// subsegments, and enough subsegments that some are streamed before the segment ends.
fn rich_request(recorder: &Recorder) {
    let segment = recorder.begin_segment("otlp-shop", Some(header()));
    let mut request = HttpRequest::default();
    request.method = Some("POST".into());
    request.url = Some("https://shop.example.com/orders?id=7".into());
    request.user_agent = Some("curl/8.5.0".into());
    request.client_ip = Some("203.0.113.7".into());
    request.x_forwarded_for = true;
    segment.set_http_request(request);
    segment.set_user("alice");
    segment.put_annotation("order_id", 42);
    segment.put_annotation("ratio", 0.25);
    segment.put_annotation("vip", true);
    segment.put_annotation("region_name", "eu-west-1");
    segment.put_metadata("cart", json!({"items": [1, 2, 3], "note": "é ✓"}));
    segment.put_metadata_in("debug", "raw", "line\nbreak");

    let dynamo = segment.begin_subsegment("DynamoDB");
    dynamo.set_namespace(Namespace::Aws);
    dynamo.set_aws("operation", "GetItem");
    dynamo.set_aws("region", "eu-west-1");
    dynamo.set_aws("request_id", "ABCDEF0123456789");
    dynamo.set_aws("table_name", "orders");
    dynamo.set_aws("retries", 1);
    dynamo.set_http_response(200, Some(311));
    dynamo.end();

    let sql = segment.begin_subsegment("orders@db.example.com");
    sql.set_namespace(Namespace::Remote);
    let mut query = Sql::default();
    query.url = Some("postgresql://db.example.com:5432/orders".into());
    query.sanitized_query = Some("SELECT * FROM orders WHERE id = $1".into());
    query.database_type = Some("PostgreSQL".into());
    query.database_version = Some("16.2".into());
    query.driver_version = Some("sqlx-0.8".into());
    query.user = Some("app".into());
    query.preparation = Some("statement".into());
    sql.set_sql(query);
    sql.end();

    let payment = segment.begin_subsegment("payments.example.com");
    payment.set_namespace(Namespace::Remote);
    let mut request = HttpRequest::default();
    request.method = Some("POST".into());
    request.url = Some("https://payments.example.com/charge".into());
    request.traced = true;
    payment.set_http_request(request);
    payment.set_http_response(503, Some(0));
    payment.end();

    let price = segment.begin_subsegment("price");
    let tax = price.begin_subsegment("tax");
    let rounding = tax.begin_subsegment("rounding");
    rounding.put_annotation("mode", "half_even");
    rounding.end();
    tax.add_error(&OutOfStock(std::io::Error::other("warehouse offline")));
    tax.end();
    price.end();

    for i in 0..5 {
        segment.begin_subsegment(&format!("batch-{i}")).end();
    }
    segment.set_http_response(502, Some(17));
    segment.end();
}

fn recorder_builder() -> xray_core::RecorderBuilder {
    Recorder::builder()
        .service_name("otlp-shop")
        .sampler(AlwaysSample)
        .streaming_threshold(3)
        .ignore_env()
}

/// The request once through the UDP emitter, assembled by the collector.
fn udp_trace() -> Trace {
    let collector = Collector::start().unwrap();
    let recorder = recorder_builder()
        .daemon_address(collector.daemon_address())
        .build()
        .unwrap();
    rich_request(&recorder);
    assert!(recorder.shutdown(Duration::from_secs(5)));
    let id = header().root.unwrap();
    let trace = collector
        .wait_for_trace(
            |t| t.trace_id() == Some(id) && t.find("otlp-shop").is_some(),
            Duration::from_secs(10),
        )
        .expect("the UDP trace arrives");
    assert!(trace.is_complete());
    trace
}

fn emitter(receiver: &Receiver) -> xray_core::emitter::otlp::OtlpEmitterBuilder {
    OtlpEmitter::builder()
        .endpoint(receiver.url())
        .batch_delay(Duration::from_millis(20))
}

fn hex_id(s: &Value) -> String {
    s.as_str().unwrap().to_string()
}

#[test]
fn every_field_of_a_rich_trace_arrives_and_the_ids_are_the_udp_trace_s() {
    let Some(py) = python("OTLP exporter against the Python opentelemetry-proto receiver") else {
        return;
    };
    let udp = udp_trace();
    let receiver = Receiver::start(&py, &[]);
    let otlp = emitter(&receiver).build();
    let recorder = recorder_builder().emitter(otlp.clone()).build().unwrap();
    rich_request(&recorder);
    assert!(
        recorder.shutdown(Duration::from_secs(10)),
        "flushed in time"
    );
    let spans = receiver.accepted_spans();
    let stats = otlp.stats();
    assert_eq!(
        stats.sent + stats.dropped + stats.errors,
        stats.accepted,
        "{stats:?}"
    );
    assert_eq!((stats.dropped, stats.errors), (0, 0), "{stats:?}");
    assert!(stats.accepted > 1, "subsegments were streamed: {stats:?}");

    // One span per entity of the UDP trace, same names, same tree, same trace id.
    assert_eq!(spans.len(), udp.len(), "{spans:#?}");
    let mut udp_names: Vec<&str> = udp.entities().iter().map(|e| e.name()).collect();
    let mut otlp_names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    udp_names.sort_unstable();
    otlp_names.sort_unstable();
    assert_eq!(udp_names, otlp_names);
    let by_id: HashMap<String, &Value> = spans.iter().map(|s| (hex_id(&s["span_id"]), s)).collect();
    for s in &spans {
        let tid = hex::decode(s["trace_id"].as_str().unwrap());
        assert_eq!(
            trace_id_from_otlp(&tid),
            udp.trace_id(),
            "the span's trace id converts back to the X-Ray id the UDP emitter sent"
        );
        let name = s["name"].as_str().unwrap();
        let entity = udp.find(name).unwrap();
        let udp_parent = udp.parent_of(entity.id()).map(|p| p.name().to_string());
        let otlp_parent = by_id
            .get(&hex_id(&s["parent_span_id"]))
            .map(|p| p["name"].as_str().unwrap().to_string());
        assert_eq!(otlp_parent, udp_parent, "parent of {name}");
        assert!(s["end"].as_u64().unwrap() >= s["start"].as_u64().unwrap());
        assert!(!entity.is_in_progress());
        assert_eq!(s["flags"], 1, "sampled");
        assert_eq!(s["scope"], "xray-core");
    }
    let span = |name: &str| spans.iter().find(|s| s["name"] == name).unwrap();
    let segment = span("otlp-shop");
    assert_eq!(
        segment["parent_span_id"], "53995c3f42cd8ad8",
        "the caller's id"
    );
    assert_eq!(segment["kind"], 2, "server");
    assert_eq!(attr(segment, "http.request.method"), "POST");
    assert_eq!(
        attr(segment, "url.full"),
        "https://shop.example.com/orders?id=7"
    );
    assert_eq!(attr(segment, "user_agent.original"), "curl/8.5.0");
    assert_eq!(attr(segment, "client.address"), "203.0.113.7");
    assert_eq!(
        attr(segment, "network.peer.address"),
        Value::Null,
        "forwarded"
    );
    assert_eq!(attr(segment, "http.response.status_code"), 502);
    assert_eq!(attr(segment, "http.response.body.size"), 17);
    assert_eq!(attr(segment, "enduser.id"), "alice");
    assert_eq!(attr(segment, "order_id"), 42);
    assert_eq!(attr(segment, "ratio"), 0.25);
    assert_eq!(attr(segment, "vip"), true);
    assert_eq!(attr(segment, "region_name"), "eu-west-1");
    let mut indexed: Vec<String> =
        serde_json::from_value(attr(segment, "aws.xray.annotations")).unwrap();
    indexed.sort();
    assert_eq!(indexed, ["order_id", "ratio", "region_name", "vip"]);
    let udp_segment = udp.find("otlp-shop").unwrap().document();
    for ns in ["default", "debug"] {
        let text = attr(segment, &format!("aws.xray.metadata.{ns}"));
        let parsed: Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
        assert_eq!(parsed, udp_segment.metadata[ns], "metadata {ns}");
    }
    assert_eq!(segment["status_code"], 2, "a fault is an error status");
    assert_eq!(
        attr(segment, "aws.xray.fault"),
        Value::Null,
        "502 says it already"
    );
    let resource = &segment["resource"];
    assert_eq!(resource["service.name"], "otlp-shop");
    assert_eq!(resource["telemetry.sdk.name"], "X-Ray");
    assert_eq!(resource["telemetry.sdk.language"], "rust");
    assert_eq!(
        resource["telemetry.sdk.version"],
        udp_segment.aws["xray"]["sdk_version"]
    );
    assert_eq!(resource["process.runtime.name"], "rust");

    let dynamo = span("DynamoDB");
    assert_eq!(dynamo["kind"], 3, "client");
    assert_eq!(attr(dynamo, "rpc.system"), "aws-api");
    assert_eq!(attr(dynamo, "aws.service"), "DynamoDB");
    assert_eq!(attr(dynamo, "aws.operation"), "GetItem");
    assert_eq!(attr(dynamo, "rpc.method"), "GetItem");
    assert_eq!(attr(dynamo, "aws.region"), "eu-west-1");
    assert_eq!(attr(dynamo, "aws.request_id"), "ABCDEF0123456789");
    assert_eq!(attr(dynamo, "aws.table_name"), "orders");
    assert_eq!(attr(dynamo, "aws.xray.retries"), 1);
    assert_eq!(attr(dynamo, "http.response.status_code"), 200);
    assert_eq!(dynamo["status_code"], 0);

    let sql = span("orders@db.example.com");
    assert_eq!(sql["kind"], 3);
    assert_eq!(attr(sql, "db.system"), "postgresql");
    assert_eq!(attr(sql, "db.name"), "orders");
    assert_eq!(
        attr(sql, "db.connection_string"),
        "postgresql://db.example.com:5432"
    );
    assert_eq!(
        attr(sql, "db.statement"),
        "SELECT * FROM orders WHERE id = $1"
    );
    assert_eq!(attr(sql, "db.user"), "app");
    assert_eq!(attr(sql, "aws.xray.sql.database_type"), "PostgreSQL");
    assert_eq!(attr(sql, "aws.xray.sql.database_version"), "16.2");
    assert_eq!(attr(sql, "aws.xray.sql.driver_version"), "sqlx-0.8");
    assert_eq!(attr(sql, "aws.xray.sql.preparation"), "statement");

    let payment = span("payments.example.com");
    assert_eq!(payment["kind"], 3);
    assert_eq!(attr(payment, "http.response.status_code"), 503);
    assert_eq!(attr(payment, "aws.xray.http.traced"), true);
    assert_eq!(payment["status_code"], 2);

    for local in ["price", "tax", "rounding", "batch-0", "batch-4"] {
        assert_eq!(span(local)["kind"], 1, "{local} is internal");
    }
    assert_eq!(attr(span("rounding"), "mode"), "half_even");
    // The error and its source, as exception events, as the UDP document has them.
    let tax = span("tax");
    let Some(Cause::Exceptions(cause)) = &udp.find("tax").unwrap().document().cause else {
        panic!("the UDP tax subsegment has a cause");
    };
    let events = tax["events"].as_array().unwrap();
    assert_eq!(events.len(), cause.exceptions.len());
    assert!(events.len() >= 2, "the error and its source");
    for (event, x) in events.iter().zip(&cause.exceptions) {
        assert_eq!(event["name"], "exception");
        assert_eq!(attr(event, "exception.message"), json!(x.message));
        assert_eq!(attr(event, "exception.type"), json!(x.kind));
        assert_eq!(event["time"], tax["end"]);
    }
    assert_eq!(attr(&events[0], "exception.message"), "item out of stock");
    assert_eq!(
        attr(&events[0], "aws.xray.exception.cause"),
        attr(&events[1], "aws.xray.exception.id"),
        "the chain is kept"
    );
    let tax_udp = udp.find("tax").unwrap().document();
    assert!(tax_udp.fault && !tax_udp.error);
    assert_eq!(
        tax["status_code"], 2,
        "a recorded error is a fault: error status"
    );
    assert_eq!(tax["status_message"], "item out of stock");
    // Times: the documents' microseconds, in nanoseconds.
    let dyn_ns = dynamo["end"].as_u64().unwrap() - dynamo["start"].as_u64().unwrap();
    assert_eq!(dyn_ns % 1000, 0);
    assert!(dyn_ns > 0);
}

/// Hex decoding, without a dependency.
mod hex {
    pub fn decode(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }
}

fn one_segment(recorder: &Recorder, name: &str) {
    recorder.begin_segment(name, None).end();
}

#[test]
fn refused_for_now_is_retried_after_retry_after_then_sent() {
    let Some(py) = python("OTLP retries against the Python receiver") else {
        return;
    };
    let receiver = Receiver::start(&py, &["--responses", "503", "--retry-after", "1"]);
    let otlp = emitter(&receiver).build();
    let recorder = recorder_builder().emitter(otlp.clone()).build().unwrap();
    let started = Instant::now();
    one_segment(&recorder, "retried");
    assert!(recorder.flush(Duration::from_secs(10)));
    let took = started.elapsed();
    let requests = receiver.requests();
    let statuses: Vec<&Value> = requests.iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, [&json!(503), &json!(200)]);
    assert!(
        took >= Duration::from_millis(950),
        "Retry-After: 1 honoured, took {took:?}"
    );
    let lines = receiver.lines();
    let ids: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "span")
        .map(|l| &l["span_id"])
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "the same span again");
    let s = otlp.stats();
    assert_eq!(
        (s.accepted, s.sent, s.dropped, s.errors),
        (1, 1, 0, 0),
        "{s:?}"
    );

    // Without Retry-After: exponential back-off through 429, 502 and 504.
    let receiver = Receiver::start(&py, &["--responses", "429,502,504"]);
    let otlp = emitter(&receiver).build();
    let recorder = recorder_builder().emitter(otlp.clone()).build().unwrap();
    one_segment(&recorder, "backoff");
    assert!(recorder.flush(Duration::from_secs(10)));
    let statuses: Vec<Value> = receiver
        .requests()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(429), json!(502), json!(504), json!(200)]);
    assert_eq!(otlp.stats().sent, 1);
}

#[test]
fn a_bad_request_is_never_retried() {
    let Some(py) = python("OTLP 400 against the Python receiver") else {
        return;
    };
    let receiver = Receiver::start(&py, &["--responses", "400*"]);
    let otlp = emitter(&receiver).build();
    let recorder = recorder_builder().emitter(otlp.clone()).build().unwrap();
    one_segment(&recorder, "refused");
    assert!(recorder.flush(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.requests().len(), 1, "no second attempt");
    let s = otlp.stats();
    assert_eq!(
        (s.accepted, s.sent, s.dropped, s.errors),
        (1, 0, 0, 1),
        "{s:?}"
    );
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let Some(py) = python("OTLP bounded queue against the Python receiver") else {
        return;
    };
    // Each request takes the receiver 500 ms: the queue (5 spans) fills behind the first.
    let receiver = Receiver::start(&py, &["--delay-ms", "500"]);
    let otlp = emitter(&receiver)
        .max_queue_spans(5)
        .max_batch_spans(2)
        .build();
    let recorder = recorder_builder().emitter(otlp.clone()).build().unwrap();
    let started = Instant::now();
    for i in 0..50 {
        one_segment(&recorder, &format!("burst-{i}"));
    }
    let emitting = started.elapsed();
    assert!(
        emitting < Duration::from_millis(400),
        "emit never waits: {emitting:?}"
    );
    assert!(recorder.flush(Duration::from_secs(20)));
    let s = otlp.stats();
    assert_eq!(s.accepted, 50);
    assert!(s.dropped >= 40, "{s:?}");
    assert_eq!(s.sent + s.dropped + s.errors, s.accepted, "{s:?}");
    assert_eq!(s.errors, 0, "{s:?}");
    let spans = receiver.accepted_spans();
    assert_eq!(
        spans.len() as u64,
        s.sent,
        "every document counted sent arrived"
    );
    let batches: Vec<u64> = receiver
        .requests()
        .iter()
        .map(|r| r["spans"].as_u64().unwrap())
        .collect();
    assert!(
        batches.iter().all(|&n| n <= 2),
        "batches of at most 2 spans: {batches:?}"
    );
}

#[test]
fn shutdown_flushes_what_waits_and_keeps_its_deadline_when_nobody_listens() {
    let Some(py) = python("OTLP shutdown flush against the Python receiver") else {
        return;
    };
    let receiver = Receiver::start(&py, &[]);
    // A batch would wait a minute: only the shutdown's flush sends it.
    let otlp = OtlpEmitter::builder()
        .endpoint(receiver.url())
        .batch_delay(Duration::from_secs(60))
        .build();
    let recorder = recorder_builder().emitter(otlp.clone()).build().unwrap();
    for i in 0..10 {
        one_segment(&recorder, &format!("late-{i}"));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(receiver.requests().is_empty(), "still batching");
    assert!(recorder.shutdown(Duration::from_secs(5)));
    assert_eq!(receiver.accepted_spans().len(), 10);
    assert_eq!(receiver.requests().len(), 1, "one request for the batch");
    let s = otlp.stats();
    assert_eq!((s.accepted, s.sent), (10, 10), "{s:?}");

    // Nobody listens: shutdown returns at its deadline, the documents are counted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let otlp = OtlpEmitter::builder()
        .endpoint(format!("http://127.0.0.1:{port}/v1/traces"))
        .max_retry_time(Duration::from_secs(30))
        .build();
    let recorder = recorder_builder().emitter(otlp.clone()).build().unwrap();
    one_segment(&recorder, "lost");
    let started = Instant::now();
    assert!(!recorder.shutdown(Duration::from_millis(500)));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "shutdown kept its deadline: {took:?}"
    );
    let s = otlp.stats();
    assert_eq!(s.accepted, 1);
    assert_eq!(s.sent, 0);
}
