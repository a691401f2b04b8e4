//! Subsegments, annotations, metadata and errors from application code.
//!
//! `cargo run -p examples --example capture` records one segment by hand (an adapter does that
//! part for you in a service) and prints what was sent.

use std::time::Duration;

use xray_core::context;
use xray_local::{render_trace, Collector, RenderOptions};

#[derive(Debug, thiserror::Error)]
#[error("card declined")]
struct Declined;

async fn checkout() -> Result<u32, Declined> {
    // Annotations are indexed (searchable in the console); metadata is not.
    xray_core::put_annotation("customer_tier", "gold");
    xray_core::put_metadata("cart", serde_json::json!({"items": 3}));

    // A subsegment around synchronous work...
    let total = xray_core::capture("price", || 3 * 1299);

    // ...around async work, nested subsegments included...
    xray_core::capture_async("reserve stock", async {
        xray_core::capture_async("warehouse-1", tokio::time::sleep(Duration::from_millis(5))).await;
    })
    .await;

    // ...and around fallible work: an `Err` marks it `fault` with the error as cause.
    let charged =
        xray_core::try_capture_async("charge card", async { Err::<(), _>(Declined) }).await;
    if charged.is_err() {
        xray_core::put_annotation("declined", true);
    }
    Ok(total)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let collector = Collector::start()?;
    let recorder = collector.recorder("capture");

    // What a server adapter does for each request:
    let segment = recorder.begin_segment("capture", None);
    let total = context::scope(segment.clone(), checkout()).await?;
    segment.end();

    println!("total: {total}\n");
    let trace = collector
        .wait_for_trace(|_| true, Duration::from_secs(5))
        .ok_or("no trace arrived")?;
    print!("{}", render_trace(&trace, &RenderOptions::default()));
    Ok(())
}
