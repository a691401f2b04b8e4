//! [`Reply`], the framework-neutral response of a route, and [`respond`], which turns a
//! route's errors and panics into `500` replies recorded on the segment.
//!
//! # Why panics are caught in the handler
//!
//! Neither axum nor actix-web turns a panicking handler into a response: the connection is
//! dropped. Catching the panic around the route's future (with
//! [`FutureExt::catch_unwind`](futures_util::FutureExt::catch_unwind)) gives, on both
//! frameworks alike, a `500` to the client *and* a segment with `http.response.status: 500`,
//! `fault`, and the panic message as its cause. The alternatives on axum each lose one of those:
//! tower-http's `CatchPanicLayer` inside `XRayLayer` records the 500 but not the message;
//! outside it, the message but not the response.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;

/// A route's answer: a status, a body and its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
    /// The `Content-Type`.
    pub content_type: &'static str,
}

impl Reply {
    /// A `text/plain` reply.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            content_type: "text/plain; charset=utf-8",
        }
    }

    /// An `application/json` reply.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            content_type: "application/json",
        }
    }
}

/// A handler panicked; recorded as the segment's cause.
#[derive(Debug, thiserror::Error)]
#[error("handler panicked: {message}")]
pub struct HandlerPanicked {
    /// The panic message.
    pub message: String,
}

/// Runs a route: its `Ok` reply is returned as is; an `Err` or a panic is recorded on the
/// current segment (`fault` and a cause) and answered with `500`.
pub async fn respond<E, F>(route: F) -> Reply
where
    F: Future<Output = Result<Reply, E>>,
    E: std::error::Error + 'static,
{
    match AssertUnwindSafe(route).catch_unwind().await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "handler failed");
            if let Some(segment) = xray_core::current() {
                segment.add_error(&e);
            }
            Reply::text(500, "internal error\n")
        }
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            if let Some(segment) = xray_core::current() {
                segment.add_error(&HandlerPanicked { message });
            }
            Reply::text(500, "internal error\n")
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}
