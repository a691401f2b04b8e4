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
//! * tonic's `Server::builder().layer(..)`: see [gRPC](#grpc-tonic).
//! * Any other tower HTTP service (`Service<http::Request<B>, Response = http::Response<B2>>`),
//!   for example on a plain hyper 1 server through hyper-util:
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
//! When the response head is ready: `http.response.status` and `content_length` (the body's
//! exact size, or the `Content-Length` header when the body is empty or of unknown size), the
//! flags the status implies (4xx `error`, 429 also `throttle`, 5xx `fault`), the
//! `X-Amzn-Trace-Id` response header (`Root=...`, plus `Sampled=1|0` when the caller sent
//! `Sampled=?`), then [`OnResponse`].
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
//! # gRPC (tonic)
//!
//! tonic's server and client are tower services over HTTP/2, so the same two layers trace
//! them:
//!
//! ```
//! # use std::convert::Infallible;
//! # use std::task::{Context, Poll};
//! # // What tonic-build generates, reduced to what the example needs.
//! # #[derive(Clone)]
//! # struct GreeterServer;
//! # impl tonic::server::NamedService for GreeterServer {
//! #     const NAME: &'static str = "greet.Greeter";
//! # }
//! # impl tower::Service<http::Request<tonic::body::Body>> for GreeterServer {
//! #     type Response = http::Response<tonic::body::Body>;
//! #     type Error = Infallible;
//! #     type Future = std::future::Ready<Result<Self::Response, Infallible>>;
//! #     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
//! #         Poll::Ready(Ok(()))
//! #     }
//! #     fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
//! #         std::future::ready(Ok(tonic::Status::unimplemented("").into_http()))
//! #     }
//! # }
//! use tonic::transport::{Endpoint, Server};
//! use xray_tower::{XRayClientLayer, XRayLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Server: a segment per call.
//! Server::builder()
//!     .layer(XRayLayer::new("greeter"))
//!     .add_service(GreeterServer) // GreeterServer::new(MyGreeter) with generated code
//!     .serve("0.0.0.0:50051".parse()?)
//!     .await?;
//!
//! // Client: a `remote` subsegment per call, under the current entity.
//! let origin: http::Uri = "http://greeter.internal:50051".parse()?;
//! let channel = Endpoint::from(origin.clone()).connect_lazy();
//! let traced = tower::ServiceBuilder::new()
//!     .layer(XRayClientLayer::new())
//!     .service(channel);
//! let client = tonic::client::Grpc::with_origin(traced, origin); // GreeterClient::with_origin
//! # drop(client);
//! # Ok(())
//! # }
//! ```
//!
//! A request whose `content-type` is `application/grpc` (or `application/grpc+proto`, ...)
//! is a gRPC call. Its segment (or subsegment) records:
//! * `http.request`: method `POST`, the URL `http://host:port/package.Service/Method`;
//!   `http.response.status`: 200, what HTTP said, and the bytes of the messages as
//!   `content_length`;
//! * the outcome from the call's `grpc-status`, not from the HTTP status: read from the
//!   trailers after the last message, or from the response head of a trailers-only response
//!   (an error before any message, how tonic answers a failed unary call). The mapping, the
//!   same on both sides and shared by every adapter, is in [`xray_core::lifecycle`]: `OK`
//!   sets nothing, `RESOURCE_EXHAUSTED` `error` + `throttle`, the caller's mistakes
//!   (`CANCELLED`, `INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`, `PERMISSION_DENIED`,
//!   `FAILED_PRECONDITION`, `OUT_OF_RANGE`, `UNAUTHENTICATED`) `error`, every other code
//!   `fault`;
//! * the code itself: metadata `default` → `rpc.grpc.status_code` (the number, always) and,
//!   unless it is `OK`, the annotation `grpc_status` (the name, so that
//!   `annotation.grpc_status = "UNAVAILABLE"` finds the failed calls).
//!
//! The server's segment ends when the stream does, after the trailers: for a streaming
//! response that is after its last message. A client that resets the stream mid-way ends it
//! by the usual rule for an abandoned body (`error`, a `Cancelled` cause).
//!
//! On the client, a gRPC call's subsegment stays open past the response head until the
//! trailers arrive ([`ClientResponseBody`]); a caller that drops the stream before its end
//! records the call as cancelled. Other calls still end at the head. tonic's `Channel` sets
//! the scheme and host itself, below the layer, so give the client its origin
//! (`with_origin`, as above) to record the full URL and name the subsegment after the host;
//! without it the URL is the bare path and the subsegment is named `remote` (or use
//! [`XRayClientLayer::with_name`]).
//!
//! tonic keeps the peer address in its `TcpConnectInfo` extension, which this crate does not
//! read (it does not depend on tonic); copy it into a [`ClientAddr`] in front of the layer to
//! record `http.request.client_ip`:
//!
//! ```
//! use tonic::transport::server::TcpConnectInfo;
//! use xray_tower::{ClientAddr, XRayLayer};
//!
//! let layer = tower::ServiceBuilder::new()
//!     .map_request(|mut req: http::Request<tonic::body::Body>| {
//!         let peer = req.extensions().get::<TcpConnectInfo>().and_then(|i| i.remote_addr());
//!         if let Some(peer) = peer {
//!             req.extensions_mut().insert(ClientAddr(peer));
//!         }
//!         req
//!     })
//!     .layer(XRayLayer::new("greeter"));
//! let _server = tonic::transport::Server::builder().layer(layer);
//! ```
//!
//! `examples/examples/minimal_tonic.rs` runs all of it against an in-process collector.
//!
//! # Unsampled requests and a disabled SDK
//!
//! An unsampled request only carries ids: no document is built, nothing is sent, the hooks
//! are skipped. The trace header is still answered and propagated, so callers and callees
//! keep one trace id. With `AWS_XRAY_SDK_ENABLED=false` the same holds for a request that
//! brings a trace header; one without gets nothing at all (no segment, no response header, no
//! context to carry), and handlers asking for its segment (`Segment`, [`segment`]) get a
//! no-op one.
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
pub use client::{ClientResponseBody, XRayClient, XRayClientLayer};
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
