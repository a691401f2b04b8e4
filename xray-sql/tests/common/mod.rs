//! Helpers for the database tests: a real UDP collector, a segment around the work, the
//! query subsegments as they arrived, and the database servers `scripts/start-databases`
//! starts.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use xray_core::{context, Document, Recorder, TraceId};
use xray_local::Collector;

/// How long tests wait for documents to arrive over UDP.
pub const WAIT: Duration = Duration::from_secs(5);

/// A collector and a recorder that samples everything and sends to it.
pub fn collector() -> (Collector, Recorder) {
    let collector = Collector::start().expect("collector");
    let recorder = collector.recorder("db-tests");
    (collector, recorder)
}

/// Runs `f` with a fresh sampled segment current, ends the segment and returns what `f`
/// returned with the segment document as the collector received it.
pub async fn traced<F, T>(recorder: &Recorder, collector: &Collector, f: F) -> (T, Document)
where
    F: Future<Output = T>,
{
    let segment = recorder.begin_segment("db-tests", None);
    let out = context::scope(segment.clone(), f).await;
    segment.end();
    (out, segment_doc(collector, segment.trace_id()))
}

/// The segment document of `trace`, waiting for it to arrive.
pub fn segment_doc(collector: &Collector, trace: TraceId) -> Document {
    let docs = collector.wait_until(WAIT, |docs| {
        docs.iter()
            .any(|d| d.trace_id == Some(trace) && d.kind.is_none())
    });
    docs.into_iter()
        .find(|d| d.trace_id == Some(trace) && d.kind.is_none())
        .unwrap_or_else(|| panic!("no segment document for trace {trace} arrived"))
}

/// The subsegments that carry a `sql` block, in order.
pub fn queries(doc: &Document) -> Vec<&Document> {
    let mut out = Vec::new();
    doc.walk(&mut |d| {
        if d.sql.is_some() {
            out.push(d);
        }
    });
    out
}

/// The `sanitized_query` of a query subsegment.
pub fn query_text(d: &Document) -> &str {
    d.sql
        .as_ref()
        .and_then(|s| s.sanitized_query.as_deref())
        .unwrap_or("")
}

/// A metadata value of namespace `default`.
pub fn meta(d: &Document, key: &str) -> Value {
    d.metadata
        .get("default")
        .and_then(|m| m.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The cause's first exception as (type, message).
pub fn cause(d: &Document) -> (String, String) {
    let v = serde_json::to_value(d).expect("document as JSON");
    let e = &v["cause"]["exceptions"][0];
    (
        e["type"].as_str().unwrap_or("").to_string(),
        e["message"].as_str().unwrap_or("").to_string(),
    )
}

/// Asserts the subsegment ended as a failure or cancellation: exactly one exception, the
/// given flags.
pub fn assert_flags(d: &Document, error: bool, fault: bool) {
    assert_eq!((d.error, d.fault), (error, fault), "{}", d.to_json());
    assert!(d.end_time.is_some(), "{}", d.to_json());
    let v = serde_json::to_value(d).unwrap();
    assert_eq!(
        v["cause"]["exceptions"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
}

/// The URL of a server started by `scripts/start-databases`; `None` (after a notice) when it
/// is not running, a failure under `XRAY_REQUIRE_PEERS=1`.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("XRAY_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!("{var} is not set and XRAY_REQUIRE_PEERS=1: run scripts/start-databases");
            }
            eprintln!(
                "skipped: {var} is not set (eval \"$(scripts/start-databases)\" to run this test)"
            );
            None
        }
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
