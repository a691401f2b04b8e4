//! The X-Ray API client the round trip checks rely on must itself notice refusals and
//! unknown traces, or those checks could not fail.
//!
//! Needs `XRAY_TEST_MOTO_ENDPOINT` (skipped loudly without it, failed with
//! `XRAY_REQUIRE_PEERS=1`).

use interop::xray_api::XRayApi;
use serde_json::json;
use xray_core::{EntityId, TraceId};

fn api() -> Option<XRayApi> {
    XRayApi::from_env("the X-Ray API client tests")
}

#[test]
fn put_trace_segments_reports_every_document_the_api_refuses() {
    let Some(api) = api() else { return };
    let trace = TraceId::new().to_string();
    let good = json!({"name": "ok", "id": EntityId::new().to_string(), "trace_id": trace,
        "start_time": 1.0, "end_time": 2.0});
    let no_id = json!({"name": "no-id", "trace_id": trace, "start_time": 1.0, "end_time": 2.0});
    let open_id = EntityId::new().to_string();
    let never_ends = json!({"name": "open", "id": open_id, "trace_id": trace,
        "start_time": 1.0});
    let docs = [good, no_id, never_ends].map(|d| d.to_string());

    let unprocessed = api.put_trace_segments(&docs).expect("the API answers");
    assert_eq!(unprocessed.len(), 2, "{unprocessed:?}");
    assert!(unprocessed.iter().all(|u| u["ErrorCode"] == "MissingParam"));
    assert_eq!(unprocessed[1]["Id"].as_str(), Some(open_id.as_str()));
}

#[test]
fn batch_get_traces_returns_what_was_put_and_names_unknown_traces() {
    let Some(api) = api() else { return };
    let trace = TraceId::new().to_string();
    let id = EntityId::new().to_string();
    let doc = json!({"name": "svc", "id": id, "trace_id": trace, "start_time": 1.5,
        "end_time": 2.5, "annotations": {"k": "v"}})
    .to_string();
    assert!(api
        .put_trace_segments(std::slice::from_ref(&doc))
        .unwrap()
        .is_empty());

    let unknown = TraceId::new().to_string();
    let traces = api
        .batch_get_traces(&[trace.clone(), unknown.clone()])
        .expect("the API answers");
    assert_eq!(traces.segments, vec![(id, doc)]);
    assert_eq!(traces.unprocessed_trace_ids, vec![unknown]);
}
