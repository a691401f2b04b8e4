//! `capture`: run a closure or future as a subsegment of the current entity, or begin one by
//! hand with [`begin_subsegment`].

use std::future::Future;

use crate::context::{self, current, EnterGuard};
use crate::entity::{Entity, EntityGuard};

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

/// Begins a subsegment `name` of the current entity and makes it current until the returned
/// guard drops, which ends it: the Rust form of Python's `xray_recorder.begin_subsegment(name)`
/// followed by `end_subsegment()`. Without a current entity it returns `None` (the
/// context-missing strategy decides what is logged).
///
/// The guard is bound to the thread that made it (it is not `Send`), because "current" is
/// per thread: it cannot be moved to, or dropped on, another thread. **Do not hold it across
/// an `.await`**: while the task is suspended, other tasks that run on the same thread
/// (a current-thread runtime, actix-web's workers) would see this subsegment as theirs. In
/// async code use [`capture_async`], whose subsegment is current only while its future is
/// polled. Clippy can enforce this: list `xray_core::SubsegmentGuard` under
/// `await-holding-invalid-types` in `clippy.toml`.
///
/// ```
/// # use xray_core::{emitter::MemoryEmitter, sampling::AlwaysSample, Recorder};
/// # let emitter = MemoryEmitter::new();
/// # let recorder = Recorder::builder().sampler(AlwaysSample).emitter(emitter.clone()).ignore_env().build().unwrap();
/// recorder.in_segment("job", || {
///     let step = xray_core::begin_subsegment("load").expect("a segment is current");
///     // Captures and annotations now land in `load`.
///     xray_core::capture("parse", || ());
///     xray_core::put_annotation("rows", 3);
///     drop(step); // `load` ends; the segment is current again
/// });
/// let load = &emitter.documents()[0].subsegments[0];
/// assert_eq!(load.subsegments[0].name, "parse");
/// assert_eq!(load.annotations["rows"], 3);
/// ```
pub fn begin_subsegment(name: &str) -> Option<SubsegmentGuard> {
    let sub = begin(name)?;
    Some(SubsegmentGuard {
        _current: context::enter(sub.clone()),
        guard: sub.guard(),
    })
}

/// A subsegment begun by [`begin_subsegment`]: current on this thread until the guard drops,
/// and ended then (marked `fault` when the thread is panicking). Not `Send`: see
/// [`begin_subsegment`] for why, and why it must not be held across an `.await`.
///
/// ```compile_fail,E0277
/// fn send<T: Send>() {}
/// send::<xray_core::SubsegmentGuard>(); // the guard stays on its thread
/// ```
#[must_use = "the subsegment ends, and stops being current, as soon as the guard is dropped"]
#[derive(Debug)]
pub struct SubsegmentGuard {
    // Fields drop in order: the subsegment stops being current, then ends.
    _current: EnterGuard,
    guard: EntityGuard,
}

impl SubsegmentGuard {
    /// The subsegment.
    pub fn entity(&self) -> &Entity {
        self.guard.entity()
    }
}

impl std::ops::Deref for SubsegmentGuard {
    type Target = Entity;
    fn deref(&self) -> &Entity {
        self.guard.entity()
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
