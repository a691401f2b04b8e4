//! AWS X-Ray for [`reqwest`] clients, as a [`reqwest_middleware`] middleware.
//!
//! Add [`XRayMiddleware`] to a client and every call made while an X-Ray segment is current
//! becomes a `remote` subsegment of it, and carries the `X-Amzn-Trace-Id` header so that the
//! service called continues the same trace.
//!
//! # Example
//!
//! ```
//! use xray_core::{context, emitter::MemoryEmitter, sampling::AlwaysSample, Recorder};
//! use xray_reqwest::XRayMiddleware;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! # let addr = listener.local_addr().unwrap();
//! # let app = axum::Router::new().route("/users/{id}", axum::routing::get(|| async { "{}" }));
//! # tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(XRayMiddleware::new())
//!     .build();
//!
//! // A server adapter (xray-tower, xray-actix) does this for every request it receives.
//! let emitter = MemoryEmitter::new();
//! let recorder = Recorder::builder()
//!     .sampler(AlwaysSample)
//!     .emitter(emitter.clone())
//!     .ignore_env()
//!     .build()
//!     .unwrap();
//! let segment = recorder.begin_segment("checkout", None);
//!
//! let response = context::scope(segment.clone(), async {
//!     client.get(format!("http://{addr}/users/7")).send().await
//! })
//! .await
//! .unwrap();
//! assert_eq!(response.status(), 200);
//! segment.end();
//!
//! let call = &emitter.documents()[0].subsegments[0];
//! assert_eq!(call.name, "127.0.0.1");
//! assert_eq!(call.namespace.as_deref(), Some("remote"));
//! let request = call.http.request.as_ref().unwrap();
//! assert_eq!(request.url.as_deref(), Some(format!("http://{addr}/users/7").as_str()));
//! assert!(request.traced);
//! assert_eq!(call.http.response.as_ref().unwrap().status, Some(200));
//! # }
//! ```
//!
//! # What is recorded
//!
//! For each call, a subsegment with:
//!
//! - `name`: the URL's host, without port (configurable, see below);
//! - `namespace: "remote"`;
//! - `http.request`: `method`, `url` (user info never recorded; the query string recorded
//!   unless [`XRayMiddleware::record_query`] is off), and `traced: true` when our trace header
//!   was sent;
//! - `http.response`: `status` and `content_length` (from the `Content-Length` header, else
//!   the body's exact size; absent for chunked bodies);
//! - flags from the status: 4xx `error`, 429 `error` and `throttle`, 5xx `fault`;
//! - on a transport error (connection refused, timeout, DNS failure, ...): `fault` and a
//!   `cause` whose exceptions are the error and its `source()` chain, marked `remote`. The
//!   error is returned to the caller unchanged. The URL inside reqwest's error message is
//!   recorded in the same form as `http.request.url`.
//!
//! All mapping is done by [`xray_core::http`], and every way a call can end is recorded by the
//! rules of [`xray_core::lifecycle`], shared with the other X-Ray adapters.
//!
//! # The trace header
//!
//! The request gets `X-Amzn-Trace-Id: Root=<trace>;Parent=<this subsegment's id>;Sampled=<0|1>`,
//! followed by the pairs kept from the header the current segment was started from (such as
//! `Lineage`). A header the caller set by hand is replaced, as the official SDKs do; with
//! [`XRayMiddleware::overwrite_header`] off it is sent as written, and the subsegment then
//! leaves `traced` out.
//!
//! When the trace is not sampled, nothing is recorded, but the header is still sent, with the
//! same `Root` and `Sampled=0`, so the services called do not sample it either.
//!
//! # Where the parent comes from
//!
//! 1. A [`Parent`] request extension, when the caller gave one
//!    (`.with_extension(Parent(entity))`);
//! 2. else the current entity, [`xray_core::current`]: the segment a server adapter made
//!    current, or a subsegment made current inside it.
//!
//! With neither, the call goes out untouched: no header, nothing recorded. The process-wide
//! recorder's context-missing strategy (`AWS_XRAY_CONTEXT_MISSING`) decides whether that is
//! logged; it never fails the call, so `RUNTIME_ERROR` is logged like `LOG_ERROR` here.
//!
//! The current entity does not follow work into `tokio::spawn`: wrap spawned futures with
//! [`in_current_segment`](xray_core::FutureExt::in_current_segment), or pass a [`Parent`].
//!
//! # When the subsegment ends
//!
//! - When the response head arrives (status and headers). Reading the body afterwards, however
//!   long it streams, is not part of the subsegment: its duration is the time to the first
//!   byte of the response.
//! - When the call fails, with the error recorded.
//! - When the call's future is dropped before either (for example the caller's own
//!   `tokio::time::timeout` fired): the subsegment ends then as cancelled, with `error` and a
//!   `Cancelled` cause (the caller gave up; nothing says the callee failed).
//!
//! # Ordering with other middlewares
//!
//! reqwest-middleware runs middlewares in the order they were added: the first `.with(..)` is
//! the outermost. Each time a request passes through [`XRayMiddleware`] it becomes one
//! subsegment, so:
//!
//! - added **after** a retry middleware (inside it), every attempt is its own subsegment, with
//!   its own status or error, and each attempt's header names its own subsegment as parent;
//! - added **before** it (outside), the whole retried exchange is one subsegment that records
//!   the last attempt's outcome.
//!
//! ```
//! use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
//! use xray_reqwest::XRayMiddleware;
//!
//! let retries = ExponentialBackoff::builder().build_with_max_retries(3);
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(RetryTransientMiddleware::new_with_policy(retries)) // outermost
//!     .with(XRayMiddleware::new()) // inside: one subsegment per attempt
//!     .build();
//! # drop(client);
//! ```
//!
//! Middlewares added after [`XRayMiddleware`] see the request with the trace header already
//! set, and their time is part of the subsegment.
//!
//! # Customization
//!
//! ```
//! use xray_reqwest::XRayMiddleware;
//!
//! let middleware = XRayMiddleware::new()
//!     .with_name("payments")    // or .with_name_fn(|req| ...)
//!     .record_query(false)      // do not record the query string
//!     .overwrite_header(false); // keep a trace header set by the caller
//! # drop(middleware);
//! ```
//!
//! # Ignored calls
//!
//! As Python's `add_ignored`, calls can be left alone: an ignored call goes out untouched,
//! without a subsegment or a trace header. [`XRayMiddleware::ignore_host`] matches the host
//! (without port), [`XRayMiddleware::ignore_url`] the path (without the query string), and
//! [`XRayMiddleware::ignore`] takes a whole [`IgnoreRule`] (host, path and method, all of which
//! must match); `*` and `?` are wildcards and case is ignored. Calls to the recorder's daemon
//! address are never recorded. The rules are [`xray_core::http::IgnoreRules`], shared with
//! `xray-tower` and `xray-aws-sdk`.
//!
//! ```
//! use xray_reqwest::XRayMiddleware;
//!
//! let middleware = XRayMiddleware::new()
//!     .ignore_host("*.internal")
//!     .ignore_url("/health*");
//! # drop(middleware);
//! ```
//!
//! # Versions
//!
//! This crate works with reqwest-middleware 0.5, which uses reqwest 0.13. It depends on reqwest
//! without default features; enable TLS and the rest on your own `reqwest` dependency.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod failure;
mod middleware;

pub use middleware::XRayMiddleware;
pub use xray_core::http::{IgnoreRule, Parent};

/// The recorder this crate records with, re-exported so that versions always match.
pub use xray_core;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
