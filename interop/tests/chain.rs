//! One trace across the official SDKs and ours: the Python SDK's patched `requests` calls our
//! service (axum or actix), whose reqwest client calls a service traced by the Node SDK
//! (express) or by the Python SDK (Flask). The three processes send to one collector; the
//! trace must link parent to child hop by hop, and every document must survive the X-Ray API
//! (moto) round trip.
//!
//! Needs `XRAY_TEST_PYTHON`, `XRAY_TEST_NODE_MODULES` and `XRAY_TEST_MOTO_ENDPOINT`
//! (`scripts/test` sets them); skipped loudly without them, failed with
//! `XRAY_REQUIRE_PEERS=1`.

use interop::chain::{remote_call, Callee, Chain, Mode, PYTHON_CLIENT};
use interop::middle::Framework;
use interop::xray_api;
use xray_local::Trace;

/// A Lambda loop-detection pair, which every hop must pass on unchanged.
const LINEAGE: &str = "a87bd80c:1|68fd508a:5c7f1c2e";

fn sampled_chain_links_parent_ids_hop_by_hop(framework: Framework, callee: Callee) {
    let Some(chain) = Chain::start(framework, callee) else {
        return;
    };
    let out = chain.call(Mode::Sampled, Some(LINEAGE));
    assert_eq!(out.status, 200, "{out:?}\n{}", chain.callee_log());
    assert_eq!(out.callee_status(), Some(200), "{out:?}");
    let trace = out.trace_id;

    let segs = chain.wait_for_segments(
        trace,
        &[
            PYTHON_CLIENT,
            framework.service_name(),
            callee.service_name(),
        ],
    );
    let (python, ours, last) = (&segs[0], &segs[1], &segs[2]);
    for s in &segs {
        assert_eq!(s.trace_id, Some(trace), "one trace id in all documents");
    }

    // Python's `requests` subsegment is our segment's parent.
    let python_call = remote_call(python);
    assert_eq!(python.parent_id, None, "the Python client starts the trace");
    assert_eq!(ours.parent_id, Some(python_call.id));
    // Our reqwest subsegment is the callee's parent.
    let our_call = remote_call(ours);
    assert_eq!(last.parent_id, Some(our_call.id));
    assert!(our_call.http.request.as_ref().is_some_and(|r| r.traced));

    // The header as it arrived at the last hop: our subsegment as Parent, Lineage unchanged.
    assert_eq!(
        out.callee_received_header(),
        Some(
            format!(
                "Root={trace};Parent={};Sampled=1;Lineage={LINEAGE}",
                our_call.id
            )
            .as_str()
        )
    );
    // Nobody asked with `?`, so our answer only names the trace.
    assert_eq!(out.response_trace_header, Some(format!("Root={trace}")));

    // Assembled, the three documents make one tree, without orphans.
    let docs = chain.documents_of(trace);
    assert_eq!(docs.len(), 3, "one document per process: {docs:#?}");
    let assembled = Trace::assemble(&docs);
    assert_eq!(assembled.orphan_count(), 0);
    assert_eq!(assembled.roots().len(), 1);
    assert_eq!(
        assembled.outline(),
        format!(
            "{PYTHON_CLIENT}\n  127.0.0.1\n    {}\n      127.0.0.1\n        {}\n",
            framework.service_name(),
            callee.service_name()
        )
    );

    let round_trip = xray_api::finish(&chain.collector);
    if let Some(rt) = round_trip {
        assert_eq!(rt.documents, 3);
    }
}

#[test]
fn python_sdk_to_axum_to_node_sdk_links_parent_ids_hop_by_hop() {
    sampled_chain_links_parent_ids_hop_by_hop(Framework::Axum, Callee::Node);
}

#[test]
fn python_sdk_to_actix_to_node_sdk_links_parent_ids_hop_by_hop() {
    sampled_chain_links_parent_ids_hop_by_hop(Framework::Actix, Callee::Node);
}

#[test]
fn python_sdk_to_axum_to_flask_links_parent_ids_hop_by_hop() {
    sampled_chain_links_parent_ids_hop_by_hop(Framework::Axum, Callee::Flask);
}

#[test]
fn python_sdk_to_actix_to_flask_links_parent_ids_hop_by_hop() {
    sampled_chain_links_parent_ids_hop_by_hop(Framework::Actix, Callee::Flask);
}

fn sampled_0_keeps_the_root_to_the_last_hop_and_nobody_emits(framework: Framework, callee: Callee) {
    let Some(chain) = Chain::start(framework, callee) else {
        return;
    };
    let out = chain.call(Mode::Unsampled, Some(LINEAGE));
    assert_eq!(out.status, 200, "{out:?}\n{}", chain.callee_log());
    let trace = out.trace_id;

    // The Root (and Lineage) reach the last hop, with the decision; no Parent can name a
    // subsegment nobody recorded, but the header stays well formed.
    let received = out
        .callee_received_header()
        .unwrap_or_else(|| panic!("the callee got no trace header: {out:?}"));
    assert!(
        received.starts_with(&format!("Root={trace};Parent=")),
        "{received}"
    );
    assert!(
        received.ends_with(&format!(";Sampled=0;Lineage={LINEAGE}")),
        "{received}"
    );
    assert_eq!(out.response_trace_header, Some(format!("Root={trace}")));

    let docs = chain.documents_after_a_sampled_call(trace);
    assert!(
        docs.is_empty(),
        "unsampled, yet documents arrived: {docs:#?}"
    );
    xray_api::finish(&chain.collector);
}

#[test]
fn sampled_0_from_python_sdk_crosses_axum_to_node_sdk_and_nobody_emits() {
    sampled_0_keeps_the_root_to_the_last_hop_and_nobody_emits(Framework::Axum, Callee::Node);
}

#[test]
fn sampled_0_from_python_sdk_crosses_actix_to_flask_and_nobody_emits() {
    sampled_0_keeps_the_root_to_the_last_hop_and_nobody_emits(Framework::Actix, Callee::Flask);
}

fn sampled_question_mark_is_answered_with_our_decision(
    framework: Framework,
    callee: Callee,
    sample: bool,
) {
    let chain = if sample {
        Chain::start(framework, callee)
    } else {
        Chain::start_with_sampler(framework, callee, xray_core::sampling::NeverSample)
    };
    let Some(chain) = chain else {
        return;
    };
    let out = chain.call(Mode::Ask, Some(LINEAGE));
    assert_eq!(out.status, 200, "{out:?}\n{}", chain.callee_log());
    let trace = out.trace_id;
    let decision = if sample { 1 } else { 0 };

    assert_eq!(
        out.response_trace_header,
        Some(format!("Root={trace};Sampled={decision}")),
        "our response carries the decision"
    );
    let received = out
        .callee_received_header()
        .unwrap_or_else(|| panic!("the callee got no trace header: {out:?}"));

    if sample {
        let segs =
            chain.wait_for_segments(trace, &[framework.service_name(), callee.service_name()]);
        let (ours, last) = (&segs[0], &segs[1]);
        assert_eq!(ours.parent_id, None, "the header named no parent");
        let our_call = remote_call(ours);
        assert_eq!(last.parent_id, Some(our_call.id));
        assert_eq!(
            received,
            format!(
                "Root={trace};Parent={};Sampled=1;Lineage={LINEAGE}",
                our_call.id
            )
        );
    } else {
        assert!(
            received.starts_with(&format!("Root={trace};Parent="))
                && received.ends_with(&format!(";Sampled=0;Lineage={LINEAGE}")),
            "{received}"
        );
        let docs = chain.documents_after_a_sampled_call(trace);
        assert!(
            docs.is_empty(),
            "unsampled, yet documents arrived: {docs:#?}"
        );
    }
    xray_api::finish(&chain.collector);
}

#[test]
fn sampled_question_mark_is_answered_1_by_axum_and_node_sdk_continues_the_trace() {
    sampled_question_mark_is_answered_with_our_decision(Framework::Axum, Callee::Node, true);
}

#[test]
fn sampled_question_mark_is_answered_1_by_actix_and_flask_continues_the_trace() {
    sampled_question_mark_is_answered_with_our_decision(Framework::Actix, Callee::Flask, true);
}

#[test]
fn sampled_question_mark_is_answered_0_by_axum_and_node_sdk_emits_nothing() {
    sampled_question_mark_is_answered_with_our_decision(Framework::Axum, Callee::Node, false);
}

#[test]
fn sampled_question_mark_is_answered_0_by_actix_and_flask_emits_nothing() {
    sampled_question_mark_is_answered_with_our_decision(Framework::Actix, Callee::Flask, false);
}
