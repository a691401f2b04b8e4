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
