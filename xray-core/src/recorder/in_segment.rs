//! `in_segment`: work done outside any request (a cron job, one pass of a queue consumer, a CLI
//! command) recorded as a segment of its own, the Rust form of Python's
//! `xray_recorder.in_segment(name)`.
//!
//! The segment begins a new trace and goes through the recorder's sampler like a request would
//! (a [`SamplingRequest`](crate::sampling::SamplingRequest) with the segment's name as service
//! name and nothing else). While the work runs the segment is current, so
//! [`capture`](crate::capture), [`put_annotation`](crate::put_annotation) and the HTTP and AWS
//! clients record under it. It ends exactly once, by the rules of [`crate::lifecycle`]:
//!
//! | the work | flags | cause |
//! |---|---|---|
//! | returns (or returns `Ok` in the `try_` forms) | none | none |
//! | returns `Err` (`try_` forms) | `fault` | the error and its `source()` chain, the error's type as `type` |
//! | panics | `fault` | type `panic`, the panic's message; the panic then continues unchanged |
//! | is a future dropped before it finished | `error` | type `Cancelled` |

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::entity::Entity;
use crate::lifecycle::{Ending, Exchange};

use super::Recorder;

/// How the work's output ends the segment.
type Record<O> = fn(&O, &mut Exchange);

fn complete<R>(_: &R, exchange: &mut Exchange) {
    exchange.complete();
}

fn complete_result<T, E: std::error::Error + 'static>(
    result: &Result<T, E>,
    exchange: &mut Exchange,
) {
    match result {
        Ok(_) => exchange.complete(),
        Err(e) => exchange.fail(e, std::any::type_name::<E>()),
    }
}

/// The segment of a piece of work, ended exactly once. Dropped while still open, it ends as
/// [`Ending::DroppedUnfinished`] (or as panicked when the thread is unwinding).
#[derive(Debug, Default)]
struct Run(Exchange);

impl Drop for Run {
    fn drop(&mut self) {
        if self.0.is_open() {
            let ending = if std::thread::panicking() {
                Ending::Panicked(None)
            } else {
                Ending::DroppedUnfinished
            };
            self.0.end(ending);
        }
    }
}

fn run_sync<R>(recorder: &Recorder, name: &str, f: impl FnOnce() -> R, record: Record<R>) -> R {
    let segment = recorder.begin_segment(name, None);
    let mut run = Run(Exchange::server(segment));
    // A panic ends the segment as panicked (with the message) and continues unwinding.
    let out = run.0.catch_panic_in_scope(f);
    record(&out, &mut run.0);
    out
}

impl Recorder {
    /// Runs `f` as a new segment `name` of this recorder, current while `f` runs: the Rust
    /// form of Python's `with xray_recorder.in_segment(name):`. A panic inside `f` is
    /// recorded (`fault`, the panic's message) and continues. See
    /// [`in_segment`](crate::in_segment) for the details; this method records to this
    /// recorder instead of the process-wide one.
    ///
    /// ```
    /// use xray_core::{emitter::MemoryEmitter, sampling::AlwaysSample, Recorder};
    ///
    /// let emitter = MemoryEmitter::new();
    /// let recorder = Recorder::builder()
    ///     .sampler(AlwaysSample)
    ///     .emitter(emitter.clone())
    ///     .ignore_env()
    ///     .build()
    ///     .unwrap();
    /// let rows = recorder.in_segment("nightly-report", || {
    ///     xray_core::put_annotation("kind", "nightly");
    ///     xray_core::capture("query", || 42)
    /// });
    /// assert_eq!(rows, 42);
    /// let doc = &emitter.documents()[0];
    /// assert_eq!(doc.name, "nightly-report");
    /// assert_eq!(doc.subsegments[0].name, "query");
    /// ```
    pub fn in_segment<R>(&self, name: &str, f: impl FnOnce() -> R) -> R {
        run_sync(self, name, f, complete::<R>)
    }

    /// Like [`in_segment`](Self::in_segment) for a fallible closure: an `Err` is recorded as
    /// `fault` with the error and its `source()` chain as cause, and returned unchanged.
    pub fn try_in_segment<T, E>(&self, name: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>
    where
        E: std::error::Error + 'static,
    {
        run_sync(self, name, f, complete_result::<T, E>)
    }

    /// Runs `fut` as a new segment `name` of this recorder: the segment begins when the future
    /// is first polled, is current whenever it is polled, and ends when it completes, panics
    /// (recorded, then the panic continues) or is dropped before it finished (`error`, a
    /// `Cancelled` cause). See [`in_segment_async`](crate::in_segment_async).
    ///
    /// ```
    /// use xray_core::{emitter::MemoryEmitter, sampling::AlwaysSample, Recorder};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let emitter = MemoryEmitter::new();
    /// let recorder = Recorder::builder()
    ///     .sampler(AlwaysSample)
    ///     .emitter(emitter.clone())
    ///     .ignore_env()
    ///     .build()
    ///     .unwrap();
    /// // One pass of a consumer loop, spawned like any other task.
    /// let handled = tokio::spawn(recorder.in_segment_async("orders-consumer", async {
    ///     xray_core::capture_async("handle", async { 3 }).await
    /// }));
    /// assert_eq!(handled.await.unwrap(), 3);
    /// assert_eq!(emitter.documents()[0].subsegments[0].name, "handle");
    /// # }
    /// ```
    pub fn in_segment_async<F: Future>(&self, name: &str, fut: F) -> InSegment<F> {
        InSegment::new(self.clone(), name, fut, complete::<F::Output>)
    }

    /// Like [`in_segment_async`](Self::in_segment_async) for a fallible future: an `Err` is
    /// recorded as `fault` with its cause chain, and returned unchanged.
    pub fn try_in_segment_async<T, E, F>(&self, name: &str, fut: F) -> InSegment<F>
    where
        F: Future<Output = Result<T, E>>,
        E: std::error::Error + 'static,
    {
        InSegment::new(self.clone(), name, fut, complete_result::<T, E>)
    }
}

/// Runs `f` as a new segment `name`, current while `f` runs, recorded by the process-wide
/// recorder ([`Recorder::global`]): work outside any request (a cron job, a CLI command), the
/// Rust form of Python's `with xray_recorder.in_segment(name):`. Use
/// [`Recorder::in_segment`] for a recorder of your own.
///
/// - The segment starts a new trace, even when called inside a traced request (use
///   [`capture`](crate::capture) for a subsegment instead); the sampler decides with `name` as
///   the service name. Unsampled, `f` still runs with the segment current (nothing is
///   recorded; outbound calls send `Sampled=0`).
/// - The name is used as given (`AWS_XRAY_TRACING_NAME` renames the segments of server
///   adapters, not this one, as in Python).
/// - A panic inside `f` marks the segment `fault` with the panic's message as cause, ends it,
///   and continues unwinding.
/// - The segment is handed to the emitter when it ends; a short-lived process should call
///   [`Recorder::flush`] (or [`shutdown`](Recorder::shutdown)) before it exits.
///
/// ```
/// let total = xray_core::in_segment("cleanup", || {
///     xray_core::capture("sweep", || (1..=10).sum::<u32>())
/// });
/// assert_eq!(total, 55);
/// ```
pub fn in_segment<R>(name: &str, f: impl FnOnce() -> R) -> R {
    Recorder::global().in_segment(name, f)
}

/// Like [`in_segment`] for a fallible closure: an `Err` is recorded as `fault` with the error
/// and its `source()` chain as cause, and returned unchanged.
///
/// ```
/// let parsed: Result<u8, std::num::ParseIntError> =
///     xray_core::try_in_segment("import", || "300".parse::<u8>());
/// assert!(parsed.is_err());
/// ```
pub fn try_in_segment<T, E>(name: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>
where
    E: std::error::Error + 'static,
{
    Recorder::global().try_in_segment(name, f)
}

/// Runs `fut` as a new segment `name` of the process-wide recorder: a scheduled job, one
/// message of a queue consumer loop, a CLI command's `main`. The segment begins when the
/// future is first polled, is current whenever it is polled, and ends exactly once: when the
/// future completes, when it panics (recorded, then the panic continues) or when it is
/// dropped before it finished (`error`, a `Cancelled` cause). See [`in_segment`] for the
/// rest; [`Recorder::in_segment_async`] records to a recorder of your own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let n = xray_core::in_segment_async("poll-queue", async {
///     xray_core::capture_async("receive", async { 10 }).await
/// })
/// .await;
/// assert_eq!(n, 10);
/// # }
/// ```
pub fn in_segment_async<F: Future>(name: &str, fut: F) -> InSegment<F> {
    Recorder::global().in_segment_async(name, fut)
}

/// Like [`in_segment_async`] for a fallible future: an `Err` is recorded as `fault` with the
/// error and its `source()` chain as cause, and returned unchanged.
pub fn try_in_segment_async<T, E, F>(name: &str, fut: F) -> InSegment<F>
where
    F: Future<Output = Result<T, E>>,
    E: std::error::Error + 'static,
{
    Recorder::global().try_in_segment_async(name, fut)
}

pin_project_lite::pin_project! {
    /// A future run as a segment of its own; returned by [`in_segment_async`] and
    /// [`try_in_segment_async`] and the [`Recorder`] methods of the same names.
    ///
    /// It is `Send` when the inner future is, so it can be handed to `tokio::spawn`.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct InSegment<F: Future> {
        #[pin]
        fut: F,
        // Before the first poll: who records the segment, and its name.
        start: Option<(Recorder, Box<str>)>,
        // While running: the segment, made current for each poll.
        segment: Option<Entity>,
        run: Run,
        record: Record<F::Output>,
    }
}

impl<F: Future> InSegment<F> {
    fn new(recorder: Recorder, name: &str, fut: F, record: Record<F::Output>) -> Self {
        Self {
            fut,
            start: Some((recorder, name.into())),
            segment: None,
            run: Run::default(),
            record,
        }
    }

    /// The segment, once the future has been polled and until it completes.
    pub fn segment(&self) -> Option<&Entity> {
        self.segment.as_ref()
    }
}

impl<F: Future> Future for InSegment<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some((recorder, name)) = this.start.take() {
            let segment = recorder.begin_segment(&name, None);
            *this.run = Run(Exchange::server(segment.clone()));
            *this.segment = Some(segment);
        }
        if this.segment.is_none() {
            // Polled again after it completed: the inner future decides what that means.
            return this.fut.poll(cx);
        }
        let fut = this.fut;
        // The exchange lends the segment to the context for the poll.
        let poll = this.run.0.catch_panic_in_scope(|| fut.poll(cx));
        if let Poll::Ready(out) = &poll {
            (this.record)(out, &mut this.run.0);
            *this.segment = None;
        }
        poll
    }
}

impl<F: Future> fmt::Debug for InSegment<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InSegment")
            .field("name", &self.start.as_ref().map(|(_, n)| n))
            .field("segment", &self.segment)
            .finish_non_exhaustive()
    }
}
