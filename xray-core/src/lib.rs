//! The AWS X-Ray recorder for Rust.
//!
//! `xray-core` records segments and subsegments, decides sampling, carries the current segment
//! across `.await`, and sends finished documents to the X-Ray daemon over UDP without blocking
//! the request path. Framework adapters (`xray-tower`, `xray-actix`, `xray-reqwest`,
//! `xray-aws-sdk`) build on it; application code mostly uses [`capture`], [`current`] and the
//! annotation helpers.
//!
//! ```
//! use xray_core::{emitter::MemoryEmitter, Recorder};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let emitter = MemoryEmitter::new();
//! let recorder = Recorder::builder()
//!     .service_name("checkout")
//!     .sampler(xray_core::sampling::AlwaysSample)
//!     .emitter(emitter.clone())
//!     .build()
//!     .unwrap();
//!
//! // An adapter does this for every request:
//! let segment = recorder.begin_segment("checkout", None);
//! xray_core::context::scope(segment.clone(), async {
//!     // Handler code finds the segment without passing it around.
//!     xray_core::put_annotation("order_id", 1234);
//!     let price = xray_core::capture_async("price", async { 9.99 }).await;
//!     xray_core::put_metadata("price", price);
//! })
//! .await;
//! segment.end();
//!
//! let docs = emitter.documents();
//! assert_eq!(docs.len(), 1);
//! assert_eq!(docs[0].annotations["order_id"], 1234);
//! assert_eq!(docs[0].subsegments[0].name, "price");
//! # }
//! ```
//!
//! # Work outside a request
//!
//! A scheduled job, a queue consumer loop or a CLI command has no request to hang a segment
//! on. [`in_segment`] and [`in_segment_async`] run a closure or a future as a segment of its
//! own, the Rust form of Python's `with xray_recorder.in_segment(name):`; [`try_in_segment`]
//! and [`try_in_segment_async`] also record an `Err` as the cause. They use the process-wide
//! recorder; the [`Recorder`] methods of the same names use yours. Each run is a new trace,
//! sampled by the recorder's sampler with the segment's name as service name; the segment is
//! current while the work runs, and ends exactly once: when the work returns, when it panics
//! (`fault`, then the panic continues), or when its future is dropped before it finished
//! (`error`, a `Cancelled` cause). See [`crate::lifecycle`] for the rules.
//!
//! ```
//! # use xray_core::{emitter::MemoryEmitter, sampling::AlwaysSample, Recorder};
//! # #[derive(Debug)] struct QueueError;
//! # impl std::fmt::Display for QueueError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("queue unavailable") } }
//! # impl std::error::Error for QueueError {}
//! # async fn receive() -> Result<Vec<u32>, QueueError> { Err(QueueError) }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # let emitter = MemoryEmitter::new();
//! # let recorder = Recorder::builder().sampler(AlwaysSample).emitter(emitter.clone()).ignore_env().build().unwrap();
//! // One pass of a consumer loop: a segment per batch.
//! let batch = recorder
//!     .try_in_segment_async("orders-consumer", async {
//!         let messages = xray_core::try_capture_async("receive", receive()).await?;
//!         for m in &messages {
//!             xray_core::capture_async("handle", async move { m * 2 }).await;
//!         }
//!         Ok::<_, QueueError>(messages.len())
//!     })
//!     .await;
//! assert!(batch.is_err());
//! let doc = &emitter.documents()[0];
//! assert!(doc.fault);                                  // the error is the segment's cause
//! assert_eq!(doc.subsegments[0].name, "receive");
//! # }
//! ```
//!
//! A short-lived process should [`flush`](Recorder::flush) the recorder before it exits.
//!
//! Inside a segment, [`capture`] and [`capture_async`] run code as a subsegment;
//! [`begin_subsegment`] begins one by hand and makes it current until its guard drops (on
//! the same thread, and not across an `.await`: see its documentation).
#![deny(missing_docs)]
// One module sends datagrams through libc (`sendmmsg`, `sendmsg` with UDP segmentation
// offload, `getsockopt`, and the socket's ICMP error queue through `setsockopt` and
// `recvmsg`); its `unsafe` blocks carry their proofs (SECURITY.md §6).
#![deny(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod model;
mod recorder;

pub mod daemon;
pub mod emitter;
pub mod http;
mod httpc;
pub mod lifecycle;
pub mod plugins;
pub mod sampling;
pub mod sqs;

pub use model::{annotation, document, header, id, naming, stack, time, w3c};
pub use recorder::context;

use model::{entity, json};

pub use annotation::AnnotationValue;
pub use context::{current, FutureExt};
pub use document::Document;
pub use entity::{Entity, EntityGuard, EntityKind, Namespace};
pub use header::{Sampled, TraceHeader};
pub use id::{EntityId, TraceId};
pub use plugins::RuntimeEnvironment;
pub use recorder::capture::{
    begin_subsegment, capture, capture_async, try_capture, try_capture_async, SubsegmentGuard,
};
pub use recorder::in_segment::{
    in_segment, in_segment_async, try_in_segment, try_in_segment_async, InSegment,
};
pub use recorder::{
    ConfigError, ContextMissing, IncomingSampled, Recorder, RecorderBuilder, SDK_NAME, SDK_VERSION,
};

/// Returned by [`try_current`] when no segment is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no X-Ray segment is current: the code runs outside a traced request or a spawned task lost it (see FutureExt::in_current_segment)")]
pub struct ContextMissingError;

/// The current entity, or an error saying why there is none.
pub fn try_current() -> Result<Entity, ContextMissingError> {
    current().ok_or(ContextMissingError)
}

/// Applies the global recorder's context-missing strategy for an operation that found no
/// current entity.
pub(crate) fn context_missing(operation: &str) {
    if missing_is_expected() {
        return;
    }
    match Recorder::global().context_missing() {
        ContextMissing::LogError => {
            tracing::error!(operation, "{ContextMissingError}");
        }
        ContextMissing::RuntimeError => {
            panic!("{ContextMissingError} (operation: {operation})");
        }
        ContextMissing::IgnoreError => {}
    }
}

/// Reports that `operation` found no current segment, following the process-wide recorder's
/// context-missing strategy, for instrumentation that must never fail the work it observes
/// (outbound HTTP and AWS calls): `RUNTIME_ERROR` logs an error like `LOG_ERROR` instead of
/// panicking, and `IGNORE_ERROR` stays silent.
pub fn report_missing_context(operation: &str) {
    if missing_is_expected() {
        return;
    }
    match Recorder::global().context_missing() {
        ContextMissing::LogError | ContextMissing::RuntimeError => {
            tracing::error!(operation, "{ContextMissingError}");
        }
        ContextMissing::IgnoreError => {}
    }
}

/// With the SDK disabled there is nothing to be missing: the code runs for a request served
/// with the SDK disabled, or the process-wide recorder is disabled.
fn missing_is_expected() -> bool {
    context::in_disabled_request() || !Recorder::global().is_enabled()
}

fn with_current(operation: &str, f: impl FnOnce(&Entity)) {
    match current() {
        Some(e) => f(&e),
        None => context_missing(operation),
    }
}

/// Adds an annotation to the current entity.
pub fn put_annotation(key: &str, value: impl Into<AnnotationValue>) {
    with_current("put_annotation", |e| e.put_annotation(key, value));
}

/// Adds metadata (namespace `default`) to the current entity.
pub fn put_metadata(key: &str, value: impl serde::Serialize) {
    with_current("put_metadata", |e| e.put_metadata(key, value));
}

/// Sets the end user on the current segment.
pub fn set_user(user: &str) {
    with_current("set_user", |e| e.set_user(user));
}

/// Whether the current entity is sampled; false when there is none. Use it to skip costly
/// annotations.
pub fn is_sampled() -> bool {
    current().is_some_and(|e| e.is_sampled())
}

// The workspace README's code blocks need the adapters and frameworks, so they run as
// doctests of the `examples` crate, which depends on all of them.
