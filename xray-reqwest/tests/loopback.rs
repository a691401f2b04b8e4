//! The middleware against real servers on loopback, with documents read from a real UDP
//! collector.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
use xray_core::document::Cause;
use xray_core::{context, Document, Entity, Sampled, TraceHeader, TraceId};
use xray_local::Collector;
use xray_reqwest::{Parent, XRayMiddleware};

/// Runs `f` with a fresh sampled segment current, ends the segment and returns what `f`
/// returned with the segment document as received.
async fn traced<F, T>(collector: &Collector, f: F) -> (T, Document)
where
    F: std::future::Future<Output = T>,
{
    let recorder = collector.recorder("caller");
    let segment = recorder.begin_segment("caller", None);
    let out = context::scope(segment.clone(), f).await;
    segment.end();
    let doc = segment_doc(collector, segment.trace_id());
    (out, doc)
}

fn only_subsegment(doc: &Document) -> &Document {
    assert_eq!(
        doc.subsegments.len(),
        1,
        "one call, one subsegment: {doc:?}"
    );
    &doc.subsegments[0]
}

fn exceptions(doc: &Document) -> &[xray_core::document::Exception] {
    match &doc.cause {
        Some(Cause::Exceptions(data)) => &data.exceptions,
        other => panic!("expected exceptions in cause, got {other:?}"),
    }
}

#[tokio::test]
async fn injected_header_names_the_subsegment_as_parent() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());

    let (header, doc) = traced(&collector, async {
        let res = client.get(server.url("/echo")).send().await.unwrap();
        echoed_trace_header(res).await
    })
    .await;

    let sub = only_subsegment(&doc);
    let header = header.expect("the echo server received a trace header");
    let fields = header_fields(&header);
    assert_eq!(fields["Root"], doc.trace_id.unwrap().to_string());
    assert_eq!(fields["Parent"], sub.id.to_string());
    assert_eq!(fields["Sampled"], "1");
    assert_eq!(
        header,
        format!("Root={};Parent={};Sampled=1", doc.trace_id.unwrap(), sub.id)
    );
    assert_eq!(sub.name, "127.0.0.1");
    assert_eq!(sub.namespace.as_deref(), Some("remote"));
    let req = sub.http.request.as_ref().unwrap();
    assert_eq!(req.method.as_deref(), Some("GET"));
    assert_eq!(req.url.as_deref(), Some(server.url("/echo").as_str()));
    assert!(req.traced);
    let res = sub.http.response.as_ref().unwrap();
    assert_eq!(res.status, Some(200));
    assert!(res.content_length.unwrap() > 0);
    assert!(sub.end_time.is_some() && !sub.in_progress);
    assert!(!sub.error && !sub.throttle && !sub.fault);
    assert_eq!(collector.garbage_count(), 0);
}

#[tokio::test]
async fn extra_pairs_of_the_incoming_header_are_forwarded() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());
    let incoming: TraceHeader = format!(
        "Root={};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5;Tenant=blue",
        TraceId::new()
    )
    .parse()
    .unwrap();
    let segment = collector
        .recorder("caller")
        .begin_segment("caller", Some(&incoming));

    let res = context::scope(segment.clone(), client.get(server.url("/echo")).send())
        .await
        .unwrap();
    let header = echoed_trace_header(res).await.unwrap();
    segment.end();

    let doc = segment_doc(&collector, incoming.root.unwrap());
    let sub = only_subsegment(&doc);
    assert_eq!(
        header,
        format!(
            "Root={};Parent={};Sampled=1;Lineage=a87bd80c:1|68fd508a:5;Tenant=blue",
            incoming.root.unwrap(),
            sub.id
        )
    );
}

#[tokio::test]
async fn status_codes_set_error_throttle_and_fault_flags() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());

    let (statuses, doc) = traced(&collector, async {
        let mut statuses = Vec::new();
        for code in [200, 404, 429, 500, 503] {
            let res = client
                .get(server.url(&format!("/status/{code}")))
                .send()
                .await
                .expect("an HTTP error status is a response, not an error");
            statuses.push(res.status().as_u16());
        }
        statuses
    })
    .await;

    assert_eq!(statuses, [200, 404, 429, 500, 503]);
    let flags: Vec<(u16, bool, bool, bool)> = doc
        .subsegments
        .iter()
        .map(|s| {
            let status = s.http.response.as_ref().unwrap().status.unwrap();
            (status, s.error, s.throttle, s.fault)
        })
        .collect();
    assert_eq!(
        flags,
        [
            (200, false, false, false),
            (404, true, false, false),
            (429, true, true, false),
            (500, false, false, true),
            (503, false, false, true),
        ]
    );
    for s in &doc.subsegments {
        assert!(s.cause.is_none(), "a status is not an exception: {s:?}");
        assert_eq!(s.http.response.as_ref().unwrap().content_length, Some(10));
    }
}

#[tokio::test]
async fn user_info_is_never_recorded_and_the_query_is_kept_by_default() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());
    let url = format!("http://alice:s3cret@{}/echo?page=2", server.addr);

    let (_, doc) = traced(&collector, async {
        client.get(&url).send().await.unwrap();
    })
    .await;

    let recorded = only_subsegment(&doc).http.request.as_ref().unwrap();
    assert_eq!(
        recorded.url.as_deref(),
        Some(format!("http://{}/echo?page=2", server.addr).as_str())
    );
}

#[tokio::test]
async fn record_query_off_leaves_the_query_out_of_the_recorded_url() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new().record_query(false));

    let (_, doc) = traced(&collector, async {
        client
            .get(server.url("/echo?token=abc"))
            .send()
            .await
            .unwrap();
    })
    .await;

    let recorded = only_subsegment(&doc).http.request.as_ref().unwrap();
    assert_eq!(recorded.url.as_deref(), Some(server.url("/echo").as_str()));
}

#[tokio::test]
async fn subsegment_name_can_be_fixed_or_chosen_per_request() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let fixed = client(XRayMiddleware::new().with_name("payments"));
    let per_request = client(
        XRayMiddleware::new().with_name_fn(|req: &reqwest::Request| {
            format!("{} {}", req.method(), req.url().path())
        }),
    );

    let (_, doc) = traced(&collector, async {
        fixed.get(server.url("/echo")).send().await.unwrap();
        per_request.post(server.url("/echo")).send().await.unwrap();
    })
    .await;

    let names: Vec<&str> = doc.subsegments.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["payments", "POST /echo"]);
}

#[tokio::test]
async fn a_trace_header_set_by_the_caller_is_replaced_unless_overwrite_is_off() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let by_hand = format!("Root={};Parent=1111111111111111;Sampled=1", TraceId::new());
    let keeps = client(XRayMiddleware::new().overwrite_header(false));
    let overwrites = client(XRayMiddleware::new());

    let ((kept, replaced), doc) = traced(&collector, async {
        let kept = keeps
            .get(server.url("/echo"))
            .header("X-Amzn-Trace-Id", &by_hand)
            .send()
            .await
            .unwrap();
        let kept = echoed_trace_header(kept).await.unwrap();
        let replaced = overwrites
            .get(server.url("/echo"))
            .header("X-Amzn-Trace-Id", &by_hand)
            .send()
            .await
            .unwrap();
        (kept, echoed_trace_header(replaced).await.unwrap())
    })
    .await;

    assert_eq!(kept, by_hand);
    let first = &doc.subsegments[0];
    assert!(
        !first.http.request.as_ref().unwrap().traced,
        "our header was not sent, so the callee is not traced under us"
    );
    let second = &doc.subsegments[1];
    assert_eq!(
        header_fields(&replaced)["Parent"],
        second.id.to_string(),
        "the overwritten header names our subsegment"
    );
    assert!(second.http.request.as_ref().unwrap().traced);
}

#[tokio::test]
async fn unsampled_trace_records_nothing_but_sends_sampled_0_with_the_same_root() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());
    let recorder = collector.recorder("caller");
    let incoming = TraceHeader::new(TraceId::new(), None, Some(Sampled::No));
    let segment = recorder.begin_segment("caller", Some(&incoming));
    assert!(!segment.is_sampled());

    let res = context::scope(segment.clone(), client.get(server.url("/echo")).send())
        .await
        .unwrap();
    let header = echoed_trace_header(res).await.unwrap();
    segment.end();

    let fields = header_fields(&header);
    assert_eq!(fields["Root"], incoming.root.unwrap().to_string());
    assert_eq!(fields["Sampled"], "0");
    assert_eq!(fields["Parent"].len(), 16);

    // A sampled trace sent afterwards over the same socket marks when everything before it
    // has arrived.
    let (_, barrier) = traced(&collector, async {}).await;
    let docs = collector.documents();
    assert!(docs.iter().any(|d| d.trace_id == barrier.trace_id));
    assert!(
        docs.iter().all(|d| d.trace_id != incoming.root),
        "nothing of an unsampled trace is sent: {docs:?}"
    );
}

#[tokio::test]
async fn without_a_current_segment_the_call_goes_through_untouched() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());

    let res = client.get(server.url("/echo")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(echoed_trace_header(res).await, None);

    let (_, barrier) = traced(&collector, async {}).await;
    assert!(barrier.subsegments.is_empty());
    assert_eq!(collector.documents().len(), 1, "only the barrier segment");
}

#[tokio::test]
async fn explicit_parent_extension_is_used_when_no_segment_is_current() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());
    let segment = collector.recorder("worker").begin_segment("worker", None);

    // Spawned without `in_current_segment`: the context does not follow, the extension does.
    let parent = Parent(segment.clone());
    let url = server.url("/echo");
    let header = tokio::spawn(async move {
        assert!(context::current().is_none());
        let res = client.get(url).with_extension(parent).send().await.unwrap();
        echoed_trace_header(res).await
    })
    .await
    .unwrap()
    .unwrap();
    segment.end();

    let doc = segment_doc(&collector, segment.trace_id());
    let sub = only_subsegment(&doc);
    assert_eq!(header_fields(&header)["Parent"], sub.id.to_string());
}

#[tokio::test]
async fn explicit_parent_wins_over_the_current_segment() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());

    let (_, doc) = traced(&collector, async {
        let held: Entity = context::current().unwrap().begin_subsegment("batch");
        client
            .get(server.url("/echo"))
            .with_extension(Parent(held.clone()))
            .send()
            .await
            .unwrap();
        held.end();
    })
    .await;

    let batch = only_subsegment(&doc);
    assert_eq!(batch.name, "batch");
    assert_eq!(batch.subsegments.len(), 1);
    assert_eq!(batch.subsegments[0].name, "127.0.0.1");
}

#[tokio::test]
async fn refused_connection_ends_the_subsegment_with_fault_and_a_remote_cause() {
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());
    let addr = closed_port().await;

    let (result, doc) = traced(&collector, async {
        client.get(format!("http://{addr}/x")).send().await
    })
    .await;

    let err = result.expect_err("nothing listens there");
    assert!(err.is_connect() && !err.is_middleware(), "{err:?}");
    let sub = only_subsegment(&doc);
    assert!(sub.fault && !sub.error);
    assert!(sub.http.response.is_none());
    assert!(sub.end_time.is_some());
    let ex = exceptions(sub);
    assert_eq!(ex[0].kind.as_deref(), Some("reqwest::Error"));
    assert!(ex.iter().all(|e| e.remote));
    assert!(
        ex.len() > 1,
        "the source chain (connect error, io error) is kept: {ex:?}"
    );
}

#[tokio::test]
async fn client_timeout_is_a_fault_and_the_error_is_returned_unchanged() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());

    let (result, doc) = traced(&collector, async {
        client
            .get(server.url("/slow"))
            .timeout(Duration::from_millis(200))
            .send()
            .await
    })
    .await;

    let err = result.expect_err("the server answers after 2 s");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        err.url().map(|u| u.as_str()),
        Some(server.url("/slow").as_str())
    );
    let sub = only_subsegment(&doc);
    assert!(sub.fault);
    let elapsed = sub.end_time.unwrap().as_secs_f64() - sub.start_time.as_secs_f64();
    assert!(
        elapsed < 1.5,
        "ended at the timeout, not at the answer: {elapsed}"
    );
    assert!(!exceptions(sub).is_empty());
}

/// A resolver that fails every lookup, the way a DNS failure reaches reqwest.
struct NoSuchHost;

impl reqwest::dns::Resolve for NoSuchHost {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no such host: {host}"),
            )
            .into())
        })
    }
}

#[tokio::test]
async fn dns_failure_is_a_fault_with_the_resolver_error_in_the_cause() {
    let collector = Collector::start().unwrap();
    let inner = reqwest::Client::builder()
        .dns_resolver(Arc::new(NoSuchHost))
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(inner)
        .with(XRayMiddleware::new())
        .build();

    let (result, doc) = traced(&collector, async {
        client.get("http://orders.internal/x").send().await
    })
    .await;

    assert!(result.unwrap_err().is_connect());
    let sub = only_subsegment(&doc);
    assert_eq!(sub.name, "orders.internal");
    assert!(sub.fault);
    let messages: Vec<&str> = exceptions(sub)
        .iter()
        .filter_map(|e| e.message.as_deref())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("no such host: orders.internal")),
        "{messages:?}"
    );
}

#[tokio::test]
async fn secrets_in_the_url_do_not_reach_the_recorded_cause() {
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new().record_query(false));
    let addr = closed_port().await;

    let (result, doc) = traced(&collector, async {
        client
            .get(format!("http://alice:s3cret@{addr}/x?token=abc"))
            .send()
            .await
    })
    .await;

    let err = result.unwrap_err();
    assert!(
        err.to_string().contains("token=abc"),
        "the caller's error is untouched: {err}"
    );
    let json = only_subsegment(&doc).to_json();
    assert!(!json.contains("s3cret"), "{json}");
    assert!(!json.contains("token=abc"), "{json}");
    assert!(json.contains(&format!("http://{addr}/x")), "{json}");
}

#[tokio::test]
async fn subsegment_ends_at_the_response_head_not_when_the_body_is_read() {
    let addr: SocketAddr = start_slow_body_server(Duration::from_millis(1500)).await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());
    let recorder = collector.recorder("caller");
    let segment = recorder.begin_segment("caller", None);

    let res = context::scope(
        segment.clone(),
        client.get(format!("http://{addr}/")).send(),
    )
    .await
    .unwrap();
    // The segment ends (and is sent) while the body is still on its way.
    segment.end();
    let doc = segment_doc(&collector, segment.trace_id());
    let body = res.bytes().await.unwrap();

    assert_eq!(&body[..], b"0123456789");
    let sub = only_subsegment(&doc);
    assert!(sub.end_time.is_some() && !sub.in_progress, "{sub:?}");
    let response = sub.http.response.as_ref().unwrap();
    assert_eq!(response.status, Some(200));
    assert_eq!(response.content_length, Some(10));
}

#[tokio::test]
async fn a_call_dropped_before_its_response_ends_as_cancelled() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());

    let (outcome, doc) = traced(&collector, async {
        tokio::time::timeout(
            Duration::from_millis(200),
            client.get(server.url("/slow")).send(),
        )
        .await
    })
    .await;

    assert!(outcome.is_err(), "the caller's timeout fired first");
    let sub = only_subsegment(&doc);
    assert!(sub.end_time.is_some() && !sub.in_progress, "{sub:?}");
    assert!(sub.http.response.is_none());
    assert!(
        sub.error && !sub.fault,
        "the caller gave up: an error, not a fault"
    );
    let kinds: Vec<_> = exceptions(sub).iter().map(|e| e.kind.as_deref()).collect();
    assert_eq!(kinds, [Some("Cancelled")]);
}

#[tokio::test]
async fn each_retry_gets_its_own_subsegment_when_xray_is_inside_the_retry_middleware() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(3);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .with(XRayMiddleware::new())
        .build();

    let (status, doc) = traced(&collector, async {
        let res = client.get(server.url("/flaky")).send().await.unwrap();
        res.status().as_u16()
    })
    .await;

    assert_eq!(status, 200);
    let attempts: Vec<(u16, bool)> = doc
        .subsegments
        .iter()
        .map(|s| (s.http.response.as_ref().unwrap().status.unwrap(), s.fault))
        .collect();
    assert_eq!(attempts, [(500, true), (500, true), (200, false)]);
    let ids: std::collections::HashSet<_> = doc.subsegments.iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 3);
}

#[tokio::test]
async fn xray_outside_the_retry_middleware_records_one_subsegment_for_all_attempts() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(3);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(XRayMiddleware::new())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .build();

    let (_, doc) = traced(&collector, async {
        client.get(server.url("/flaky")).send().await.unwrap();
    })
    .await;

    assert_eq!(
        server.flaky_hits.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    let sub = only_subsegment(&doc);
    assert_eq!(sub.http.response.as_ref().unwrap().status, Some(200));
    assert!(!sub.fault);
}

#[tokio::test]
async fn concurrent_calls_each_get_their_own_subsegment_and_header() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());

    let (headers, doc) = traced(&collector, async {
        let a = client.get(server.url("/echo")).send();
        let b = client.get(server.url("/echo")).send();
        let c = client.get(server.url("/echo")).send();
        let (a, b, c) = tokio::join!(a, b, c);
        let mut headers = Vec::new();
        for res in [a, b, c] {
            headers.push(echoed_trace_header(res.unwrap()).await.unwrap());
        }
        headers
    })
    .await;

    let mut parents: Vec<String> = headers
        .iter()
        .map(|h| header_fields(h)["Parent"].clone())
        .collect();
    let mut ids: Vec<String> = doc.subsegments.iter().map(|s| s.id.to_string()).collect();
    parents.sort();
    ids.sort();
    assert_eq!(parents, ids);
}

#[tokio::test]
async fn credentials_in_the_query_are_redacted_from_the_recorded_url_but_sent() {
    let server = start_server().await;
    let collector = Collector::start().unwrap();
    let client = client(XRayMiddleware::new());
    let path =
        "/echo?X-Amz-Credential=AKIAEXAMPLE%2F20261205&X-Amz-Signature=deadbeef&sig=s3cr3t&part=2";

    let (status, doc) = traced(&collector, async {
        client
            .get(server.url(path))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
    .await;

    assert_eq!(status, 200);
    let url = only_subsegment(&doc)
        .http
        .request
        .as_ref()
        .unwrap()
        .url
        .clone()
        .unwrap();
    assert!(
        url.ends_with(
            "/echo?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&sig=REDACTED&part=2"
        ),
        "{url}"
    );
    assert!(!url.contains("deadbeef") && !url.contains("AKIAEXAMPLE") && !url.contains("s3cr3t"));
}
