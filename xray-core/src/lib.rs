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
#![deny(missing_docs)]
// One module sends datagrams through libc (`sendmmsg`, `sendmsg` with UDP segmentation
// offload, `getsockopt`); its `unsafe` blocks carry their proofs (SECURITY.md §6).
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

pub use model::{annotation, document, header, id, naming, time, w3c};
pub use recorder::context;

use model::{entity, json};

pub use annotation::AnnotationValue;
pub use context::{current, FutureExt};
pub use document::Document;
pub use entity::{Entity, EntityGuard, EntityKind, Namespace};
pub use header::{Sampled, TraceHeader};
pub use id::{EntityId, TraceId};
pub use plugins::RuntimeEnvironment;
pub use recorder::capture::{capture, capture_async, try_capture, try_capture_async};
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
    match Recorder::global().context_missing() {
        ContextMissing::LogError | ContextMissing::RuntimeError => {
            tracing::error!(operation, "{ContextMissingError}");
        }
        ContextMissing::IgnoreError => {}
    }
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

/// Begins a subsegment of the current entity, ending when the returned guard drops.
pub fn begin_subsegment(name: &str) -> Option<EntityGuard> {
    match current() {
        Some(e) => Some(e.begin_subsegment(name).guard()),
        None => {
            context_missing(name);
            None
        }
    }
}

// The workspace README's code blocks need the adapters and frameworks, so they run as
// doctests of the `examples` crate, which depends on all of them.
