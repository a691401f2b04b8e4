//! X-Ray tracing for tower HTTP services: axum, hyper, tonic, and HTTP clients.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod client;
mod client_addr;
#[cfg(feature = "axum")]
mod extract;
pub mod future;
mod layer;
mod on_request;
mod on_response;
mod outcome;
mod service;

pub use body::ResponseBody;
pub use client::{XRayClient, XRayClientLayer};
pub use client_addr::ClientAddr;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::{MissingSegment, Segment};
pub use layer::XRayLayer;
pub use on_request::OnRequest;
pub use on_response::OnResponse;
pub use service::{segment, XRay};
pub use xray_core;
