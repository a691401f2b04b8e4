//! `lambda_http` functions: a subsegment per invocation with the event's `http` block.
//!
//! See [`XRayHttpLayer`] for what is recorded.

mod layer;
mod request;
mod response;
mod service;

pub(crate) mod future;

pub use layer::XRayHttpLayer;
pub use response::TracedResponse;
pub use service::XRayHttp;
