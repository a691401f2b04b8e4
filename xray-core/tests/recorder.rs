//! Recording rules, checked on the documents the emitter produces.

use std::time::Duration;

use xray_core::document::Cause;
use xray_core::emitter::{Emitter, MemoryEmitter};

use xray_core::sampling::{AlwaysSample, NeverSample, Sampler};
use xray_core::{context, Document, FutureExt, Recorder, RecorderBuilder, Sampled, TraceHeader};

/// A recorder built from code only (the environment ignored).
fn builder(sampler: impl Sampler, emitter: impl Emitter) -> RecorderBuilder {
    Recorder::builder()
        .sampler(sampler)
        .emitter(emitter)
        .ignore_env()
}

fn recorder() -> (Recorder, MemoryEmitter) {
    let emitter = MemoryEmitter::new();
    let r = builder(AlwaysSample, emitter.clone())
        .service_name("svc")
        .build()
        .unwrap();
    (r, emitter)
}

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

#[test]
fn segment_carries_sdk_service_and_nested_subsegments() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    let a = seg.begin_subsegment("a");
    let b = a.begin_subsegment("b");
    b.end();
    a.end();
    seg.end();
    let docs = e.documents();
    assert_eq!(docs.len(), 1);
    let d = &docs[0];
    assert_eq!(d.name, "svc");
    assert!(d.kind.is_none());
    assert!(d.trace_id.is_some());
    assert!(d.end_time.unwrap() >= d.start_time);
    assert_eq!(d.aws["xray"]["sdk"], "X-Ray for Rust");
    assert_eq!(d.service.as_ref().unwrap()["runtime"], "rust");
    assert_eq!(d.subsegments[0].name, "a");
    assert_eq!(d.subsegments[0].subsegments[0].name, "b");
    assert_eq!(
        d.subsegments[0].namespace, None,
        "local subsegments carry no namespace"
    );
    let json = e.values();
    assert!(json[0]["subsegments"][0].get("namespace").is_none());
}

#[test]
fn header_continues_the_callers_trace() {
    let (r, e) = recorder();
    let h: TraceHeader = format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1")
        .parse()
        .unwrap();
    r.begin_segment("svc", Some(&h)).end();
    let d = &e.documents()[0];
    assert_eq!(d.trace_id.unwrap().to_string(), ROOT);
    assert_eq!(d.parent_id.unwrap().to_string(), "53995c3f42cd8ad8");
}

#[test]
fn incoming_sampled_zero_is_followed_and_nothing_is_sent() {
    let (r, e) = recorder();
    let h: TraceHeader = format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=0;Lineage=a:1")
        .parse()
        .unwrap();
    let seg = r.begin_segment("svc", Some(&h));
    assert!(!seg.is_sampled());
    let sub = seg.begin_subsegment("call");
    sub.put_annotation("k", "v");
    sub.end();
    seg.end();
    assert!(e.documents().is_empty());
    assert_eq!(e.stats().accepted, 0);
    // The caller's Root is kept downstream (SPEC §9.2), with Sampled=0 and the extra pairs.
    assert_eq!(
        sub.outbound_header().to_string(),
        format!("Root={ROOT};Parent={};Sampled=0;Lineage=a:1", sub.id())
    );
}

#[test]
fn sampled_question_mark_is_answered_with_the_decision() {
    let (r, _) = recorder();
    let h: TraceHeader = format!("Root={ROOT};Sampled=?").parse().unwrap();
    let seg = r.begin_segment("svc", Some(&h));
    assert_eq!(
        seg.response_header().to_string(),
        format!("Root={ROOT};Sampled=1")
    );
    let plain = r.begin_segment("svc", None);
    assert_eq!(plain.response_header().sampled, None);
    seg.end();
    plain.end();
}

#[test]
fn never_sampler_sends_nothing_but_keeps_ids() {
    let e = MemoryEmitter::new();
    let r = builder(NeverSample, e.clone()).build().unwrap();
    let seg = r.begin_segment("svc", None);
    assert_eq!(seg.outbound_header().sampled, Some(Sampled::No));
    seg.end();
    assert!(e.documents().is_empty());
}

#[test]
fn disabled_sdk_records_nothing_but_propagates_headers() {
    let e = MemoryEmitter::new();
    let r = builder(AlwaysSample, e.clone())
        .enabled(false)
        .build()
        .unwrap();
    let h: TraceHeader = format!("Root={ROOT};Sampled=1").parse().unwrap();
    let seg = r.begin_segment("svc", Some(&h));
    assert!(!seg.is_sampled());
    assert_eq!(seg.outbound_header().root.unwrap().to_string(), ROOT);
    seg.end();
    assert!(e.documents().is_empty());
}

#[test]
fn unsampled_subsegment_inside_sampled_segment_is_never_emitted() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    let quiet = seg.begin_unsampled_subsegment("health-probe");
    let inner = quiet.begin_subsegment("inner");
    assert!(!inner.is_sampled());
    assert_eq!(quiet.outbound_header().sampled, Some(Sampled::No));
    inner.end();
    quiet.end();
    seg.end();
    let d = &e.documents()[0];
    assert!(d.subsegments.is_empty(), "no dummy subsegments (SPEC §9.3)");
}

#[test]
fn invalid_annotations_are_dropped_valid_ones_kept() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    seg.put_annotation("ok_key", "v");
    seg.put_annotation("n", 3);
    seg.put_annotation("f", 1.5);
    seg.put_annotation("b", true);
    seg.put_annotation("bad-key", "v");
    seg.put_annotation("", "v");
    seg.put_annotation("nan", f64::NAN);
    seg.put_annotation("inf", f64::INFINITY);
    seg.put_metadata("m", serde_json::json!({"x": [1, 2]}));
    seg.put_metadata_in("AWS.reserved", "k", 1);
    seg.put_metadata_in("custom", "k", "v");
    seg.set_user("alice");
    seg.end();
    let v = &e.values()[0];
    let ann = v["annotations"].as_object().unwrap();
    assert_eq!(ann.len(), 4, "{ann:?}");
    assert_eq!(ann["ok_key"], "v");
    assert_eq!(ann["n"], 3);
    assert_eq!(ann["b"], true);
    assert_eq!(v["metadata"]["default"]["m"]["x"][1], 2);
    assert_eq!(v["metadata"]["custom"]["k"], "v");
    assert!(v["metadata"].get("AWS.reserved").is_none());
    assert_eq!(v["user"], "alice");
}

#[test]
fn metadata_nested_deeper_than_readers_accept_is_dropped() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    let mut deep = serde_json::json!(1);
    for _ in 0..150 {
        deep = serde_json::json!([deep]);
    }
    let mut ok = serde_json::json!(1);
    for _ in 0..50 {
        ok = serde_json::json!({ "k": ok });
    }
    seg.put_metadata("deep", deep);
    seg.put_metadata("ok", ok);
    seg.end();
    let v = &e.values()[0];
    assert!(v["metadata"]["default"].get("deep").is_none());
    assert!(v["metadata"]["default"].get("ok").is_some());
}

#[test]
fn status_codes_set_the_documented_flags() {
    let (r, e) = recorder();
    for status in [200u16, 404, 429, 500, 503] {
        let seg = r.begin_segment("svc", None);
        seg.set_http_response(status, Some(12));
        seg.end();
    }
    let docs = e.documents();
    let flags: Vec<(bool, bool, bool)> = docs
        .iter()
        .map(|d| (d.error, d.throttle, d.fault))
        .collect();
    assert_eq!(
        flags,
        vec![
            (false, false, false),
            (true, false, false),
            (true, true, false),
            (false, false, true),
            (false, false, true)
        ]
    );
    assert_eq!(
        docs[0].http.response.as_ref().unwrap().content_length,
        Some(12)
    );
}

#[derive(Debug)]
struct DbError;
impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset")
    }
}
impl std::error::Error for DbError {}

#[test]
fn parent_refers_to_the_exception_its_subsegment_recorded() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    let sub = seg.begin_subsegment("db");
    sub.add_error(&DbError);
    sub.end();
    seg.add_error(&DbError);
    seg.end();
    let d = &e.documents()[0];
    let Some(Cause::Exceptions(data)) = &d.subsegments[0].cause else {
        panic!("subsegment has the exception")
    };
    assert!(d.subsegments[0].fault);
    assert_eq!(
        data.exceptions[0].message.as_deref(),
        Some("connection reset")
    );
    assert!(data.exceptions[0]
        .kind
        .as_deref()
        .unwrap()
        .ends_with("DbError"));
    assert_eq!(
        d.cause,
        Some(Cause::Reference(data.exceptions[0].id.to_string()))
    );
    assert!(d.fault);
}

#[test]
fn subsegment_ending_after_its_segment_is_sent_on_its_own() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    let late = seg.begin_subsegment("background");
    seg.end();
    let first = e.documents();
    assert_eq!(first.len(), 1);
    assert!(
        first[0].subsegments[0].in_progress,
        "still-open work is shown in progress"
    );
    late.end();
    let docs = e.documents();
    assert_eq!(docs.len(), 2);
    let d = &docs[1];
    assert_eq!(d.kind.as_deref(), Some("subsegment"));
    assert_eq!(d.parent_id, Some(seg.id()));
    assert_eq!(d.trace_id, Some(seg.trace_id()));
    assert_eq!(d.id, late.id());
    assert!(!d.in_progress);
}

#[test]
fn subsegment_begun_after_its_segment_was_sent_is_not_lost() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    seg.end();
    let after = seg.begin_subsegment("after");
    after.end();
    let docs = e.documents();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].parent_id, Some(seg.id()));
    assert_eq!(docs[1].kind.as_deref(), Some("subsegment"));
}

fn rebuild_count(docs: &[Document], root: &Document) -> usize {
    // Count every subsegment reachable from the root, embedded or independent.
    let mut count = 0;
    let mut stack = vec![root.id];
    let mut seen = std::collections::HashSet::new();
    let mut all: Vec<&Document> = Vec::new();
    for d in docs {
        d.walk(&mut |x| all.push(x));
    }
    while let Some(id) = stack.pop() {
        for d in docs {
            if d.kind.as_deref() == Some("subsegment")
                && d.parent_id == Some(id)
                && seen.insert(d.id)
            {
                count += 1;
                stack.push(d.id);
            }
        }
        for x in &all {
            if x.id == id {
                for s in &x.subsegments {
                    if seen.insert(s.id) {
                        count += 1;
                        stack.push(s.id);
                    }
                }
            }
        }
    }
    count
}

#[test]
fn thousand_subsegments_stream_and_rebuild_whole() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    for i in 0..1000 {
        let s = seg.begin_subsegment(&format!("step-{i}"));
        s.put_metadata("payload", "x".repeat(200));
        s.end();
    }
    seg.end();
    let docs = e.documents();
    assert!(docs.len() > 1, "subsegments were streamed");
    for d in e.datagrams() {
        assert!(d.len() <= 64_000);
    }
    let root = docs.iter().find(|d| d.kind.is_none()).unwrap();
    assert!(root.subsegments.len() <= 31);
    assert_eq!(rebuild_count(&docs, root), 1000);
}

#[test]
fn huge_segment_is_split_to_fit_datagrams() {
    let e = MemoryEmitter::new();
    let r = builder(AlwaysSample, e.clone())
        .streaming_threshold(100_000)
        .build()
        .unwrap();
    let seg = r.begin_segment("svc", None);
    for i in 0..500 {
        let s = seg.begin_subsegment(&format!("s{i}"));
        s.put_metadata("blob", "y".repeat(500));
        s.end();
    }
    seg.end();
    let docs = e.documents();
    assert!(docs.len() > 1);
    assert!(e.stats().split >= 1);
    let root = docs.iter().find(|d| d.kind.is_none()).unwrap();
    assert_eq!(rebuild_count(&docs, root), 500);
}

#[test]
fn guard_records_a_panic_and_ends_once() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    let s2 = seg.clone();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _g = s2.begin_subsegment("boom").guard();
        panic!("kaboom");
    }));
    assert!(res.is_err());
    seg.end();
    seg.end();
    let docs = e.documents();
    assert_eq!(docs.len(), 1);
    let sub = &docs[0].subsegments[0];
    assert!(sub.fault);
    assert!(
        matches!(&sub.cause, Some(Cause::Exceptions(c)) if c.exceptions[0].kind.as_deref() == Some("panic"))
    );
}

#[test]
fn segment_dropped_without_end_is_sent_in_progress() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    seg.put_annotation("k", 1);
    drop(seg);
    let docs = e.documents();
    assert_eq!(docs.len(), 1);
    assert!(docs[0].in_progress);
    assert!(docs[0].end_time.is_none());
}

#[test]
fn end_time_is_never_before_start_time() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    seg.end_at(xray_core::time::Timestamp::from_micros(1));
    let d = &e.documents()[0];
    assert_eq!(d.end_time, Some(d.start_time));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_subsegments_get_the_right_parent() {
    let (r, e) = recorder();
    let seg = r.begin_segment("svc", None);
    context::scope(seg.clone(), async {
        xray_core::capture_async("outer", async {
            let a = xray_core::capture_async("a", async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                xray_core::capture("a-inner", || ());
            });
            let b = xray_core::capture_async("b", async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                xray_core::capture("b-inner", || ());
            });
            tokio::join!(a, b);
        })
        .await;
        let spawned =
            tokio::spawn(xray_core::capture_async("spawned", async {}).in_current_segment());
        spawned.await.unwrap();
    })
    .await;
    seg.end();
    let d = &e.documents()[0];
    let outer = &d.subsegments.iter().find(|s| s.name == "outer").unwrap();
    let mut names: Vec<&str> = outer.subsegments.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    for s in &outer.subsegments {
        assert_eq!(s.subsegments.len(), 1);
        assert_eq!(s.subsegments[0].name, format!("{}-inner", s.name));
    }
    assert!(d.subsegments.iter().any(|s| s.name == "spawned"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_traces_are_not_mixed_or_lost() {
    let (r, e) = recorder();
    let mut tasks = Vec::new();
    for i in 0..10_000u32 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let seg = r.begin_segment("svc", None);
            seg.put_annotation("n", i);
            context::scope(seg.clone(), async move {
                xray_core::capture_async("parent", async move {
                    let x = xray_core::capture_async("x", async move {
                        tokio::task::yield_now().await;
                        xray_core::put_annotation("n", i);
                    });
                    let y = xray_core::capture_async("y", async move {
                        xray_core::put_annotation("n", i);
                    });
                    tokio::join!(x, y);
                })
                .await;
            })
            .await;
            seg.end();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let docs = e.documents();
    assert_eq!(docs.len(), 10_000, "no document lost");
    let mut seen = std::collections::HashSet::new();
    for d in &docs {
        let n = d.annotations["n"].as_u64().unwrap();
        assert!(seen.insert(n));
        let parent = &d.subsegments[0];
        assert_eq!(parent.name, "parent");
        assert_eq!(parent.subsegments.len(), 2);
        for s in &parent.subsegments {
            assert_eq!(
                s.annotations["n"].as_u64(),
                Some(n),
                "subsegment attached to the wrong trace"
            );
        }
    }
}

#[test]
fn context_missing_is_quiet_under_ignore_and_never_panics_by_default() {
    assert!(xray_core::current().is_none());
    assert!(xray_core::try_current().is_err());
    xray_core::put_annotation("k", "v");
    assert_eq!(xray_core::capture("no-segment", || 7), 7);
    assert!(!xray_core::is_sampled());
}

/// Serializes what it is lent, and counts what it is given.
#[derive(Debug, Default, Clone)]
struct Lending {
    lent: std::sync::Arc<std::sync::Mutex<Vec<Document>>>,
    given: std::sync::Arc<std::sync::Mutex<Vec<Document>>>,
}

impl Emitter for Lending {
    fn emit(&self, document: Document) {
        self.given.lock().unwrap().push(document);
    }
    fn emit_borrowed(&self, document: &Document) -> bool {
        // What the UDP emitter sends (the recorder's shared blocks included).
        let json = document.to_json();
        self.lent
            .lock()
            .unwrap()
            .push(serde_json::from_str(&json).unwrap());
        true
    }
}

#[test]
fn segments_without_subsegments_are_lent_to_emitters_that_read_in_place() {
    let e = Lending::default();
    let r = builder(AlwaysSample, e.clone()).build().unwrap();
    // No subsegment: lent, once, whole (the decoration included).
    let plain = r.begin_segment("plain", None);
    plain.put_annotation("k", "v");
    plain.end();
    plain.end();
    // A late subsegment still finds its segment's ids after the segment was lent.
    let late = plain.begin_subsegment("late");
    late.end();
    // With a subsegment the tree is taken apart and given by value, as before.
    let nested = r.begin_segment("nested", None);
    nested.begin_subsegment("child").end();
    nested.end();
    drop((plain, nested));
    let lent = e.lent.lock().unwrap().clone();
    let given = e.given.lock().unwrap().clone();
    assert_eq!(lent.len(), 1, "{lent:#?}");
    assert_eq!(lent[0].name, "plain");
    assert_eq!(lent[0].annotations["k"], "v");
    assert_eq!(lent[0].aws["xray"]["sdk"], "X-Ray for Rust");
    assert!(lent[0].end_time.is_some() && !lent[0].in_progress);
    assert_eq!(given.len(), 2, "{given:#?}");
    assert_eq!(given[0].name, "late");
    assert_eq!(given[0].parent_id, Some(lent[0].id));
    assert_eq!(given[0].trace_id, lent[0].trace_id);
    assert_eq!(given[1].name, "nested");
    assert_eq!(given[1].subsegments.len(), 1);
}
