//! Trace assembly from real UDP input.

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xray_core::emitter::DATAGRAM_HEADER;
use xray_core::time::Timestamp;
use xray_core::{EntityId, Recorder, TraceId};
use xray_local::Collector;

const WAIT: Duration = Duration::from_secs(5);

fn send(collector: &Collector, body: &[u8]) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(body, collector.addr()).unwrap();
}

fn send_doc(collector: &Collector, doc: &Value) {
    let mut bytes = DATAGRAM_HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(doc.to_string().as_bytes());
    send(collector, &bytes);
}

fn now() -> f64 {
    Timestamp::now().as_secs_f64()
}

fn ids() -> (String, String, String, String) {
    (
        TraceId::new().to_string(),
        EntityId::new().to_string(),
        EntityId::new().to_string(),
        EntityId::new().to_string(),
    )
}

#[test]
fn independent_subsegment_arriving_before_its_segment_is_merged_under_it() {
    let c = Collector::start().unwrap();
    let (trace, seg, sub, inner) = ids();
    let t = now();
    send_doc(
        &c,
        &json!({"type":"subsegment","name":"db","id":sub,"trace_id":trace,"parent_id":seg,
                "start_time":t+0.01,"end_time":t+0.02,
                "subsegments":[{"name":"query","id":inner,"start_time":t+0.011,"end_time":t+0.019}]}),
    );
    // The orphan alone is not a complete trace.
    c.wait_for_documents(1, WAIT);
    assert!(c.traces()[0].orphan_count() == 1 && !c.traces()[0].is_complete());
    send_doc(
        &c,
        &json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"end_time":t+0.05}),
    );
    let got = c
        .wait_for_trace_id(trace.parse().unwrap(), WAIT)
        .expect("complete");
    assert_eq!(got.outline(), "web\n  db\n    query\n");
    assert_eq!(got.segments().len(), 1);
    assert_eq!(got.children_of(seg.parse().unwrap())[0].name(), "db");
    let merged = got.segment_documents();
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].subsegments[0].name, "db");
    assert_eq!(
        merged[0].subsegments[0].kind, None,
        "merged subsegments lose `type`"
    );
    assert_eq!(merged[0].subsegments[0].subsegments[0].name, "query");
}

#[test]
fn in_progress_segment_is_replaced_by_its_complete_version() {
    let c = Collector::builder()
        .quiet_period(Duration::from_millis(50))
        .start()
        .unwrap();
    let (trace, seg, sub, _) = ids();
    let t = now();
    send_doc(
        &c,
        &json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"in_progress":true,
                "subsegments":[{"name":"slow","id":sub,"start_time":t+0.001,"in_progress":true}]}),
    );
    assert!(
        c.wait_for_trace(|_| true, Duration::from_millis(400))
            .is_none(),
        "an in-progress trace is never complete"
    );
    let partial = &c.traces()[0];
    assert!(partial.find("slow").unwrap().is_in_progress());

    // The stub is completed by an independent subsegment, the segment by its final version.
    send_doc(
        &c,
        &json!({"type":"subsegment","name":"slow","id":sub,"trace_id":trace,"parent_id":seg,
                "start_time":t+0.001,"end_time":t+0.03}),
    );
    send_doc(
        &c,
        &json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"end_time":t+0.04,
                "http":{"response":{"status":200}}}),
    );
    let got = c.wait_for_trace(|_| true, WAIT).expect("complete");
    assert_eq!(got.outline(), "web\n  slow\n");
    assert_eq!(got.find("web").unwrap().http_status(), Some(200));
    assert_eq!(
        got.find("slow").unwrap().duration(),
        Some(Duration::from_millis(29))
    );
    assert_eq!(got.documents().len(), 3);
}

#[test]
fn late_in_progress_copy_does_not_replace_a_complete_entity() {
    let c = Collector::start().unwrap();
    let (trace, seg, _, _) = ids();
    let t = now();
    send_doc(
        &c,
        &json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"end_time":t+0.01}),
    );
    c.wait_for_documents(1, WAIT);
    send_doc(
        &c,
        &json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"in_progress":true}),
    );
    c.wait_for_documents(2, WAIT);
    let now = &c.traces()[0];
    assert_eq!(now.len(), 1);
    assert!(!now.find("web").unwrap().is_in_progress());
    assert!(now.is_complete());
}

#[test]
fn garbage_datagrams_are_counted_and_ignored() {
    let c = Collector::start().unwrap();
    send(&c, b"hello");
    send(&c, br#"{"name":"no header","id":"0123456789abcdef"}"#);
    send(&c, format!("{DATAGRAM_HEADER}{{not json").as_bytes());
    let (trace, seg, _, _) = ids();
    let t = now();
    send_doc(
        &c,
        &json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"end_time":t+0.01}),
    );
    let got = c.wait_for_trace(|_| true, WAIT).expect("the good one");
    assert_eq!(got.outline(), "web\n");
    assert_eq!(c.garbage_count(), 3);
    assert_eq!(c.received().len(), 4);
    assert_eq!(c.documents().len(), 1);
    assert_eq!(c.traces().len(), 1);
    // Garbage is also reported as violations of the datagram rules.
    assert!(c.violations().iter().any(|v| v.message.contains("header")));
}

#[test]
fn trace_is_complete_only_after_the_quiet_period() {
    let quiet = Duration::from_millis(300);
    let c = Collector::builder().quiet_period(quiet).start().unwrap();
    let rx = c.subscribe();
    let (trace, seg, _, _) = ids();
    let t = now();
    let sent = Instant::now();
    send_doc(
        &c,
        &json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"end_time":t+0.01}),
    );
    let got = rx.recv_timeout(WAIT).expect("reported");
    let waited = sent.elapsed();
    assert!(
        waited >= quiet,
        "reported after {waited:?}, before the quiet period"
    );
    assert!(
        waited < quiet + Duration::from_secs(2),
        "reported after {waited:?}"
    );
    assert_eq!(got.trace_id(), Some(trace.parse().unwrap()));
}

#[test]
fn downstream_segment_hangs_below_the_subsegment_that_called_it() {
    let c = Collector::start().unwrap();
    let (trace, front, call, back) = ids();
    let t = now();
    // The callee's segment arrives first, naming the caller's subsegment as parent.
    send_doc(
        &c,
        &json!({"name":"backend","id":back,"trace_id":trace,"parent_id":call,
                "start_time":t+0.002,"end_time":t+0.008}),
    );
    send_doc(
        &c,
        &json!({"name":"frontend","id":front,"trace_id":trace,"start_time":t,"end_time":t+0.01,
                "subsegments":[{"name":"backend","id":call,"namespace":"remote",
                                "start_time":t+0.001,"end_time":t+0.009}]}),
    );
    let got = c.wait_for_trace(|t| t.len() == 3, WAIT).expect("complete");
    assert_eq!(got.outline(), "frontend\n  backend\n    backend\n");
    assert_eq!(got.segments().len(), 2);
    let callee = got.entity(back.parse().unwrap()).unwrap();
    assert!(callee.is_segment());
    assert_eq!(
        got.parent_of(callee.id()).unwrap().id(),
        call.parse().unwrap()
    );
    assert_eq!(
        got.segment_documents().len(),
        2,
        "segments stay separate documents"
    );
}

#[test]
fn streamed_subsegments_from_the_recorder_are_reassembled() {
    let c = Collector::start().unwrap();
    let recorder = Recorder::builder()
        .service_name("streamer")
        .daemon_address(c.daemon_address())
        .sampler(xray_core::sampling::AlwaysSample)
        .streaming_threshold(2)
        .ignore_env()
        .build()
        .unwrap();
    let segment = recorder.begin_segment("streamer", None);
    for i in 0..6 {
        let s = segment.begin_subsegment(&format!("step{i}"));
        s.begin_subsegment("inner").end();
        s.end();
    }
    segment.end();
    recorder.flush(WAIT);
    let got = c
        .wait_for_trace_id(segment.trace_id(), WAIT)
        .expect("complete");
    assert!(c.documents().len() > 1, "the recorder streamed");
    assert_eq!(got.len(), 13);
    assert_eq!(got.children_of(segment.id()).len(), 6);
    for i in 0..6 {
        let step = got.find(&format!("step{i}")).unwrap();
        assert_eq!(got.children_of(step.id())[0].name(), "inner");
    }
    assert!(c.violations().is_empty(), "{:?}", c.violations());
}

#[test]
fn complete_traces_go_to_callbacks_and_channels() {
    let c = Collector::start().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    c.on_trace_complete(move |t| s.lock().unwrap().push(t.outline()));
    let rx = c.subscribe();
    let recorder = c.recorder("svc");
    recorder.begin_segment("one", None).end();
    recorder.begin_segment("two", None).end();
    let mut names: Vec<String> = (0..2)
        .map(|_| rx.recv_timeout(WAIT).expect("a trace").outline())
        .collect();
    names.sort();
    assert_eq!(names, ["one\n", "two\n"]);
    let deadline = Instant::now() + WAIT;
    while seen.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn forward_sends_every_datagram_unchanged() {
    let daemon = Collector::start().unwrap();
    let relay = Collector::builder().forward(daemon.addr()).start().unwrap();
    let (trace, seg, _, _) = ids();
    let t = now();
    send(&relay, b"not a datagram");
    send_doc(
        &relay,
        &json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"end_time":t+0.01}),
    );
    let deadline = Instant::now() + WAIT;
    while daemon.received().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let a: Vec<Vec<u8>> = relay.received().into_iter().map(|r| r.bytes).collect();
    let b: Vec<Vec<u8>> = daemon.received().into_iter().map(|r| r.bytes).collect();
    assert_eq!(a, b);
    assert_eq!(relay.forwarded_count(), 2);
    assert_eq!(daemon.garbage_count(), 1);
}

#[test]
fn every_document_is_validated_on_arrival() {
    let c = Collector::start().unwrap();
    let (trace, seg, sub, _) = ids();
    let t = now();
    send_doc(
        &c,
        &json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"end_time":t+0.01,
                "subsegments":[{"name":"x","id":sub,"namespace":"local","start_time":t,"end_time":t+0.001}]}),
    );
    let got = c.wait_for_trace(|_| true, WAIT).expect("still assembled");
    assert_eq!(got.len(), 2);
    let v = c.violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].path, "subsegments[0].namespace");
    assert_eq!(v[0].document_id.as_deref(), Some(seg.as_str()));
}

#[test]
fn clear_forgets_datagrams_traces_and_violations() {
    let c = Collector::start().unwrap();
    send(&c, b"junk");
    c.recorder("svc").begin_segment("svc", None).end();
    c.wait_for_trace(|_| true, WAIT).expect("a trace");
    c.clear();
    assert!(c.received().is_empty());
    assert!(c.traces().is_empty());
    assert!(c.violations().is_empty());
    assert!(c
        .wait_for_trace(|_| true, Duration::from_millis(300))
        .is_none());
}

#[test]
fn bursts_of_datagrams_are_received_without_loss() {
    let c = Collector::start().unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let n = 2_000;
    let t = now();
    for i in 0..n {
        let doc = json!({"name":"burst","id":EntityId::new().to_string(),
                         "trace_id":TraceId::new().to_string(),"start_time":t,"end_time":t+0.001,
                         "annotations":{"i":i}});
        let bytes = format!("{DATAGRAM_HEADER}{doc}");
        socket.send_to(bytes.as_bytes(), c.addr()).unwrap();
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let docs = c.wait_for_documents(n, Duration::from_secs(20));
    assert_eq!(docs.len(), n);
    assert_eq!(c.garbage_count(), 0);
}

#[test]
fn a_panicking_callback_does_not_stop_the_collector() {
    let c = Collector::start().unwrap();
    c.on_trace_complete(|_| panic!("callback bug"));
    let rx = c.subscribe();
    let recorder = c.recorder("svc");
    recorder.begin_segment("first", None).end();
    assert_eq!(rx.recv_timeout(WAIT).expect("first").outline(), "first\n");
    recorder.begin_segment("second", None).end();
    assert_eq!(rx.recv_timeout(WAIT).expect("second").outline(), "second\n");
}

/// Found by the `datagram_validation` fuzz target: the validator (like the X-Ray daemon)
/// reads the header line as JSON, but the collector wanted its exact bytes and counted a
/// valid datagram as garbage without a word.
#[test]
fn a_header_line_with_white_space_is_read_as_the_daemon_reads_it() {
    let c = Collector::start().unwrap();
    let (trace, seg, _, _) = ids();
    let t = now();
    let doc = json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"end_time":t+0.01});
    let datagram = format!("{{ \"version\": 1,\r\"format\": \"json\" }}\n{doc}");
    assert_eq!(
        xray_local::validate::validate_datagram(datagram.as_bytes()),
        []
    );
    send(&c, datagram.as_bytes());
    let got = c.wait_for_trace(|_| true, WAIT).expect("assembled");
    assert_eq!(got.outline(), "web\n");
    assert_eq!(c.garbage_count(), 0);
    assert!(xray_local::collector::parse_datagram(datagram.as_bytes()).is_some());
}
