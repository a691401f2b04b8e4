//! AWS X-Ray tracing for tower HTTP services: axum, hyper, tonic, and tower HTTP clients.
//!
//! [`XRayLayer`] records one X-Ray segment per request. It continues the caller's trace from
//! the `X-Amzn-Trace-Id` header, asks the recorder's sampler when the caller did not decide,
//! records the request and the response, answers with the trace header, and makes the
//! segment the current entity while the handler runs, so that [`xray_core::capture`],
//! `xray-reqwest` and `xray-aws-sdk` calls inside handlers attach to it.
//!
//! # Example
//!
//! ```
//! use std::net::SocketAddr;
//! use axum::{routing::get, Router};
//! use xray_tower::{Segment, XRayLayer};
//!
//! async fn order(segment: Segment) -> &'static str {
//!     segment.put_annotation("order_id", 1234);
//!     // Subsegments find the request's segment by themselves.
//!     xray_core::capture_async("price lookup", async { /* ... */ }).await;
//!     "ok"
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let app = Router::new()
//!     .route("/orders/{id}", get(order))
//!     .layer(XRayLayer::new("orders"));
//!
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! // `ConnectInfo` lets the layer record the peer address as the client IP.
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! # }
//! ```
//!
//! Segments go to the process-wide recorder ([`Recorder::global`]), configured from the
//! environment (`AWS_XRAY_DAEMON_ADDRESS`, `AWS_XRAY_SDK_ENABLED`, ...). Give the layer
//! another one with [`XRayLayer::with_recorder`].
//!
//! # Where the layer goes
//!
//! * `Router::layer`: every route and the fallback (404s included). It runs after routing.
//! * `Router::route_layer`: matched routes only; unmatched paths are not traced.
//! * `ServiceBuilder::new().layer(XRayLayer::new(..)).service(router)`: everything, around
//!   the router.
//! * Any other tower HTTP service (`Service<http::Request<B>, Response = http::Response<B2>>`,
//!   tonic servers included), for example on a plain hyper 1 server through hyper-util:
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::body::Incoming;
//! use hyper_util::{rt::{TokioExecutor, TokioIo}, server::conn::auto, service::TowerToHyperService};
//! use xray_tower::{ClientAddr, XRayLayer};
//!
//! async fn hello(req: http::Request<Incoming>) -> Result<http::Response<Full<Bytes>>, Infallible> {
//!     // Plain handlers reach the segment through the request...
//!     if let Some(segment) = xray_tower::segment(&req) {
//!         segment.put_annotation("path_len", req.uri().path().len() as i64);
//!     }
//!     // ...or through the context, like any code below them.
//!     xray_core::put_metadata("greeting", "hello");
//!     Ok(http::Response::new(Full::new(Bytes::from_static(b"hello"))))
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let layer = XRayLayer::new("hello");
//! loop {
//!     let (socket, peer) = listener.accept().await?;
//!     let svc = tower::ServiceBuilder::new()
//!         .map_request(move |mut req: http::Request<Incoming>| {
//!             req.extensions_mut().insert(ClientAddr(peer));
//!             req
//!         })
//!         .layer(layer.clone())
//!         .service_fn(hello);
//!     tokio::spawn(async move {
//!         let _ = auto::Builder::new(TokioExecutor::new())
//!             .serve_connection(TokioIo::new(socket), TowerToHyperService::new(svc))
//!             .await;
//!     });
//! }
//! # }
//! ```
//!
//! # Customization
//!
//! ```
//! use axum::body::Body;
//! use xray_core::Entity;
//! use xray_tower::XRayLayer;
//!
//! let layer = XRayLayer::new("shop")
//!     // Name segments after the Host header when it matches (port ignored), else "shop".
//!     .with_dynamic_naming("*.shop.example.com")
//!     // Keep the query string in http.request.url (off by default).
//!     .record_query(false)
//!     // Add what you need from the request and the response head.
//!     .on_request(|req: &http::Request<Body>, segment: &Entity| {
//!         if let Some(v) = req.headers().get("x-client-version").and_then(|v| v.to_str().ok()) {
//!             segment.put_annotation("client_version", v);
//!         }
//!     })
//!     .on_response(|res: &http::Response<Body>, segment: &Entity| {
//!         segment.put_annotation("cache_hit", res.headers().contains_key("x-cache-hit"));
//!     });
//! # let _app: axum::Router = axum::Router::new().layer(layer);
//! ```
//!
//! `AWS_XRAY_TRACING_NAME`, when set, replaces the fixed name given in code.
//!
//! # What is recorded, and when
//!
//! When the request arrives (in `Service::call`):
//! 1. the trace header is parsed; a malformed one starts a new trace with a warning;
//! 2. sampling: `Sampled=1`/`0` from the caller decides, otherwise the recorder's sampler,
//!    given the service name, host, method and path;
//! 3. the segment opens with the caller's `Parent` as `parent_id`, and records
//!    `http.request`: method, URL (`scheme://host/path`), user agent, and the client IP (the
//!    first `X-Forwarded-For` address with `x_forwarded_for: true`, else the peer address from
//!    axum's `ConnectInfo<SocketAddr>` or a [`ClientAddr`] extension);
//! 4. [`OnRequest`] runs; the segment becomes the current entity while the inner service
//!    runs (its `call`, its future and the response body), which is where [`segment`] and
//!    the [`Segment`] extractor find it. Nothing is added to the request's extensions.
//!
//! When the response head is ready: `http.response.status` and `content_length` (from the
//! header or the body's exact size), the flags the status implies (4xx `error`, 429 also
//! `throttle`, 5xx `fault`), the `X-Amzn-Trace-Id` response header (`Root=...`, plus
//! `Sampled=1|0` when the caller sent `Sampled=?`), then [`OnResponse`].
//!
//! The segment ends, and is sent, exactly once, by the rules every adapter shares
//! ([`xray_core::lifecycle`]):
//! * when the body has been fully handed to the server (its last frame, or
//!   `is_end_stream()`); for bodies of unknown length the bytes sent become the
//!   `content_length`. The body is polled with the segment current, so streams that call
//!   other services are traced too;
//! * when the inner service returns `Err`: `fault`, with the error's message as cause;
//! * when the handler (or the body) panics: `fault` with the panic message as cause. The
//!   panic then continues to unwind unchanged: on axum and hyper the connection is dropped
//!   without a response, as without the layer;
//! * when the response body is dropped before its end (the client went away), or the
//!   request is dropped before a response: `error`, with a `Cancelled` cause saying so;
//! * for `HEAD` requests and 1xx, 204 and 304 responses, when the response head is ready
//!   (no body follows).
//!
//! With tower-http's `CatchPanicLayer` *inside* the X-Ray layer, the panic has become a 500
//! response by the time the layer sees it: the segment gets status 500 and `fault`, but no
//! panic message. With `CatchPanicLayer` *outside*, the segment gets `fault` and the panic
//! message, and no `http.response` (the 500 is written after the segment ended).
//!
//! # Unsampled requests and a disabled SDK
//!
//! An unsampled request (or any request with `AWS_XRAY_SDK_ENABLED=false`) only carries ids:
//! no document is built, nothing is sent, the hooks are skipped. The trace header is still
//! answered and propagated, so callers and callees keep one trace id.
//!
//! # Outbound calls
//!
//! [`XRayClientLayer`] does the client side for tower and hyper-util clients: a `remote`
//! subsegment per call under the current entity and the trace header on the request. It uses
//! the same mapping as `xray-reqwest` (from [`xray_core::http`]). Calls can be left alone, as
//! Python's `add_ignored` does, with [`XRayClientLayer::ignore_host`],
//! [`XRayClientLayer::ignore_url`] and [`XRayClientLayer::ignore`] (no subsegment, no trace
//! header); calls to the recorder's daemon address are never recorded.
//!
//! [`Recorder::global`]: xray_core::Recorder::global
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
pub use xray_core::http::IgnoreRule;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
