//! `capture`: run a closure or future as a subsegment of the current entity.

use std::future::Future;

use crate::context::{self, current};
use crate::entity::Entity;

/// Runs `f` inside a subsegment `name` of the current entity. Without a current entity, `f`
/// just runs (the context-missing strategy decides what is logged). A panic inside `f` marks
/// the subsegment `fault` before unwinding on.
///
/// ```
/// let total = xray_core::capture("sum", || (1..=10).sum::<u32>());
/// assert_eq!(total, 55);
/// ```
pub fn capture<R>(name: &str, f: impl FnOnce() -> R) -> R {
    match begin(name) {
        Some(sub) => {
            let guard = sub.clone().guard();
            let r = context::sync_scope(sub, f);
            drop(guard);
            r
        }
        None => f(),
    }
}

/// Like [`capture`] for a fallible closure: an `Err` is recorded as `fault` with its cause
/// chain, and returned unchanged.
pub fn try_capture<T, E>(name: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>
where
    E: std::error::Error + 'static,
{
    match begin(name) {
        Some(sub) => {
            let guard = sub.clone().guard();
            let r = context::sync_scope(sub.clone(), f);
            if let Err(e) = &r {
                sub.add_error(e);
            }
            drop(guard);
            r
        }
        None => f(),
    }
}

/// Awaits `fut` inside a subsegment `name` of the current entity. The subsegment ends when the
/// future completes, or when it is dropped before completing (cancellation).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let n = xray_core::capture_async("fetch", async { 42 }).await;
/// assert_eq!(n, 42);
/// # }
/// ```
pub async fn capture_async<F: Future>(name: &str, fut: F) -> F::Output {
    match begin(name) {
        Some(sub) => {
            let _guard = sub.clone().guard();
            context::scope(sub, fut).await
        }
        None => fut.await,
    }
}

/// Like [`capture_async`] for a fallible future: an `Err` is recorded with its cause chain.
pub async fn try_capture_async<T, E, F>(name: &str, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: std::error::Error + 'static,
{
    match begin(name) {
        Some(sub) => {
            let _guard = sub.clone().guard();
            let r = context::scope(sub.clone(), fut).await;
            if let Err(e) = &r {
                sub.add_error(e);
            }
            r
        }
        None => fut.await,
    }
}

fn begin(name: &str) -> Option<Entity> {
    match current() {
        Some(parent) => Some(parent.begin_subsegment(name)),
        None => {
            crate::context_missing(name);
            None
        }
    }
}
