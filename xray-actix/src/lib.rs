//! AWS X-Ray for [actix-web] 4: one segment per request.
//!
//! Wrap an [`App`] (or a [`Scope`]) with [`XRay`]. Each request then gets a segment that
//! continues the caller's trace, is current while the handler runs (so [`xray_core::current`],
//! [`xray_core::capture_async`] and instrumented clients such as `xray-reqwest` find it), and
//! is sent to the X-Ray daemon once the response body is finished.
//!
//! # Example
//!
//! ```
//! use actix_web::{test, web, App, HttpResponse};
//! use xray_actix::{Segment, XRay};
//! use xray_core::{emitter::MemoryEmitter, sampling::AlwaysSample, Recorder};
//!
//! async fn checkout(segment: Segment) -> HttpResponse {
//!     segment.put_annotation("cart_size", 3);
//!     // Anything below the handler finds the segment without it being passed down:
//!     let total = xray_core::capture_async("price", async { 42 }).await;
//!     HttpResponse::Ok().body(total.to_string())
//! }
//!
//! # #[actix_web::main]
//! # async fn main() {
//! // Applications usually rely on `Recorder::global()`, configured from the environment
//! // (`AWS_XRAY_DAEMON_ADDRESS`, ...). Here the documents stay in memory.
//! let emitter = MemoryEmitter::new();
//! let recorder = Recorder::builder()
//!     .sampler(AlwaysSample)
//!     .emitter(emitter.clone())
//!     .ignore_env()
//!     .build()
//!     .unwrap();
//!
//! let app = test::init_service(
//!     App::new()
//!         .wrap(XRay::new("checkout").with_recorder(recorder))
//!         .route("/checkout", web::post().to(checkout)),
//! )
//! .await;
//!
//! let req = test::TestRequest::post()
//!     .uri("/checkout")
//!     .insert_header(("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?"))
//!     .to_request();
//! let res = test::call_service(&app, req).await;
//! assert_eq!(
//!     res.headers().get("x-amzn-trace-id").unwrap(),
//!     "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
//! );
//! // The segment ends once the body has been sent.
//! assert_eq!(test::read_body(res).await, "42");
//!
//! let doc = &emitter.documents()[0];
//! assert_eq!(doc.name, "checkout");
//! assert_eq!(doc.annotations["cart_size"], 3);
//! assert_eq!(doc.subsegments[0].name, "price");
//! assert_eq!(doc.http.response.as_ref().unwrap().status, Some(200));
//! # }
//! ```
//!
//! # Options
//!
//! - [`XRay::with_dynamic_naming`]: name segments after the `Host` header (port left out) when
//!   it matches a wildcard pattern such as `*.example.com`; other requests keep the fixed name.
//! - [`XRay::with_recorder`]: record with a given [`Recorder`](xray_core::Recorder) instead of
//!   the process-wide one.
//! - [`XRay::record_query`]: keep the query string in the recorded URL (off by default).
//!
//! These are the same options, with the same names, as `xray_tower::XRayLayer`.
//!
//! # What is recorded
//!
//! The mapping itself lives in [`xray_core::http`], shared by every X-Ray server adapter; this
//! crate only reads actix's types.
//!
//! - The incoming `X-Amzn-Trace-Id`: `Root` and `Parent` are continued; `Sampled=1`/`0`
//!   decides; `Sampled=?` or no decision lets the recorder's sampler decide. A malformed
//!   header starts a new trace (with a warning).
//! - `http.request`: method, URL (`scheme://host/path`; `https` when the server listens with
//!   TLS or `X-Forwarded-Proto` says so), `User-Agent`, and the client IP: the first address
//!   of `X-Forwarded-For` (with `x_forwarded_for: true`) else the socket's peer address.
//!   `X-Forwarded-For` is set by whoever sends the request: behind no proxy it can be forged.
//! - `http.response`: status and content length. For streamed bodies, whose size is not known
//!   in advance, the bytes actually sent are recorded when the body ends.
//! - Flags from the status: 4xx `error`, 429 `error` + `throttle`, 5xx `fault`.
//! - Handler errors (`Err(actix_web::Error)` or any [`ResponseError`]): besides the flags
//!   their status implies, a `cause` with the error's message, and as type the name at the
//!   start of its `Debug` output (`OutOfStock { .. }` gives `OutOfStock`) or, when there is
//!   none, the status reason (`Bad Request`).
//! - Panics: `fault` and a `cause` with the panic message and type `panic`.
//!
//! The response carries `X-Amzn-Trace-Id: Root=<trace id>`, plus `;Sampled=<0|1>` when the
//! caller asked with `Sampled=?`.
//!
//! # When the segment ends
//!
//! Not when the handler returns, but when the response body is done: after its last chunk,
//! when it fails, or when it is dropped because the client went away mid-body. The segment
//! then covers the whole transfer of streamed responses. Body streams are polled with the
//! segment current, so work they do is recorded too.
//!
//! # Panics in handlers
//!
//! actix-web 4 does not catch panics: a panicking handler unwinds the task that serves the
//! connection, the connection is closed without a response, and the worker goes on serving
//! other connections. The middleware records the panic (`fault`, the message as cause), ends
//! the segment once, and lets the panic continue as before.
//!
//! # Spawned work
//!
//! The current segment is a task-local value: it does not follow `actix_web::rt::spawn` (or
//! `tokio::spawn`) by itself. Carry it with [`FutureExt::in_current_segment`]:
//!
//! ```
//! use xray_core::FutureExt;
//!
//! async fn handler() -> &'static str {
//!     actix_web::rt::spawn(
//!         async { xray_core::capture_async("audit", async { /* ... */ }).await }
//!             .in_current_segment(),
//!     );
//!     "ok"
//! }
//! ```
//!
//! # Getting the segment in a handler
//!
//! The [`Segment`] extractor gives the request's segment; `Option<Segment>` tolerates routes
//! that are not wrapped. The segment is also in the request extensions as an
//! [`Entity`](xray_core::Entity), so `web::ReqData<xray_core::Entity>` works as well.
//!
//! # App and scopes
//!
//! [`XRay`] can wrap the whole [`App`] or only some [`Scope`]s. When both an `App` and one of
//! its scopes are wrapped, the outer middleware records the request and the inner one does
//! nothing, so there is never more than one segment per request. Register `XRay` last with
//! [`App::wrap`] so that it is the outermost middleware and also sees what the others do.
//!
//! [actix-web]: actix_web
//! [`App`]: actix_web::App
//! [`App::wrap`]: actix_web::App::wrap
//! [`Scope`]: actix_web::Scope
//! [`ResponseError`]: actix_web::ResponseError
//! [`FutureExt::in_current_segment`]: xray_core::FutureExt::in_current_segment
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

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
