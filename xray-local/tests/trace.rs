//! Assembly edge cases that need no socket.

use serde_json::json;
use xray_core::Document;
use xray_local::Trace;

const TRACE: &str = "1-5759e988-bd862e3fe1be46a994272793";

fn doc(v: serde_json::Value) -> Document {
    serde_json::from_value(v).unwrap()
}

#[test]
fn parent_cycles_from_bad_input_keep_every_entity() {
    let a = doc(
        json!({"type":"subsegment","name":"a","id":"a000000000000001","trace_id":TRACE,
                       "parent_id":"b000000000000001","start_time":1.0,"end_time":2.0}),
    );
    let b = doc(
        json!({"type":"subsegment","name":"b","id":"b000000000000001","trace_id":TRACE,
                       "parent_id":"a000000000000001","start_time":1.5,"end_time":2.0}),
    );
    let t = Trace::assemble(&[a, b]);
    assert_eq!(t.len(), 2);
    assert_eq!(t.roots().len(), 1);
    assert_eq!(t.outline(), "a\n  b\n");
}

#[test]
fn a_subsegment_naming_itself_as_parent_is_a_root() {
    let a = doc(
        json!({"type":"subsegment","name":"a","id":"a000000000000001","trace_id":TRACE,
                       "parent_id":"a000000000000001","start_time":1.0,"end_time":2.0}),
    );
    let t = Trace::assemble(&[a]);
    assert_eq!(t.outline(), "a\n");
    assert!(!t.is_complete(), "its real parent never arrived");
}

#[test]
fn children_are_ordered_by_start_time_whatever_the_arrival_order() {
    let late = doc(
        json!({"type":"subsegment","name":"second","id":"c000000000000002",
                          "trace_id":TRACE,"parent_id":"c000000000000001",
                          "start_time":5.0,"end_time":6.0}),
    );
    let seg = doc(
        json!({"name":"root","id":"c000000000000001","trace_id":TRACE,
                         "start_time":1.0,"end_time":9.0,
                         "subsegments":[{"name":"third","id":"c000000000000003","start_time":7.0,"end_time":8.0},
                                        {"name":"first","id":"c000000000000004","start_time":2.0,"end_time":3.0}]}),
    );
    let t = Trace::assemble(&[late, seg]);
    assert_eq!(t.outline(), "root\n  first\n  second\n  third\n");
    let names: Vec<&str> = t
        .children_of("c000000000000001".parse().unwrap())
        .iter()
        .map(|e| e.name())
        .collect();
    assert_eq!(names, ["first", "second", "third"]);
    assert_eq!(t.duration(), std::time::Duration::from_secs(8));
}

#[test]
fn an_empty_trace_is_not_complete() {
    let t = Trace::assemble(&[]);
    assert!(t.is_empty());
    assert!(!t.is_complete());
    assert_eq!(t.outline(), "");
}

mod common;

/// The fastest of three assemblies of `docs`.
fn assembly_time(docs: &[Document]) -> std::time::Duration {
    (0..3)
        .map(|_| {
            let started = std::time::Instant::now();
            let t = Trace::assemble(docs);
            let took = started.elapsed();
            assert!(!t.is_empty());
            took
        })
        .min()
        .unwrap()
}

fn independent(id: usize, parent: usize, complete: bool) -> Document {
    let mut v = json!({"type":"subsegment","name":format!("s{id}"),"id":common::entity_id(id),
                       "trace_id":TRACE,"parent_id":common::entity_id(parent),
                       "start_time":1.0 + id as f64 * 1e-6});
    if complete {
        v["end_time"] = json!(100.0);
    } else {
        v["in_progress"] = json!(true);
    }
    doc(v)
}

/// Shapes of `n` documents: wide, deep, replaced versions, and a wide fan under a parent
/// cycle (bad input, once quadratic to untangle).
fn shapes(n: usize) -> Vec<(&'static str, Vec<Document>)> {
    let root = doc(
        json!({"name":"root","id":common::entity_id(0),"trace_id":TRACE,
                          "start_time":1.0,"end_time":100.0}),
    );
    let wide: Vec<Document> = std::iter::once(root.clone())
        .chain((1..n).map(|i| independent(i, 0, true)))
        .collect();
    let deep = common::flat_chain_documents(TRACE.parse().unwrap(), n);
    let versions: Vec<Document> = std::iter::once(root)
        .chain((1..n / 2).map(|i| independent(i, 0, false)))
        .chain((1..n / 2).map(|i| independent(i, 0, true)))
        .collect();
    let cycle: Vec<Document> = (2..n)
        .map(|i| independent(i, 0, true))
        .chain([independent(0, 1, true), independent(1, 0, true)])
        .collect();
    vec![
        ("wide", wide),
        ("deep", deep),
        ("versions", versions),
        ("cycle", cycle),
    ]
}

#[test]
fn assembly_time_grows_linearly_with_the_number_of_documents() {
    let small = shapes(1_000);
    let large = shapes(10_000);
    for ((name, s), (_, l)) in small.iter().zip(&large) {
        // Warm up allocations and caches once.
        let _ = Trace::assemble(s);
        let (ts, tl) = (assembly_time(s), assembly_time(l));
        let ratio = tl.as_secs_f64() / ts.as_secs_f64().max(1e-6);
        eprintln!("{name}: 1k {ts:?}, 10k {tl:?}, ratio {ratio:.1}");
        // Linear is 10; quadratic would be 100.
        assert!(
            ratio < 30.0,
            "{name}: 1k took {ts:?}, 10k took {tl:?} ({ratio:.1}x)"
        );
    }
}

#[test]
fn a_name_with_a_line_break_stays_on_its_own_line_in_the_outline() {
    let seg = doc(
        json!({"name":"web","id":"d000000000000001","trace_id":TRACE,
                         "start_time":1.0,"end_time":2.0,
                         "subsegments":[{"name":"back\nend\u{1b}[2J","id":"d000000000000002",
                                         "start_time":1.0,"end_time":1.5}]}),
    );
    let t = Trace::assemble(&[seg]);
    assert_eq!(t.outline(), "web\n  back\\nend\\u{1b}[2J\n");
    assert_eq!(t.outline().lines().count(), t.len());
}
