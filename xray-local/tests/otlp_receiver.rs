//! xray-local receiving OTLP: one request recorded once and sent both ways (UDP to one
//! collector, OTLP to another) assembles into the same trace.
#![cfg(feature = "otlp")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use xray_core::daemon::DaemonAddress;
use xray_core::document::{HttpRequest, Sql};
use xray_core::emitter::otlp::OtlpEmitter;
use xray_core::emitter::{Emitter, EmitterStats, UdpEmitter};
use xray_core::sampling::AlwaysSample;
use xray_core::{Document, Namespace, Recorder, TraceHeader, TraceId};
use xray_local::{Collector, Trace};

/// Hands every document to both emitters.
#[derive(Debug)]
struct Both {
    udp: UdpEmitter,
    otlp: OtlpEmitter,
}

impl Emitter for Both {
    fn emit(&self, document: Document) {
        self.udp.emit_borrowed(&document);
        self.otlp.emit(document);
    }

    fn flush(&self, timeout: Duration) -> bool {
        self.udp.flush(timeout) & self.otlp.flush(timeout)
    }

    fn stats(&self) -> EmitterStats {
        self.otlp.stats()
    }
}

fn request(recorder: &Recorder) -> TraceId {
    let header: TraceHeader = format!("Root={};Parent=53995c3f42cd8ad8;Sampled=1", TraceId::new())
        .parse()
        .unwrap();
    let segment = recorder.begin_segment("otlp-local", Some(&header));
    let mut request = HttpRequest::default();
    request.method = Some("GET".into());
    request.url = Some("http://localhost:8080/items/7".into());
    request.client_ip = Some("127.0.0.1".into());
    request.user_agent = Some("test".into());
    segment.set_http_request(request);
    segment.set_user("bob");
    segment.put_annotation("item", 7);
    segment.put_annotation("cheap", false);
    segment.put_metadata_in("debug", "values", json!({"a": [1, 2.5, "x", null]}));
    let s3 = segment.begin_subsegment("S3");
    s3.set_namespace(Namespace::Aws);
    s3.set_aws("operation", "GetObject");
    s3.set_aws("region", "us-east-1");
    s3.set_aws("bucket_name", "assets");
    s3.set_http_response(404, Some(0));
    s3.end();
    let db = segment.begin_subsegment("items@db");
    db.set_namespace(Namespace::Remote);
    let mut sql = Sql::default();
    sql.url = Some("mysql://db:3306/items?ssl=true".into());
    sql.database_type = Some("MySQL".into());
    sql.sanitized_query = Some("SELECT 1".into());
    db.set_sql(sql);
    db.end();
    let work = segment.begin_subsegment("render");
    let inner = work.begin_subsegment("template");
    inner.add_error(&std::io::Error::other("missing partial"));
    inner.end();
    work.add_precursor_id(db.id());
    work.end();
    let throttled = segment.begin_subsegment("rates");
    throttled.set_namespace(Namespace::Remote);
    throttled.set_http_response(429, None);
    throttled.end();
    for i in 0..4 {
        segment.begin_subsegment(&format!("step-{i}")).end();
    }
    segment.set_http_response(200, Some(99));
    segment.end();
    header.root.unwrap()
}

/// An entity's document with the fields that depend on how it travelled (embedded or
/// independent) set from its place in the tree.
fn normalized(trace: &Trace, id: xray_core::EntityId) -> Document {
    let e = trace.entity(id).unwrap();
    let mut d = e.document().clone();
    d.kind = (!e.is_segment()).then(|| "subsegment".to_string());
    d.trace_id = trace.trace_id();
    d.parent_id = e.claimed_parent_id();
    d
}

#[test]
fn spans_over_otlp_assemble_into_the_trace_the_datagrams_give() {
    let udp_side = Collector::start().unwrap();
    let otlp_side = Collector::builder()
        .otlp_listen("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    let otlp_addr = otlp_side.otlp().unwrap().addr();
    let both = Both {
        udp: UdpEmitter::new(&DaemonAddress::parse(&udp_side.daemon_address()).unwrap()),
        otlp: OtlpEmitter::builder()
            .endpoint(format!("http://{otlp_addr}/v1/traces"))
            .batch_delay(Duration::from_millis(10))
            .build(),
    };
    let recorder = Recorder::builder()
        .service_name("otlp-local")
        .sampler(AlwaysSample)
        .streaming_threshold(3)
        .emitter(both)
        .ignore_env()
        .build()
        .unwrap();
    let trace_id = request(&recorder);
    assert!(recorder.shutdown(Duration::from_secs(10)));
    let complete = |t: &Trace| t.trace_id() == Some(trace_id) && t.find("otlp-local").is_some();
    let udp = udp_side
        .wait_for_trace(complete, Duration::from_secs(10))
        .expect("UDP trace");
    let otlp = otlp_side
        .wait_for_trace(complete, Duration::from_secs(10))
        .expect("OTLP trace");
    assert!(otlp.is_complete());
    assert_eq!(otlp.outline(), udp.outline());
    assert_eq!(otlp.len(), udp.len());
    assert!(udp.len() >= 10);
    for e in udp.entities() {
        let o = otlp
            .entity(e.id())
            .unwrap_or_else(|| panic!("{} over OTLP", e.name()));
        assert_eq!(o.parent_id(), e.parent_id(), "{}", e.name());
        assert_eq!(
            normalized(&otlp, e.id()),
            normalized(&udp, e.id()),
            "{} is the same document",
            e.name()
        );
    }
    assert!(
        otlp_side.violations().is_empty(),
        "{:?}",
        otlp_side.violations()
    );
    let receiver = otlp_side.otlp().unwrap();
    assert_eq!(receiver.spans(), udp.len() as u64);
    assert_eq!(receiver.rejected_spans(), 0);
    let s = recorder.emitter_stats();
    assert_eq!(s.sent + s.dropped + s.errors, s.accepted, "{s:?}");
}

fn exchange(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(head.as_bytes()).unwrap();
    let _ = tcp.write_all(body);
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn bad_requests_get_their_status_and_nothing_is_assembled() {
    let collector = Collector::builder()
        .otlp_listen("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    let addr = collector.otlp().unwrap().addr();
    let post = |path: &str, ctype: &str, body: &[u8]| {
        exchange(
            addr,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ),
            body,
        )
    };
    let answer = post("/v1/traces", "application/x-protobuf", b"\xff\xff\xff\xff");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = post("/v1/logs", "application/x-protobuf", b"");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let answer = post("/v1/traces", "application/json", b"{}");
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    let answer = exchange(
        addr,
        "GET /v1/traces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    let huge = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        1u64 << 40
    );
    let answer = exchange(addr, &huge, b"");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // An empty request is a valid one with no spans.
    let answer = post("/v1/traces", "application/x-protobuf", b"");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(collector.documents().is_empty());
    assert_eq!(collector.otlp().unwrap().spans(), 0);
}

#[test]
fn spans_with_bad_ids_are_rejected_as_a_partial_success() {
    use xray_core::emitter::otlp::opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use xray_core::emitter::otlp::opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span,
    };
    use xray_core::emitter::otlp::trace_id_to_otlp;
    let good = Span {
        trace_id: trace_id_to_otlp(TraceId::new()).to_vec(),
        span_id: vec![1; 8],
        name: "good".into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_001_000_000_000,
        ..Default::default()
    };
    let bad = Span {
        span_id: vec![0; 8],
        name: "bad".into(),
        ..good.clone()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![good, bad],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let body = prost_encode(&request);
    let collector = Collector::builder()
        .otlp_listen("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    let addr = collector.otlp().unwrap().addr();
    let answer = exchange(
        addr,
        &format!(
            "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ),
        &body,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let docs = collector.wait_for_documents(1, Duration::from_secs(5));
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].name, "good");
    let receiver = collector.otlp().unwrap();
    assert_eq!((receiver.spans(), receiver.rejected_spans()), (1, 1));
    let _ = ExportTraceServiceResponse::default();
}

fn prost_encode(
    request: &xray_core::emitter::otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> Vec<u8> {
    prost::Message::encode_to_vec(request)
}

#[test]
fn bodies_held_at_once_are_bounded_and_the_excess_is_asked_to_retry() {
    use xray_local::limits::{OTLP_MAX_BODY_BYTES, OTLP_MAX_BODY_BYTES_IN_FLIGHT};
    let collector = Collector::builder()
        .otlp_listen("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    let addr = collector.otlp().unwrap().addr();
    // Connections that send most of a maximal body and then wait: together just under the
    // bytes all connections may hold.
    let part = OTLP_MAX_BODY_BYTES - (OTLP_MAX_BODY_BYTES >> 3);
    let slow = OTLP_MAX_BODY_BYTES_IN_FLIGHT / part;
    assert!(slow * part < OTLP_MAX_BODY_BYTES_IN_FLIGHT);
    let held: Vec<TcpStream> = (0..slow)
        .map(|_| {
            let mut tcp = TcpStream::connect(addr).unwrap();
            let head = format!(
                "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {OTLP_MAX_BODY_BYTES}\r\n\r\n"
            );
            tcp.write_all(head.as_bytes()).unwrap();
            tcp.write_all(&vec![0u8; part]).unwrap();
            tcp
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let body = vec![0u8; OTLP_MAX_BODY_BYTES_IN_FLIGHT - slow * part + 1024];
    let post = |body: &[u8]| {
        exchange(
            addr,
            &format!(
                "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ),
            body,
        )
    };
    let answer = post(&body);
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"));
    assert_eq!(collector.otlp().unwrap().busy(), 1);
    // Once those connections go, their bytes are given back.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let answer = post(b"");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
