//! A bridge from the [`tracing`] crate to AWS X-Ray.
//!
//! Services instrumented with `tracing` (`#[instrument]`, `info_span!`) get X-Ray subsegments
//! for their spans without a second instrumentation, and their log lines carry the X-Ray
//! trace id so that CloudWatch Logs and X-Ray link up.
//!
//! - [`SubsegmentLayer`]: a `tracing-subscriber` [`Layer`]. While an X-Ray segment is current
//!   (inside a request handled by `xray-tower` or `xray-actix`, or any
//!   [`xray_core::context::scope`]), each span that opens becomes a subsegment of the current
//!   entity, named after the span, and ends when the span closes.
//! - [`XRayFormat`]: a `fmt` event formatter that starts each log line with
//!   `trace_id=1-... segment_id=...`; [`current_ids`] for other log formats.
//!
//! # Example
//!
//! ```
//! use tracing::instrument;
//! use tracing_subscriber::layer::SubscriberExt;
//! use xray_core::{emitter::MemoryEmitter, sampling::AlwaysSample, Recorder};
//!
//! #[instrument(fields(xray.order_id = order_id))]
//! async fn load_order(order_id: u64) -> u64 {
//!     price(order_id)
//! }
//!
//! #[instrument]
//! fn price(order_id: u64) -> u64 {
//!     order_id * 2
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let subscriber = tracing_subscriber::registry().with(xray_tracing::SubsegmentLayer::new());
//! let _default = tracing::subscriber::set_default(subscriber);
//!
//! let emitter = MemoryEmitter::new();
//! let recorder = Recorder::builder().sampler(AlwaysSample).emitter(emitter.clone()).build().unwrap();
//!
//! // What a server adapter does for each request:
//! let segment = recorder.begin_segment("orders", None);
//! xray_core::context::scope(segment.clone(), load_order(21)).await;
//! segment.end();
//!
//! // Spans outside any segment record nothing.
//! price(1);
//!
//! let doc = &emitter.documents()[0];
//! let load = &doc.subsegments[0];
//! assert_eq!(load.name, "load_order");
//! assert_eq!(load.annotations["order_id"], 21);
//! assert_eq!(load.metadata["tracing"]["order_id"], 21);
//! assert_eq!(load.subsegments[0].name, "price");
//! # }
//! ```
//!
//! # When spans become subsegments
//!
//! - **Opening a span** (`on_new_span`): when the span is recorded (level `INFO` or more
//!   severe by default, target not skipped), its parent is found: for a span with an explicit
//!   `parent:`, the subsegment of that span (or its nearest recorded ancestor); otherwise the
//!   current entity, which is the subsegment of the span being entered, or whatever was made
//!   current inside it. With no parent the span is left alone: outside any segment a span
//!   costs one thread-local lookup.
//! - **Entering a span** makes its subsegment the current entity until the span is exited,
//!   so code inside it (`xray_core::capture`, `xray-reqwest`, `xray-aws-sdk` calls) attaches
//!   to the span's subsegment. This follows `.instrument(span)` into every poll.
//! - **Closing the span** (its last handle dropped) ends the subsegment.
//! - **An `ERROR` event with an `error` field** inside a span (`#[instrument(err)]` emits one
//!   when the function returns `Err`) gives the span's subsegment `fault` and a `cause` whose
//!   exception message is the error (with its `source()` chain when the error was recorded
//!   as `&dyn Error`). Turn it off with [`SubsegmentLayer::record_errors`].
//!
//! Fields are recorded as annotations or metadata as [`FieldMapping`] says: by default,
//! `xray.`-prefixed fields become annotations and the others metadata in the `tracing`
//! namespace.
//!
//! # Spawned tasks
//!
//! A span carries its subsegment: `tokio::spawn(work().in_current_span())` (or
//! `.instrument(span)`) runs `work` with the span's subsegment current, so spans opened and
//! calls made in the task nest under it. Without a span,
//! [`xray_core::FutureExt::in_current_segment`] carries the current entity.
//!
//! # Not counted twice
//!
//! The X-Ray adapters create no spans of their own, and spans from X-Ray's crates and from
//! the AWS SDK (which `xray-aws-sdk` already records) are skipped by target; see
//! [`SubsegmentLayer::skip_target`]. Library spans are mostly `debug_span!`s and stay out at
//! the default level.
//!
//! # Log correlation
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry()
//!     .with(xray_tracing::SubsegmentLayer::new())
//!     .with(tracing_subscriber::fmt::layer().event_format(xray_tracing::XRayFormat::default()));
//! # drop(subscriber);
//! ```
//!
//! [`Layer`]: tracing_subscriber::Layer
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod fault;
mod fields;
mod format;
mod layer;

pub use fields::FieldMapping;
pub use format::{current_ids, TraceIds, XRayFormat};
pub use layer::SubsegmentLayer;
pub use xray_core;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
