//! Every shape of document our recorder emits goes over real UDP to a collector, passes the
//! X-Ray rules, and survives the X-Ray API: `PutTraceSegments` leaves nothing unprocessed and
//! `BatchGetTraces` returns exactly the documents sent (moto's server; skipped loudly without
//! `XRAY_TEST_MOTO_ENDPOINT`, failed with `XRAY_REQUIRE_PEERS=1`).

use std::time::Duration;

use interop::xray_api::{self, XRayApi};
use interop::{assert_no_violations, WAIT};
use xray_core::document::{HttpRequest, Sql};
use xray_core::sampling::NeverSample;
use xray_core::{EntityId, Namespace, Recorder, TraceHeader, TraceId};
use xray_local::Collector;

#[derive(Debug)]
struct OutOfStock {
    source: std::io::Error,
}

impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("item 42 is out of stock")
    }
}

impl std::error::Error for OutOfStock {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A web request segment with everything a server adapter and a handler can add.
fn web_segment(recorder: &Recorder) -> TraceId {
    let segment = recorder.begin_segment("shapes-web", None);
    let mut request = HttpRequest::default();
    request.method = Some("POST".into());
    request.url = Some("https://shop.example.com/orders/42".into());
    request.user_agent = Some("curl/8.5.0".into());
    request.client_ip = Some("203.0.113.7".into());
    request.x_forwarded_for = true;
    segment.set_http_request(request);
    segment.set_user("alice");
    segment.put_annotation("order_id", 42);
    segment.put_annotation("ratio", 0.25);
    segment.put_annotation("vip", true);
    segment.put_annotation("region_name", "eu-west-1");
    segment.put_metadata(
        "cart",
        serde_json::json!({"items": [1, 2, 3], "note": null}),
    );
    segment.put_metadata_in("debug", "raw", "é ✓ \"quoted\" \n newline");

    // An AWS SDK call.
    let dynamo = segment.begin_subsegment("DynamoDB");
    dynamo.set_namespace(Namespace::Aws);
    dynamo.set_aws("operation", "GetItem");
    dynamo.set_aws("region", "eu-west-1");
    dynamo.set_aws("request_id", "ABCDEF0123456789");
    dynamo.set_aws("table_name", "orders");
    dynamo.set_aws("retries", 1);
    dynamo.set_http_response(200, Some(311));
    dynamo.end();

    // A downstream HTTP call that failed with a 503 (fault) ...
    let payment = segment.begin_subsegment("payments.example.com");
    payment.set_namespace(Namespace::Remote);
    let mut request = HttpRequest::default();
    request.method = Some("POST".into());
    request.url = Some("https://payments.example.com/charge".into());
    request.traced = true;
    payment.set_http_request(request);
    payment.set_http_response(503, Some(0));
    payment.end();
    // ... one that was throttled ...
    let rate = segment.begin_subsegment("rates.example.com");
    rate.set_namespace(Namespace::Remote);
    rate.set_http_response(429, None);
    rate.end();
    // ... and one that never got a response.
    let refused = segment.begin_subsegment("stock.example.com");
    refused.set_namespace(Namespace::Remote);
    refused.add_error(&std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connection refused",
    ));
    refused.end();

    // A database query.
    let sql = segment.begin_subsegment("orders@db.example.com");
    sql.set_namespace(Namespace::Remote);
    let mut query = Sql::default();
    query.url = Some("postgresql://db.example.com:5432/orders".into());
    query.sanitized_query = Some("SELECT * FROM orders WHERE id = $1".into());
    query.database_type = Some("PostgreSQL".into());
    query.database_version = Some("16.2".into());
    query.driver_version = Some("sqlx-0.8".into());
    query.user = Some("app".into());
    query.preparation = Some("statement".into());
    sql.set_sql(query);
    sql.end();

    // Local work, nested three deep, an error with a source chain, and a recorded panic.
    let price = segment.begin_subsegment("price");
    let tax = price.begin_subsegment("tax");
    let rounding = tax.begin_subsegment("rounding");
    rounding.put_annotation("mode", "half_even");
    rounding.end();
    tax.add_error(&OutOfStock {
        source: std::io::Error::other("warehouse offline"),
    });
    tax.end();
    price.add_precursor_id(dynamo.id());
    price.end();
    let render = segment.begin_subsegment("render");
    let payload: Box<dyn std::any::Any + Send> = Box::new("template missing");
    render.add_panic(payload.as_ref());
    render.end();

    segment.set_http_response(404, Some(17));
    segment.end();
    segment.trace_id()
}

/// A segment continuing a caller's trace, with a subsegment that ends after the segment was
/// sent: it travels on its own, as an independent subsegment.
fn continued_segment_with_a_late_subsegment(recorder: &Recorder) -> TraceId {
    let header = TraceHeader::from_bytes(
        format!(
            "Root={};Parent={};Sampled=1;Lineage=a87bd80c:1",
            TraceId::new(),
            EntityId::new()
        )
        .as_bytes(),
    )
    .expect("a valid header");
    let segment = recorder.begin_segment("shapes-continued", Some(&header));
    let late = segment.begin_subsegment("background upload");
    segment.set_http_response(500, None);
    segment.end();
    late.put_annotation("bytes", 1_048_576);
    late.end();
    segment.trace_id()
}

/// A segment with 100 subsegments: past the streaming threshold, completed subsegments are
/// sent early as independent subsegments.
fn streamed_segment(recorder: &Recorder) -> TraceId {
    let segment = recorder.begin_segment("shapes-streamed", None);
    for i in 0..100 {
        let sub = segment.begin_subsegment(&format!("item {i}"));
        sub.put_annotation("index", i);
        sub.end();
    }
    segment.end();
    segment.trace_id()
}

#[test]
fn every_document_shape_we_emit_follows_the_rules_and_survives_the_xray_api() {
    let collector = Collector::start().expect("the collector binds");
    let recorder = collector.recorder("shapes");

    let web = web_segment(&recorder);
    let continued = continued_segment_with_a_late_subsegment(&recorder);
    let streamed = streamed_segment(&recorder);
    assert!(
        recorder.flush(Duration::from_secs(5)),
        "everything was sent"
    );

    let web_trace = collector.wait_for_trace_id(web, WAIT).expect("web trace");
    assert_eq!(
        web_trace.outline(),
        "shapes-web\n  DynamoDB\n  payments.example.com\n  rates.example.com\n  \
         stock.example.com\n  orders@db.example.com\n  price\n    tax\n      rounding\n  \
         render\n"
    );
    let doc = &web_trace.documents()[0];
    assert!(doc.error && !doc.fault, "404: error, not fault");
    assert!(doc.subsegments[1].fault, "503: fault");
    assert!(
        doc.subsegments[2].throttle && doc.subsegments[2].error,
        "429: throttle"
    );
    assert!(
        doc.subsegments[3].cause.is_some(),
        "the refused call has a cause"
    );
    assert_eq!(doc.subsegments[0].namespace.as_deref(), Some("aws"));
    assert!(doc.subsegments[4].sql.is_some());

    let continued_trace = collector
        .wait_for_trace_id(continued, WAIT)
        .expect("continued trace");
    let docs = continued_trace.documents();
    assert_eq!(
        docs.len(),
        2,
        "the segment and the late subsegment: {docs:#?}"
    );
    assert!(docs[0].parent_id.is_some(), "the caller's Parent is kept");
    assert_eq!(docs[1].kind.as_deref(), Some("subsegment"));
    assert_eq!(docs[1].parent_id, Some(docs[0].id));

    let streamed_trace = collector
        .wait_for_trace_id(streamed, WAIT)
        .expect("streamed trace");
    assert_eq!(
        streamed_trace.len(),
        101,
        "the segment and its 100 subsegments"
    );
    assert!(
        streamed_trace.documents().len() > 1,
        "subsegments were streamed on their own"
    );
    assert_eq!(streamed_trace.orphan_count(), 0);

    assert_no_violations(&collector);
    if let Some(rt) = xray_api::finish(&collector) {
        assert_eq!(rt.traces, 3);
        assert_eq!(rt.documents, collector.documents().len());
    }
}

#[test]
fn unsampled_traces_reach_neither_the_daemon_nor_the_xray_api() {
    let collector = Collector::start().expect("the collector binds");
    let never = Recorder::builder()
        .service_name("shapes-unsampled")
        .daemon_address(collector.daemon_address())
        .sampler(NeverSample)
        .ignore_env()
        .build()
        .expect("a valid recorder");
    let always = collector.recorder("shapes-sampled");

    // Unsampled by our sampler, and by a caller's decision.
    let by_sampler = never.begin_segment("shapes-unsampled", None);
    by_sampler.begin_subsegment("work").end();
    by_sampler.end();
    let header = TraceHeader::from_bytes(format!("Root={};Sampled=0", TraceId::new()).as_bytes())
        .expect("a valid header");
    let by_caller = always.begin_segment("shapes-sampled", Some(&header));
    by_caller.begin_subsegment("work").end();
    by_caller.end();
    // A sampled one, sent after them from the same recorders' sockets, as a marker.
    let marker = always.begin_segment("marker", None);
    marker.end();
    assert!(never.flush(Duration::from_secs(5)));
    assert!(always.flush(Duration::from_secs(5)));
    collector
        .wait_for_trace_id(marker.trace_id(), WAIT)
        .expect("the marker arrives");

    let unsampled = [by_sampler.trace_id(), by_caller.trace_id()];
    let docs = collector.documents();
    assert_eq!(docs.len(), 1, "only the marker: {docs:#?}");
    assert!(docs
        .iter()
        .all(|d| !unsampled.contains(&d.trace_id.unwrap())));
    assert_no_violations(&collector);

    let Some(api) = XRayApi::from_env("the X-Ray API check of unsampled traces") else {
        return;
    };
    xray_api::assert_round_trip(&api, &collector);
    let ids: Vec<String> = unsampled.iter().map(ToString::to_string).collect();
    let traces = api.batch_get_traces(&ids).expect("BatchGetTraces answers");
    assert!(traces.segments.is_empty(), "{traces:?}");
    assert_eq!(traces.unprocessed_trace_ids, ids);
}
