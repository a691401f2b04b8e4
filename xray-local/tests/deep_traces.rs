//! Deep traces: a chain of 20 000 subsegments linked by `parent_id` is assembled, walked,
//! rendered and written as JSON without recursion, on a thread with a small (2 MiB) stack.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use xray_core::TraceId;
use xray_local::render::{render_trace, RenderOptions};
use xray_local::{Collector, Trace};

const LINKS: usize = 20_000;

/// Runs `f` on a thread with the stack a spawned thread gets by default, so that a recursive
/// walk of a deep tree overflows here as it would on the collector's threads.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// Everything a user or the binary does with a trace: walk, render, serialize, drop.
fn use_every_view(trace: Trace) {
    assert_eq!(trace.len(), LINKS);
    assert!(trace.is_complete());
    assert_eq!(trace.roots().len(), 1);
    let deepest = trace.entities().iter().map(|e| e.depth()).max().unwrap();
    assert_eq!(deepest, LINKS - 1, "one chain, one entity per level");

    let tree = trace.tree();
    assert_eq!(tree.len(), 1);
    let mut n = 0;
    let mut stack = vec![&tree[0]];
    while let Some(node) = stack.pop() {
        n += 1;
        stack.extend(node.children.iter());
    }
    assert_eq!(n, LINKS);
    let copy = tree.clone();
    drop(tree);
    drop(copy);

    let outline = trace.outline();
    assert_eq!(outline.lines().count(), LINKS);

    let text = render_trace(&trace, &RenderOptions::default());
    assert_eq!(
        text.lines().count(),
        LINKS + 1,
        "a header and one line per entity"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80));

    let docs = trace.segment_documents();
    let as_values: Vec<Value> = docs
        .iter()
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    assert_eq!(count_entities(&as_values).0, LINKS);
    drop(docs);

    let json = trace.to_json().to_string();
    let back: Value = serde_json::from_str(&json).expect("the JSON reads back with serde_json");
    let (count, deepest) = count_entities(back["segments"].as_array().unwrap());
    assert_eq!(count, LINKS, "every entity is in the JSON");
    assert!(deepest <= 33, "nesting capped, {deepest} levels");
    drop(trace);
}

#[test]
fn a_chain_of_20000_independent_subsegments_is_assembled_and_walked_without_recursion() {
    on_small_stack(|| {
        let docs = flat_chain_documents(TraceId::new(), LINKS);
        use_every_view(Trace::assemble(&docs));
    });
}

#[test]
fn the_collector_assembles_a_chain_of_20000_subsegments_received_over_udp() {
    let collector = Collector::builder()
        .quiet_period(Duration::from_millis(100))
        .start()
        .unwrap();
    // The binary renders complete traces on the collector's own thread: do the same.
    collector.on_trace_complete(|t| {
        let _ = render_trace(t, &RenderOptions::default());
        let _ = t.to_json().to_string();
    });
    let trace_id = TraceId::new();
    let datagrams: Vec<Vec<u8>> = chain_documents(trace_id, LINKS)
        .iter()
        .map(datagram)
        .collect();
    send_all(collector.addr(), &datagrams);
    let trace = collector
        .wait_for_trace_id(trace_id, Duration::from_secs(30))
        .expect("the whole chain arrives and completes");
    assert!(
        collector.violations().is_empty(),
        "{:?}",
        collector.violations()
    );
    on_small_stack(move || use_every_view(trace));
}
