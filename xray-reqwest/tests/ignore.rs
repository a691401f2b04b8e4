//! Ignored calls (Python's `add_ignored`) against a real server on loopback, with documents
//! read from a real UDP collector: an ignored call goes out untouched, without a subsegment
//! or a trace header, and calls to the daemon's own address are never recorded.

mod common;

use common::*;
use xray_core::sampling::{AlwaysSample, LocalRules};
use xray_core::{context, Document, Recorder};
use xray_local::Collector;
use xray_reqwest::{IgnoreRule, XRayMiddleware};

/// Runs `f` with a fresh sampled segment of `recorder` current, ends the segment and returns
/// what `f` returned with the segment document as received by `collector`.
async fn traced<F, T>(recorder: &Recorder, collector: &Collector, f: F) -> (T, Document)
where
    F: std::future::Future<Output = T>,
{
    let segment = recorder.begin_segment("caller", None);
    let out = context::scope(segment.clone(), f).await;
    segment.end();
    (out, segment_doc(collector, segment.trace_id()))
}

#[tokio::test]
async fn a_call_to_an_ignored_host_has_no_subsegment_and_no_trace_header() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("caller");
    let client = client(XRayMiddleware::new().ignore_host("LOCAL*"));
    // Both names reach the same server; only `localhost` is ignored.
    let ignored = format!("http://localhost:{}/echo", server.addr.port());

    let ((ignored_header, recorded_header), doc) = traced(&recorder, &collector, async {
        let a = client.get(&ignored).send().await.unwrap();
        let b = client.get(server.url("/echo")).send().await.unwrap();
        (echoed_trace_header(a).await, echoed_trace_header(b).await)
    })
    .await;

    assert_eq!(
        ignored_header, None,
        "the ignored call carries no trace header"
    );
    assert_eq!(doc.subsegments.len(), 1, "only the other call: {doc:#?}");
    let sub = &doc.subsegments[0];
    assert_eq!(sub.name, "127.0.0.1");
    let header = recorded_header.expect("the other call is traced");
    assert_eq!(header_fields(&header)["Parent"], sub.id.to_string());
}

#[tokio::test]
async fn a_call_whose_path_matches_an_ignored_url_is_left_alone() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("caller");
    let client = client(
        XRayMiddleware::new()
            .ignore_url("/status/*")
            .ignore(IgnoreRule::new().url("/echo").method("POST")),
    );

    let (_, doc) = traced(&recorder, &collector, async {
        client
            .get(server.url("/status/503?x=1"))
            .send()
            .await
            .unwrap();
        let posted = client.post(server.url("/echo")).send().await.unwrap();
        assert_eq!(echoed_trace_header(posted).await, None);
        client.get(server.url("/echo")).send().await.unwrap();
    })
    .await;

    assert_eq!(doc.subsegments.len(), 1, "{doc:#?}");
    let req = doc.subsegments[0].http.request.as_ref().unwrap();
    assert_eq!(req.method.as_deref(), Some("GET"));
    assert_eq!(req.url.as_deref(), Some(server.url("/echo").as_str()));
    assert!(
        !doc.fault && !doc.subsegments[0].fault,
        "the 503 left no trace"
    );
}

#[tokio::test]
async fn calls_to_the_daemon_tcp_address_are_never_recorded() {
    // The daemon's TCP address is the echo server (so the test sees the headers it got), its
    // UDP address the collector.
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let recorder = Recorder::builder()
        .daemon_address(format!("tcp:{} udp:{}", server.addr, collector.addr()))
        .sampler(AlwaysSample)
        .ignore_env()
        .build()
        .unwrap();
    let client = client(XRayMiddleware::new());

    let (header, doc) = traced(&recorder, &collector, async {
        let res = client.get(server.url("/echo")).send().await.unwrap();
        echoed_trace_header(res).await
    })
    .await;

    assert_eq!(header, None);
    assert!(doc.subsegments.is_empty(), "{doc:#?}");
}

#[tokio::test]
async fn calls_to_the_daemon_sampling_proxy_are_never_recorded() {
    // A collector that also serves the daemon's sampling API on the same port, like the daemon.
    let rules = LocalRules::from_json(
        r#"{"version": 2, "rules": [], "default": {"fixed_target": 1, "rate": 0.05}}"#,
    )
    .unwrap();
    let collector = Collector::builder().sampling_rules(rules).start().unwrap();
    let recorder = collector.recorder("caller");
    let client = client(XRayMiddleware::new());

    let (status, doc) = traced(&recorder, &collector, async {
        client
            .post(format!("http://{}/GetSamplingRules", collector.addr()))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status()
    })
    .await;

    assert_eq!(status, 200, "the daemon answered");
    assert!(doc.subsegments.is_empty(), "{doc:#?}");
}
