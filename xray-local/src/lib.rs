//! A local stand-in for the X-Ray daemon: receives segment documents over UDP, assembles them
//! into traces, checks them against the rules the X-Ray service applies, and shows them.
//!
//! As a library it is the test double every crate of this workspace uses: a [`Collector`]
//! listens on an ephemeral loopback port, a recorder sends to it over real UDP, and tests wait
//! for the trace and assert on its tree.
//!
//! ```
//! use std::time::Duration;
//! use xray_local::Collector;
//!
//! let collector = Collector::start().unwrap();
//! let recorder = collector.recorder("svc");
//! recorder.begin_segment("svc", None).end();
//! let docs = collector.wait_for_documents(1, Duration::from_secs(5));
//! assert_eq!(docs[0].name, "svc");
//!
//! let trace = collector
//!     .wait_for_trace_id(docs[0].trace_id.unwrap(), Duration::from_secs(5))
//!     .unwrap();
//! assert_eq!(trace.segments().len(), 1);
//! ```
//!
//! Modules: [`collector`] (UDP and storage), [`trace`] (assembly), [`validate`] (the rules),
//! [`render`] (tree and timeline text), [`sampling_api`] (the daemon's sampling API served
//! from a local rules file), [`forward`] (relay to a real daemon).
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]

pub mod collector;
pub mod document_log;
pub mod escape;
pub mod forward;
mod http_conn;
pub mod limits;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod render;
pub mod sampling_api;
pub mod trace;
pub mod validate;

pub use collector::{Collector, CollectorBuilder, CollectorStats, Received};
pub use render::{render_trace, RenderOptions};
pub use trace::{Trace, TraceEntity, TreeNode};
pub use validate::Violation;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
