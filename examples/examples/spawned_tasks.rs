//! Keeping spawned tasks in the request's trace.
//!
//! The current segment lives in a task-local: `tokio::spawn` starts a task without it.
//! `in_current_segment()` carries it over; `spawn_blocking` needs it passed by hand.
//!
//! `cargo run -p examples --example spawned_tasks` prints the resulting trace.

use std::time::Duration;

use xray_core::{context, FutureExt};
use xray_local::{render_trace, Collector, RenderOptions};

async fn handler() {
    // Carried over: these subsegments attach to the segment.
    let tasks: Vec<_> = (1..=3)
        .map(|i| {
            tokio::spawn(
                async move {
                    let name = format!("task-{i}");
                    xray_core::capture_async(&name, tokio::time::sleep(Duration::from_millis(10)))
                        .await;
                }
                .in_current_segment(),
            )
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }

    // Blocking work: take the entity along and make it current on the blocking thread.
    let entity = context::current();
    let _ = tokio::task::spawn_blocking(move || {
        context::maybe_sync_scope(entity, || {
            xray_core::capture("blocking hash", || {
                std::thread::sleep(Duration::from_millis(5))
            })
        })
    })
    .await;

    // Not carried over: a plain spawned task has no current segment, so subsegments begun
    // there are not recorded (and the context-missing strategy logs an error).
    let plain = tokio::spawn(async { xray_core::current().is_some() }).await;
    let carried = tokio::spawn(async { xray_core::current().is_some() }.in_current_segment()).await;
    println!(
        "tokio::spawn(fut) sees the segment: {}",
        plain.unwrap_or(false)
    );
    println!(
        "tokio::spawn(fut.in_current_segment()) sees it: {}\n",
        carried.unwrap_or(false)
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let collector = Collector::start()?;
    let recorder = collector.recorder("spawned-tasks");

    let segment = recorder.begin_segment("spawned-tasks", None);
    context::scope(segment.clone(), handler()).await;
    segment.end();

    let trace = collector
        .wait_for_trace(|_| true, Duration::from_secs(5))
        .ok_or("no trace arrived")?;
    print!("{}", render_trace(&trace, &RenderOptions::default()));
    Ok(())
}
