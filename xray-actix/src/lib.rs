//! AWS X-Ray middleware for actix-web 4.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
mod extract;
pub mod future;
mod middleware;

pub use extract::{MissingSegment, Segment};
pub use middleware::{XRay, XRayMiddleware};
pub use xray_core;
