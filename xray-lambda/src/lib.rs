//! AWS X-Ray for functions on AWS Lambda.
//!
//! Lambda records the function's segment itself and hands each invocation a trace header
//! (`Root`, `Parent` = the function's segment, `Sampled`). This crate turns that header into a
//! *facade* segment that is never sent: subsegments begun during the invocation are sent as
//! independent subsegments under the function's segment, following Lambda's sampling
//! decision. After each invocation the emitter is flushed, because Lambda freezes the process
//! as soon as the handler returns.
//!
//! Two layers, one per way of writing a function:
//!
//! - [`XRayLambdaLayer`] for `lambda_runtime` services (`LambdaEvent<T>` in): the facade is
//!   current while the handler runs, so [`capture`](xray_core::capture), `xray-reqwest` calls
//!   and `xray-aws-sdk` calls attach to the function's segment.
//! - [`XRayHttpLayer`] for `lambda_http` services (API Gateway REST and HTTP APIs, ALB,
//!   function URLs): each invocation also gets a subsegment with the event's `http` block
//!   (request, response status and length, error and fault flags), current while the handler
//!   runs. Feature `http`, on by default.
//!
//! ```no_run
//! use lambda_runtime::{service_fn, Error, LambdaEvent};
//! use tower::ServiceBuilder;
//! use xray_lambda::XRayLambdaLayer;
//!
//! async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<serde_json::Value, Error> {
//!     let n = xray_core::capture("compute", || 6 * 7);
//!     Ok(serde_json::json!({ "answer": n, "request": event.context.request_id }))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let service = ServiceBuilder::new()
//!         .layer(XRayLambdaLayer::new())
//!         .service(service_fn(handler));
//!     lambda_runtime::run(service).await
//! }
//! ```
//!
//! With `lambda_http`:
//!
//! ```no_run
//! # #[cfg(feature = "http")] mod f {
//! use lambda_http::{service_fn, tower::Layer, Error, Request};
//! use xray_lambda::XRayHttpLayer;
//!
//! async fn handler(req: Request) -> Result<String, Error> {
//!     Ok(xray_core::capture("greet", || format!("hello from {}", req.uri().path())))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     lambda_http::run(XRayHttpLayer::new().layer(service_fn(handler))).await
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! The trace header comes from the invocation's context (`Context::xray_trace_id`), else from
//! the `_X_AMZN_TRACE_ID` environment variable. Without a usable header (`Root` and `Parent`),
//! nothing is recorded and the handler runs unchanged.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "http")]
mod http;
mod invocation;
mod layer;
mod service;

pub mod future;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::{TracedResponse, XRayHttp, XRayHttpLayer};
pub use invocation::{begin_invocation, is_lambda, TRACE_ENV};
pub use layer::XRayLambdaLayer;
pub use service::XRayLambda;

pub use xray_core;

#[cfg(all(doctest, feature = "http"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
