//! Spans inside a real axum server become subsegments of its X-Ray segment, in the documents
//! received over UDP.

mod common;

use std::sync::Once;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use tracing::{debug_span, info_span, instrument, Instrument};
use tracing_subscriber::layer::SubscriberExt;
use xray_core::FutureExt;
use xray_local::Collector;
use xray_tower::XRayLayer;
use xray_tracing::{FieldMapping, SubsegmentLayer};

use common::{all_names, child, names, serve, WAIT};

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let layer = SubsegmentLayer::new().fields(FieldMapping::new().annotate("tenant"));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .unwrap();
    });
}

#[instrument(fields(xray.order_id = id, tenant = "acme"))]
async fn load_order(id: u64) -> u64 {
    let price = price(id);
    tokio::time::sleep(Duration::from_millis(2)).await;
    // Carried by the span: `audit` opens its span when the task first runs, elsewhere.
    tokio::spawn(audit().in_current_span()).await.unwrap();
    // Carried by the segment combinator, no span involved.
    tokio::spawn(
        async {
            let _fill = info_span!("cache_fill").entered();
        }
        .in_current_segment(),
    )
    .await
    .unwrap();
    price
}

#[instrument]
fn price(id: u64) -> u64 {
    tax(id) + id
}

#[instrument]
fn tax(id: u64) -> u64 {
    id / 10
}

async fn audit() {
    async {
        xray_core::capture_async("audit_write", tokio::time::sleep(Duration::from_millis(1))).await;
    }
    .instrument(info_span!("audit"))
    .await
}

async fn order(Path(id): Path<u64>) -> String {
    load_order(id).await.to_string()
}

async fn app(collector: &Collector) -> std::net::SocketAddr {
    let router = Router::new()
        .route("/orders/{id}", get(order))
        .route("/errors", get(errors))
        .route("/filtered", get(filtered))
        .route("/lost", get(lost))
        .layer(XRayLayer::new("orders").with_recorder(collector.recorder("orders")));
    serve(router).await
}

async fn get_ok(addr: std::net::SocketAddr, path: &str) -> String {
    let res = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    assert!(res.status().is_success());
    res.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_instrumented_functions_become_the_matching_subsegment_tree() {
    install();
    let collector = Collector::start().unwrap();
    let addr = app(&collector).await;
    assert_eq!(get_ok(addr, "/orders/70").await, "77");

    let docs = collector.wait_for_documents(1, WAIT);
    assert_eq!(docs.len(), 1, "one segment, nothing sent on its own");
    let segment = &docs[0];
    assert_eq!(segment.name, "orders");
    assert_eq!(names(segment), ["load_order"]);
    let load = child(segment, "load_order");
    assert_eq!(names(load), ["price", "audit", "cache_fill"]);
    assert_eq!(names(child(load, "price")), ["tax"]);
    assert_eq!(names(child(load, "audit")), ["audit_write"]);
    // Every subsegment ended, inside its parent's time range.
    segment.walk(&mut |d| {
        assert!(
            d.end_time.is_some() && !d.in_progress,
            "{} left open",
            d.name
        );
        for s in &d.subsegments {
            assert!(
                s.start_time >= d.start_time && s.end_time <= d.end_time,
                "{}",
                s.name
            );
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_fields_become_annotations_and_metadata_as_mapped() {
    install();
    let collector = Collector::start().unwrap();
    let addr = app(&collector).await;
    get_ok(addr, "/orders/7").await;
    let docs = collector.wait_for_documents(1, WAIT);
    let load = child(&docs[0], "load_order");
    assert_eq!(load.annotations["order_id"], 7, "xray. prefix, stripped");
    assert_eq!(load.annotations["tenant"], "acme", "listed field");
    assert_eq!(load.metadata["tracing"]["id"], 7, "other fields: metadata");
    assert!(!load.metadata["tracing"]
        .as_object()
        .unwrap()
        .contains_key("tenant"));
    assert!(load.annotations.get("xray.order_id").is_none());
    assert_eq!(collector.garbage_count(), 0);
    assert!(
        collector.violations().is_empty(),
        "{:?}",
        collector.violations()
    );
}

#[derive(Debug)]
struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}

impl std::error::Error for Declined {}

#[instrument(err)]
async fn charge() -> Result<(), Declined> {
    Err(Declined)
}

#[instrument]
async fn refund() {
    let _ = charge().await;
}

async fn errors() -> &'static str {
    refund().await;
    "handled"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instrument_err_marks_the_span_subsegment_as_fault_with_the_error_as_cause() {
    install();
    let collector = Collector::start().unwrap();
    let addr = app(&collector).await;
    get_ok(addr, "/errors").await;
    let docs = collector.wait_for_documents(1, WAIT);
    let segment = &docs[0];
    let refund = child(segment, "refund");
    let charge = child(refund, "charge");
    assert!(charge.fault);
    let cause = serde_json::to_value(charge.cause.as_ref().unwrap()).unwrap();
    assert_eq!(cause["exceptions"][0]["message"], "card declined");
    // The error was handled above `charge`: nothing else is marked.
    assert!(!refund.fault && !segment.fault && !segment.error);
}

async fn filtered() -> &'static str {
    // Not recorded: too verbose by default, but what opens inside still nests properly.
    let detail = debug_span!("detail");
    async {
        let _inner = info_span!("inner").entered();
    }
    .instrument(detail)
    .await;
    // Not recorded: the target belongs to X-Ray's own crates.
    let _own = info_span!(target: "xray_tower::service", "adapter").entered();
    "ok"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_spans_and_xray_crate_spans_are_not_recorded_but_their_children_are() {
    install();
    let collector = Collector::start().unwrap();
    let addr = app(&collector).await;
    get_ok(addr, "/filtered").await;
    let docs = collector.wait_for_documents(1, WAIT);
    assert_eq!(all_names(&docs[0]), ["orders", "inner"]);
}

async fn lost() -> &'static str {
    // Spawned without carrying the span or the segment: runs outside any segment.
    tokio::spawn(async {
        let _s = info_span!("lost_span").entered();
        assert!(xray_core::current().is_none());
    })
    .await
    .unwrap();
    "ok"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_outside_a_segment_produce_nothing() {
    install();
    let collector = Collector::start().unwrap();
    let addr = app(&collector).await;
    // No segment at all.
    {
        let _s = info_span!("startup").entered();
        assert!(xray_core::current().is_none());
        price(1);
    }
    get_ok(addr, "/lost").await;
    let docs = collector.wait_for_documents(1, WAIT);
    // Give a stray independent subsegment time to arrive, then check none did.
    std::thread::sleep(Duration::from_millis(200));
    let docs_after = collector.documents();
    assert_eq!(docs_after.len(), 1);
    assert_eq!(all_names(&docs[0]), ["orders"]);
}
