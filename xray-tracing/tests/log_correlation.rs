//! Log lines formatted with `XRayFormat` carry the ids of the segment they belong to.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::routing::get;
use axum::Router;
use tracing::{info, instrument};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use xray_local::Collector;
use xray_tower::XRayLayer;
use xray_tracing::{SubsegmentLayer, XRayFormat};

use common::{child, serve, WAIT};

/// Everything the fmt layer wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn captured() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(SubsegmentLayer::new())
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(logs.clone())
                    .event_format(XRayFormat::default()),
            );
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

fn lines_with(marker: &str) -> Vec<String> {
    let logs = captured().0.lock().unwrap();
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| l.contains(marker))
        .map(str::to_string)
        .collect()
}

#[instrument]
async fn checkout() -> &'static str {
    info!("charged the card of checkout-7f3a");
    "ok"
}

async fn handler() -> &'static str {
    info!("handler started for checkout-7f3a");
    checkout().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_carry_the_trace_id_of_the_emitted_segment() {
    captured();
    let collector = Collector::start().unwrap();
    let app = Router::new()
        .route("/checkout", get(handler))
        .layer(XRayLayer::new("shop").with_recorder(collector.recorder("shop")));
    let addr = serve(app).await;
    let res = reqwest::get(format!("http://{addr}/checkout"))
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "ok");

    let docs = collector.wait_for_documents(1, WAIT);
    let segment = &docs[0];
    let trace_id = segment.trace_id.unwrap();
    let sub = child(segment, "checkout");

    let in_handler = lines_with("handler started for checkout-7f3a");
    assert_eq!(in_handler.len(), 1);
    assert!(
        in_handler[0].starts_with(&format!("trace_id={trace_id} segment_id={} ", segment.id)),
        "{}",
        in_handler[0]
    );
    // Inside the span, the line points at the span's subsegment.
    let in_span = lines_with("charged the card of checkout-7f3a");
    assert_eq!(in_span.len(), 1);
    assert!(
        in_span[0].starts_with(&format!("trace_id={trace_id} segment_id={} ", sub.id)),
        "{}",
        in_span[0]
    );
}

#[test]
fn log_lines_outside_a_segment_are_left_as_they_are() {
    captured();
    info!("background job 91c2 ran");
    let lines = lines_with("background job 91c2 ran");
    assert_eq!(lines.len(), 1);
    assert!(!lines[0].contains("trace_id="), "{}", lines[0]);
}
