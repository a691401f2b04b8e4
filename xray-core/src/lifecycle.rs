//! How a request or an outbound call ends: one set of rules for every adapter.
//!
//! An adapter holds an [`Exchange`] from the moment it begins recording a request it serves
//! (its segment) or a call it makes (a `remote` or `aws` subsegment) until that exchange ends.
//! The exchange is a guard: it ends its entity exactly once, through one of the calls below or,
//! when the adapter lets go of it early, when it is dropped. Every way of ending maps to the
//! same flags and cause in every adapter:
//!
//! | ending | adapter call | flags | cause |
//! |---|---|---|---|
//! | completed | [`respond`](Exchange::respond), then [`complete`](Exchange::complete) (a client that ends at the response head: [`finish`](Exchange::finish)) | from the status: 4xx `error`, 429 `error` + `throttle`, 5xx `fault` | none |
//! | gRPC status recorded | [`record_grpc_status`](Exchange::record_grpc_status), before the end | from the code (table below) | none |
//! | failed with an error | [`fail`](Exchange::fail) and its variants | `fault`, unless the entity already says `error` (a 4xx status, or the adapter's own classification) | the error and its `source()` chain; `remote: true` on calls |
//! | panicked | [`catch_panic`](Exchange::catch_panic) (or a drop while unwinding) | `fault` | type `panic`, the panic message |
//! | abandoned mid-body (server) | drop after [`respond`](Exchange::respond) | `error`, the status kept | type `Cancelled` |
//! | cancelled mid-body (client: the caller dropped a body it was reading, e.g. a gRPC stream) | drop after [`respond`](Exchange::respond) | `error`, the status kept | type `Cancelled` |
//! | dropped before the response (server) | drop before [`respond`](Exchange::respond) | `error` | type `Cancelled` |
//! | cancelled (call dropped by its caller) | drop before [`respond`](Exchange::respond) | `error` | type `Cancelled` |
//! | work dropped before it finished ([`in_segment_async`](crate::in_segment_async)) | [`end`](Exchange::end) with [`Ending::DroppedUnfinished`] | `error` | type `Cancelled` |
//!
//! A client that goes away, an outer timeout, a caller that stops waiting for a call and a
//! job whose future is dropped (a shutdown, a `select!`) are all the other side giving up,
//! not the work failing, so they are `error`, never `fault`.
//! A server response whose body is never sent (`HEAD` requests, 1xx, 204 and 304 responses,
//! or a response the adapter knows is empty) completes on drop instead.
//!
//! Only sampled entities record anything; for unsampled ones every call just lets go of the
//! handle, so adapters call the same methods whatever the sampling decision.
//!
//! # Clients: ending at the head or at the body's end
//!
//! An HTTP call is over, for its subsegment, when its response head arrives: client adapters
//! call [`finish`](Exchange::finish) then. A call whose outcome comes later, in the body, is
//! recorded with [`respond`](Exchange::respond) at the head and
//! [`complete`](Exchange::complete) at the body's end (a gRPC call, whose status is in the
//! trailers): it stays open meanwhile, counts the body's bytes when the head gave no length,
//! and a caller that drops the body before its end cancels it (`error`, `Cancelled`).
//!
//! # gRPC status codes
//!
//! A gRPC call answers HTTP 200 whatever happened; its outcome is the `grpc-status` code
//! ([`crate::http::grpc`]). [`record_grpc_status`](Exchange::record_grpc_status) maps it, the
//! same way on both sides, as the HTTP statuses are mapped (the caller's mistakes are
//! `error`, the server's failures `fault`):
//!
//! | code | flags |
//! |---|---|
//! | `OK` | none |
//! | `RESOURCE_EXHAUSTED` | `error` + `throttle` (HTTP 429) |
//! | `CANCELLED`, `INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`, `PERMISSION_DENIED`, `FAILED_PRECONDITION`, `OUT_OF_RANGE`, `UNAUTHENTICATED` | `error` (HTTP 4xx) |
//! | `UNKNOWN`, `DEADLINE_EXCEEDED`, `ABORTED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS` | `fault` (HTTP 5xx) |
//!
//! The code is recorded too, where it can be seen and searched:
//! - metadata `default` → `rpc.grpc.status_code`: the number, always (`0` for `OK`). This is
//!   the OpenTelemetry attribute for it, and where the OpenTelemetry collector's X-Ray
//!   exporter puts a span's attributes that are not annotations, so traces from this crate
//!   and from OpenTelemetry-instrumented services read alike;
//! - annotation `grpc_status`: the code's name (`"NOT_FOUND"`), for every code but `OK`, so
//!   that a filter expression such as `annotation.grpc_status = "UNAVAILABLE"` finds the
//!   failed calls. `OK` is left out: X-Ray indexes at most 50 annotations per trace, and a
//!   trace with many successful calls would spend them on nothing.

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use crate::context;
use crate::document::{exceptions_from_error, Document, Exception, HttpResponse};
use crate::entity::Entity;
use crate::http::grpc::GrpcCode;

/// The annotation that carries a failed gRPC call's status code name.
pub const GRPC_STATUS_ANNOTATION: &str = "grpc_status";

/// The metadata key (namespace `default`) that carries a gRPC call's status code number.
pub const GRPC_STATUS_METADATA: &str = "rpc.grpc.status_code";

/// Which side of an exchange the entity records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// A request this service serves (its segment).
    Server,
    /// A call this service makes (a subsegment).
    Client,
}

/// How an exchange ended. [`Exchange`] picks the variant; [`Ending::apply`] holds the rules.
#[derive(Debug)]
#[non_exhaustive]
pub enum Ending<'a> {
    /// The response was fully sent (server), or its head arrived (client; or its body
    /// ended, when the call waited for it).
    Completed,
    /// An error took the place of a response, or broke it off.
    Failed(Vec<Exception>),
    /// The code serving the request, or polling the call, panicked.
    Panicked(Option<&'a (dyn Any + Send)>),
    /// Server: the response body was dropped before it was fully sent.
    AbandonedMidBody,
    /// Server: the request was dropped before a response was produced.
    DroppedBeforeResponse,
    /// Client: the caller dropped the call before its response arrived.
    Cancelled,
    /// Client: the caller dropped the response body before its end, while the call waited
    /// for it (a gRPC stream whose status had not arrived).
    CancelledMidBody,
    /// Work run as a segment of its own ([`in_segment_async`](crate::in_segment_async)): its
    /// future was dropped before it finished.
    DroppedUnfinished,
}

impl Ending<'_> {
    /// Records this ending on `entity` (flags and cause), without ending it.
    pub fn apply(self, entity: &Entity) {
        if !entity.is_sampled() {
            return;
        }
        let cancelled = |why: &str| vec![Exception::new(why, "Cancelled")];
        match self {
            Ending::Completed => {}
            Ending::Failed(exceptions) => {
                // A failure already classified as the caller's error (a 4xx status, an AWS
                // error code under another status) stays an error; anything else is a fault.
                let client_error = entity.with_document(|d| d.error).unwrap_or(false);
                entity.add_exceptions(exceptions, !client_error);
            }
            Ending::Panicked(payload) => {
                let (mut exception, message) = match payload {
                    Some(p) => (
                        Exception::from_panic(p),
                        p.downcast_ref::<&'static str>()
                            .copied()
                            .or_else(|| p.downcast_ref::<String>().map(String::as_str)),
                    ),
                    None => (
                        Exception::new("the code running in this entity panicked", "panic"),
                        None,
                    ),
                };
                // Where it panicked: the file and line, and more frames when backtraces are on.
                crate::recorder::panics::add_frames(
                    &mut exception,
                    message,
                    entity.recorder().max_stack_frames(),
                );
                entity.add_exceptions(vec![exception], true);
            }
            Ending::AbandonedMidBody => {
                entity.add_exceptions(
                    cancelled(
                        "the response body was dropped before it was fully sent \
                         (the client went away or the connection closed)",
                    ),
                    false,
                );
                entity.set_error();
            }
            Ending::DroppedBeforeResponse => {
                entity.add_exceptions(
                    cancelled(
                        "the request was dropped before a response was produced \
                         (the client went away, or an outer layer gave up on it)",
                    ),
                    false,
                );
                entity.set_error();
            }
            Ending::Cancelled => {
                entity.add_exceptions(
                    cancelled(
                        "the call was dropped before its response arrived \
                         (the caller cancelled it or timed out)",
                    ),
                    false,
                );
                entity.set_error();
            }
            Ending::CancelledMidBody => {
                entity.add_exceptions(
                    cancelled(
                        "the response body was dropped before its end \
                         (the caller stopped reading it, cancelled the call or timed out)",
                    ),
                    false,
                );
                entity.set_error();
            }
            Ending::DroppedUnfinished => {
                entity.add_exceptions(
                    cancelled(
                        "the work was dropped before it finished \
                         (its caller cancelled it, timed out or shut down)",
                    ),
                    false,
                );
                entity.set_error();
            }
        }
    }
}

/// Sets the flags a response status implies: 4xx `error`, 429 `error` and `throttle`, 5xx
/// `fault`.
pub(crate) fn apply_status_flags(d: &mut Document, status: u16) {
    match status {
        429 => {
            d.error = true;
            d.throttle = true;
        }
        400..=499 => d.error = true,
        500..=599 => d.fault = true,
        _ => {}
    }
}

/// Sets the flags a gRPC status code implies (see the [module docs](self#grpc-status-codes))
/// and records the code.
pub(crate) fn apply_grpc_status(d: &mut Document, code: GrpcCode) {
    match code {
        GrpcCode::Ok => {}
        GrpcCode::ResourceExhausted => {
            d.error = true;
            d.throttle = true;
        }
        GrpcCode::Cancelled
        | GrpcCode::InvalidArgument
        | GrpcCode::NotFound
        | GrpcCode::AlreadyExists
        | GrpcCode::PermissionDenied
        | GrpcCode::FailedPrecondition
        | GrpcCode::OutOfRange
        | GrpcCode::Unauthenticated => d.error = true,
        GrpcCode::Unknown
        | GrpcCode::DeadlineExceeded
        | GrpcCode::Aborted
        | GrpcCode::Unimplemented
        | GrpcCode::Internal
        | GrpcCode::Unavailable
        | GrpcCode::DataLoss => d.fault = true,
    }
    if code != GrpcCode::Ok {
        d.annotations.insert(
            GRPC_STATUS_ANNOTATION.to_string(),
            serde_json::Value::from(code.as_str()),
        );
    }
    let default = d
        .metadata
        .entry("default".to_string())
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if let serde_json::Value::Object(m) = default {
        m.insert(
            GRPC_STATUS_METADATA.to_string(),
            serde_json::Value::from(code.as_i32()),
        );
    }
}

/// The longest response header: `Root=` (5), a trace id (35), `;Sampled=` (9) and a digit.
const RESPONSE_HEADER_MAX: usize = 50;

/// Writes `Root=<trace id>` and, when the caller asked with `Sampled=?`, `;Sampled=<0|1>`;
/// returns the length written.
fn write_response_header(buf: &mut [u8; RESPONSE_HEADER_MAX], entity: &Entity) -> usize {
    buf[..5].copy_from_slice(b"Root=");
    buf[5..40].copy_from_slice(&entity.trace_id().to_bytes());
    match entity.requested_decision() {
        Some(s) => {
            buf[40..49].copy_from_slice(b";Sampled=");
            buf[49] = s.as_str().as_bytes()[0];
            50
        }
        None => 40,
    }
}

/// A request being served or a call being made, ending exactly once.
///
/// Created by [`ServerTracing::begin`](crate::http::ServerTracing::begin) (server side) and
/// held inside [`OutboundCall`](crate::http::OutboundCall) (client side), or built directly
/// with [`Exchange::server`] and [`Exchange::client`]. See the [module docs](self) for the
/// rules. `Exchange::default()` is an exchange that has already ended: it is what
/// [`take`](Exchange::take) leaves behind when an adapter hands the exchange on (from the
/// response future to the response body, say).
#[derive(Default)]
pub struct Exchange {
    entity: Option<Entity>,
    side: Option<Side>,
    responded: bool,
    /// No body will be sent: the exchange completes when the response head is recorded or
    /// when it is dropped after that.
    bodiless: bool,
    /// Bytes of the body sent so far, counted when the response head gave no length.
    counted: Option<u64>,
    /// A request served with the SDK disabled and no trace header to pass on: no entity, and
    /// its scopes only mark the thread (see [`context::disabled_scope`]).
    disabled: bool,
    /// A gRPC call: its outcome is its `grpc-status`.
    grpc: bool,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("entity", &self.entity)
            .field("side", &self.side)
            .field("responded", &self.responded)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// A request served by this service, recorded by `segment`.
    pub fn server(segment: Entity) -> Self {
        Self::new(segment, Side::Server)
    }

    /// A call made by this service, recorded by `subsegment`.
    pub fn client(subsegment: Entity) -> Self {
        Self::new(subsegment, Side::Client)
    }

    fn new(entity: Entity, side: Side) -> Self {
        Self {
            entity: Some(entity),
            side: Some(side),
            responded: false,
            bodiless: false,
            counted: None,
            disabled: false,
            grpc: false,
        }
    }

    /// A request served with the SDK disabled and no trace header to pass on: nothing is
    /// recorded, no entity is made current and no response header is written. Code that runs
    /// for it inside [`scope`](Self::scope) gets no context-missing errors, and the adapters'
    /// segment extractors hand it a no-op segment ([`context::current_or_disabled`]).
    pub fn disabled() -> Self {
        Self {
            entity: None,
            side: Some(Side::Server),
            responded: false,
            bodiless: false,
            counted: None,
            disabled: true,
            grpc: false,
        }
    }

    /// True for an exchange made by [`disabled`](Self::disabled).
    #[inline]
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Runs `fut` in the exchange's context: with its entity current while it is polled, or
    /// marked as disabled work for a [`disabled`](Self::disabled) exchange.
    #[inline]
    pub fn scope<F: std::future::Future>(&self, fut: F) -> context::Instrumented<F> {
        match &self.entity {
            Some(entity) => context::scope(entity.clone(), fut),
            None if self.disabled => context::disabled_scope(fut),
            None => context::maybe_scope(None, fut),
        }
    }

    /// Runs `f` in the exchange's context; see [`scope`](Self::scope). The entity is lent to
    /// the context for the call, not cloned.
    #[inline]
    pub fn sync_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        if self.entity.is_none() && self.disabled {
            return context::disabled_sync_scope(f);
        }
        context::lend(&mut self.entity, f)
    }

    /// [`sync_scope`](Self::sync_scope) and [`catch_panic`](Self::catch_panic) together: what
    /// a response body's poll runs in.
    #[inline]
    pub fn catch_panic_in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        if !self.is_sampled() {
            // Nothing to record a panic on (the exchange has ended, or records nothing).
            return self.sync_scope(f);
        }
        let polled = {
            let slot = &mut self.entity;
            panic::catch_unwind(AssertUnwindSafe(|| context::lend(slot, f)))
        };
        match polled {
            Ok(r) => r,
            Err(payload) => {
                self.end(Ending::Panicked(Some(&*payload)));
                panic::resume_unwind(payload)
            }
        }
    }

    /// Says that no response body will be sent (a `HEAD` request): the exchange completes as
    /// soon as the response head is recorded.
    pub fn without_body(mut self, yes: bool) -> Self {
        self.bodiless = yes;
        self
    }

    /// Marks the exchange as a gRPC call (its outcome is its `grpc-status`, which the adapter
    /// records with [`record_grpc_status`](Self::record_grpc_status)).
    /// [`ServerTracing`](crate::http::ServerTracing) sets it for sampled requests from their
    /// `content-type`, read with the rest of the request's headers.
    pub fn grpc_call(mut self, yes: bool) -> Self {
        self.grpc = yes;
        self
    }

    /// True for a gRPC call (see [`grpc_call`](Self::grpc_call)).
    #[inline]
    pub fn is_grpc_call(&self) -> bool {
        self.grpc
    }

    /// The entity, while the exchange is open.
    pub fn entity(&self) -> Option<&Entity> {
        self.entity.as_ref()
    }

    /// True until the exchange has ended.
    pub fn is_open(&self) -> bool {
        self.entity.is_some()
    }

    /// Moves the open exchange out, leaving an ended one in its place.
    pub fn take(&mut self) -> Exchange {
        std::mem::take(self)
    }

    /// The `X-Amzn-Trace-Id` value a server returns on its response (`Root=...`, plus
    /// `Sampled=` when the caller sent `Sampled=?`). `None` once the exchange has ended.
    pub fn response_header(&self) -> Option<String> {
        self.entity
            .as_ref()
            .map(|e| e.response_header().to_header_string())
    }

    /// [`response_header`](Self::response_header) as bytes, for adapters whose header type
    /// is not `http` 1's. Written without the detour through a `String`, into a buffer shared
    /// with other short values of this thread instead of an allocation of its own.
    pub fn response_header_bytes(&self) -> Option<bytes::Bytes> {
        let entity = self.entity.as_ref()?;
        let mut buf = [0u8; RESPONSE_HEADER_MAX];
        let len = write_response_header(&mut buf, entity);
        Some(crate::http::small_bytes(&buf[..len]))
    }

    /// [`response_header`](Self::response_header) as a ready `http` 1 header value; see
    /// [`response_header_bytes`](Self::response_header_bytes).
    pub fn response_header_value(&self) -> Option<http::HeaderValue> {
        let bytes = self.response_header_bytes()?;
        // SAFETY: `from_maybe_shared_unchecked` requires bytes that are valid in a header
        // value (visible ASCII, space or tab). `write_response_header` writes only the ASCII
        // literals `Root=` and `;Sampled=`, a trace id from `TraceId::to_bytes` (`1-`, then
        // lower-case hex digits and a `-`) and `Sampled::as_str` (`0`, `1` or `?`).
        // Debug builds check it anyway (the function validates when debug assertions are on),
        // and a test compares the value with the checked conversion.
        #[allow(unsafe_code)]
        let value = unsafe { http::HeaderValue::from_maybe_shared_unchecked(bytes) };
        Some(value)
    }

    /// Whether the entity records anything (false once the exchange has ended).
    #[inline]
    pub fn is_sampled(&self) -> bool {
        self.entity.as_ref().is_some_and(|e| e.is_sampled())
    }

    /// Records the response head: `http.response` with the status and, when known, the body's
    /// length, and the flags the status implies. Without a length the body's bytes are counted
    /// ([`add_body_bytes`](Self::add_body_bytes)) and recorded when the exchange completes.
    /// A server response that carries no body (1xx, 204, 304, or after
    /// [`without_body`](Self::without_body)) completes here.
    ///
    /// A client exchange stays open until [`complete`](Self::complete), at its body's end
    /// (a call that ends at the head uses [`finish`](Self::finish) instead); dropped before
    /// then, it records that the caller cancelled it mid-body.
    pub fn respond(&mut self, status: u16, content_length: Option<u64>) {
        self.record_head(status, content_length, true);
    }

    fn record_head(&mut self, status: u16, content_length: Option<u64>, body_follows: bool) {
        let Some(entity) = &self.entity else { return };
        self.responded = true;
        if matches!(status, 100..=199 | 204 | 304) {
            self.bodiless = true;
        }
        if entity.is_sampled() {
            entity.with_document(|d| {
                d.http.response = Some(HttpResponse {
                    status: Some(status),
                    content_length,
                });
                apply_status_flags(d, status);
            });
            let counts = match self.side {
                Some(Side::Server) => !self.bodiless,
                _ => body_follows,
            };
            self.counted = (counts && content_length.is_none()).then_some(0);
        }
        if self.bodiless && self.side == Some(Side::Server) {
            self.complete();
        }
    }

    /// Counts `n` bytes of the response body as sent (kept only when the head gave no length).
    #[inline]
    pub fn add_body_bytes(&mut self, n: u64) {
        if let Some(c) = self.counted.as_mut() {
            *c = c.saturating_add(n);
        }
    }

    /// Ends the exchange as completed: the body was fully sent (server), the response head
    /// arrived (client), or the body the client waited for ended.
    #[inline]
    pub fn complete(&mut self) {
        if self.entity.is_some() {
            self.end(Ending::Completed);
        }
    }

    /// Records the response head and completes: a client's whole job when the head arrives.
    pub fn finish(&mut self, status: u16, content_length: Option<u64>) {
        self.record_head(status, content_length, false);
        self.complete();
    }

    /// Records a gRPC call's status code, read from the trailers or from the head of a
    /// trailers-only response: the flags the code implies and the code itself (see the
    /// [module docs](self#grpc-status-codes)). The exchange stays open; it ends as usual,
    /// at the end of the stream.
    pub fn record_grpc_status(&mut self, code: GrpcCode) {
        if let Some(entity) = &self.entity {
            entity.with_document(|d| apply_grpc_status(d, code));
        }
    }

    /// Ends the exchange as failed with `error` and its `source()` chain; `type_name` names
    /// the error's type in the cause.
    pub fn fail(&mut self, error: &(dyn std::error::Error + 'static), type_name: &str) {
        let mut exceptions = match &self.entity {
            Some(e) if e.is_sampled() => exceptions_from_error(error, type_name),
            _ => Vec::new(),
        };
        let remote = self.side == Some(Side::Client);
        for e in &mut exceptions {
            e.remote = remote;
        }
        self.end(Ending::Failed(exceptions));
    }

    /// Like [`fail`](Self::fail) for an error that is only `Display` (a boxed error, a
    /// framework's error type): one exception with its message.
    pub fn fail_display(&mut self, error: &dyn fmt::Display, type_name: &str) {
        let exceptions = match &self.entity {
            Some(e) if e.is_sampled() => vec![Exception::new(error.to_string(), type_name)
                .remote(self.side == Some(Side::Client))],
            _ => Vec::new(),
        };
        self.end(Ending::Failed(exceptions));
    }

    /// Like [`fail`](Self::fail) with exceptions the adapter built itself (for example with
    /// URLs scrubbed from the messages, or an AWS error code as the type); their `remote`
    /// flags are kept as built.
    pub fn fail_with(&mut self, exceptions: Vec<Exception>) {
        self.end(Ending::Failed(exceptions));
    }

    /// Records a failure as the cause without ending the exchange: a server whose response
    /// carries an error (actix-web's `Response::error`) still sends that response's body.
    pub fn record_failure(&mut self, exceptions: Vec<Exception>) {
        if let Some(entity) = &self.entity {
            Ending::Failed(exceptions).apply(entity);
        }
    }

    /// Runs `f` (a poll of the inner future or body); if it panics, ends the exchange as
    /// panicked with the panic's message and lets the panic continue unchanged.
    #[inline]
    pub fn catch_panic<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(payload) => {
                self.end(Ending::Panicked(Some(&*payload)));
                panic::resume_unwind(payload)
            }
        }
    }

    /// Ends the exchange the way `ending` says. Later calls do nothing.
    pub fn end(&mut self, ending: Ending<'_>) {
        let Some(entity) = self.entity.take_if(|e| e.is_sampled()) else {
            // Ended already, or nothing recorded: only the handle to let go of, in place.
            self.entity = None;
            return;
        };
        // Whatever the ending, the bytes that did go out are recorded.
        if let Some(n) = self.counted.take() {
            entity.set_content_length(n);
        }
        ending.apply(&entity);
        entity.end();
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.entity.is_none() {
            return;
        }
        let ending = if std::thread::panicking() {
            Ending::Panicked(None)
        } else {
            match (self.side, self.responded) {
                (Some(Side::Server), true) if self.bodiless => Ending::Completed,
                (Some(Side::Server), true) => Ending::AbandonedMidBody,
                (Some(Side::Server), false) => Ending::DroppedBeforeResponse,
                (_, true) => Ending::CancelledMidBody,
                (_, false) => Ending::Cancelled,
            }
        };
        self.end(ending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emitter::MemoryEmitter;
    use crate::sampling::AlwaysSample;
    use crate::Recorder;

    #[derive(Debug)]
    struct Refused;
    impl fmt::Display for Refused {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connection refused")
        }
    }
    impl std::error::Error for Refused {}

    #[test]
    fn response_header_value_matches_the_checked_form() {
        let recorder = Recorder::builder()
            .emitter(MemoryEmitter::new())
            .ignore_env()
            .build()
            .unwrap();
        let asked: crate::header::TraceHeader =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?"
                .parse()
                .unwrap();
        for header in [None, Some(&asked)] {
            let exchange = Exchange::server(recorder.begin_segment("svc", header));
            let text = exchange.response_header().unwrap();
            assert_eq!(
                exchange.response_header_value().unwrap(),
                http::HeaderValue::from_str(&text).unwrap()
            );
            assert_eq!(
                &exchange.response_header_bytes().unwrap()[..],
                text.as_bytes()
            );
        }
        assert!(Exchange::default().response_header_value().is_none());
    }

    /// What one row of the rules table leaves in the document.
    #[derive(Debug, PartialEq)]
    struct Seen {
        error: bool,
        throttle: bool,
        fault: bool,
        status: Option<u16>,
        length: Option<u64>,
        cause: Option<(String, bool)>,
        ended: bool,
    }

    fn run(side: Side, f: impl FnOnce(&mut Exchange)) -> Seen {
        let emitter = MemoryEmitter::new();
        let recorder = Recorder::builder()
            .sampler(AlwaysSample)
            .emitter(emitter.clone())
            .ignore_env()
            .build()
            .unwrap();
        let segment = recorder.begin_segment("svc", None);
        let mut exchange = match side {
            Side::Server => Exchange::server(segment.clone()),
            Side::Client => Exchange::client(segment.begin_subsegment("callee")),
        };
        f(&mut exchange);
        drop(exchange);
        segment.end();
        let docs = emitter.documents();
        let doc = match side {
            Side::Server => &docs[0],
            Side::Client => &docs[0].subsegments[0],
        };
        let cause = match &doc.cause {
            Some(crate::document::Cause::Exceptions(c)) => c
                .exceptions
                .first()
                .map(|e| (e.kind.clone().unwrap_or_default(), e.remote)),
            _ => None,
        };
        let response = doc.http.response.as_ref();
        Seen {
            error: doc.error,
            throttle: doc.throttle,
            fault: doc.fault,
            status: response.and_then(|r| r.status),
            length: response.and_then(|r| r.content_length),
            cause,
            ended: doc.end_time.is_some() && !doc.in_progress,
        }
    }

    fn seen(
        flags: &str,
        status: Option<u16>,
        length: Option<u64>,
        cause: Option<(&str, bool)>,
    ) -> Seen {
        Seen {
            error: flags.contains('e'),
            throttle: flags.contains('t'),
            fault: flags.contains('f'),
            status,
            length,
            cause: cause.map(|(k, r)| (k.to_string(), r)),
            ended: true,
        }
    }

    #[test]
    fn every_ending_follows_one_table() {
        use Side::*;
        type Step = fn(&mut Exchange);
        let rows: Vec<(&str, Side, Step, Seen)> = vec![
            (
                "completed 200",
                Server,
                |x| x.finish(200, Some(5)),
                seen("", Some(200), Some(5), None),
            ),
            (
                "completed 404",
                Server,
                |x| x.finish(404, Some(0)),
                seen("e", Some(404), Some(0), None),
            ),
            (
                "completed 429",
                Client,
                |x| x.finish(429, None),
                seen("et", Some(429), None, None),
            ),
            (
                "completed 503",
                Client,
                |x| x.finish(503, None),
                seen("f", Some(503), None, None),
            ),
            (
                "streamed body counted",
                Server,
                |x| {
                    x.respond(200, None);
                    x.add_body_bytes(3);
                    x.add_body_bytes(4);
                    x.complete();
                },
                seen("", Some(200), Some(7), None),
            ),
            (
                "failed before a response (server)",
                Server,
                |x| x.fail(&Refused, "Refused"),
                seen("f", None, None, Some(("Refused", false))),
            ),
            (
                "failed before a response (client)",
                Client,
                |x| x.fail(&Refused, "Refused"),
                seen("f", None, None, Some(("Refused", true))),
            ),
            (
                "failed after a 4xx stays an error",
                Client,
                |x| {
                    x.respond(400, Some(9));
                    x.fail_with(vec![
                        Exception::new("bad", "ValidationException").remote(true)
                    ]);
                },
                seen("e", Some(400), Some(9), Some(("ValidationException", true))),
            ),
            (
                "failed mid-body",
                Server,
                |x| {
                    x.respond(200, None);
                    x.add_body_bytes(2);
                    x.fail_display(&"stream broke", "BodyError");
                },
                seen("f", Some(200), Some(2), Some(("BodyError", false))),
            ),
            (
                "panicked",
                Server,
                |x| {
                    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        x.catch_panic(|| panic!("boom"))
                    }));
                    assert!(r.is_err(), "the panic continues");
                },
                seen("f", None, None, Some(("panic", false))),
            ),
            (
                "abandoned mid-body",
                Server,
                |x| {
                    x.respond(200, None);
                    x.add_body_bytes(4);
                },
                seen("e", Some(200), Some(4), Some(("Cancelled", false))),
            ),
            (
                "dropped before the response",
                Server,
                |_| {},
                seen("e", None, None, Some(("Cancelled", false))),
            ),
            (
                "cancelled call",
                Client,
                |_| {},
                seen("e", None, None, Some(("Cancelled", false))),
            ),
            (
                "work dropped before it finished",
                Server,
                |x| x.end(Ending::DroppedUnfinished),
                seen("e", None, None, Some(("Cancelled", false))),
            ),
            (
                "HEAD: no body to wait for",
                Server,
                |x| {
                    let mut head = x.take().without_body(true);
                    head.respond(200, Some(12));
                    assert!(!head.is_open());
                },
                seen("", Some(200), Some(12), None),
            ),
            (
                "204 completes at the head",
                Server,
                |x| x.respond(204, None),
                seen("", Some(204), None, None),
            ),
            (
                "client waiting for its body: bytes counted, completed at its end",
                Client,
                |x| {
                    x.respond(200, None);
                    x.add_body_bytes(5);
                    x.add_body_bytes(6);
                    assert!(x.is_open(), "the call waits for its body");
                    x.complete();
                },
                seen("", Some(200), Some(11), None),
            ),
            (
                "client ending at the head counts nothing",
                Client,
                |x| {
                    x.finish(200, None);
                    x.add_body_bytes(5);
                },
                seen("", Some(200), None, None),
            ),
            (
                "client body dropped mid-way: cancelled",
                Client,
                |x| {
                    x.respond(200, None);
                    x.add_body_bytes(3);
                },
                seen("e", Some(200), Some(3), Some(("Cancelled", false))),
            ),
            (
                "ending twice: the first counts",
                Client,
                |x| {
                    x.finish(200, Some(1));
                    x.fail(&Refused, "Refused");
                },
                seen("", Some(200), Some(1), None),
            ),
        ];
        for (name, side, step, want) in rows {
            assert_eq!(run(side, step), want, "{name}");
        }
    }

    #[test]
    fn grpc_status_codes_follow_one_table() {
        use GrpcCode::*;
        let rows = [
            (Ok, ""),
            (Cancelled, "e"),
            (Unknown, "f"),
            (InvalidArgument, "e"),
            (DeadlineExceeded, "f"),
            (NotFound, "e"),
            (AlreadyExists, "e"),
            (PermissionDenied, "e"),
            (ResourceExhausted, "et"),
            (FailedPrecondition, "e"),
            (Aborted, "f"),
            (OutOfRange, "e"),
            (Unimplemented, "f"),
            (Internal, "f"),
            (Unavailable, "f"),
            (DataLoss, "f"),
            (Unauthenticated, "e"),
        ];
        assert_eq!(rows.len(), GrpcCode::ALL.len(), "every code has a row");
        for (code, flags) in rows {
            for side in [Side::Server, Side::Client] {
                let emitter = MemoryEmitter::new();
                let recorder = Recorder::builder()
                    .sampler(AlwaysSample)
                    .emitter(emitter.clone())
                    .ignore_env()
                    .build()
                    .unwrap();
                let segment = recorder.begin_segment("svc", None);
                let mut x = match side {
                    Side::Server => Exchange::server(segment.clone()),
                    Side::Client => Exchange::client(segment.begin_subsegment("callee")),
                };
                x.respond(200, None);
                x.add_body_bytes(7);
                x.record_grpc_status(code);
                assert!(
                    x.is_open(),
                    "recording the status does not end the exchange"
                );
                x.complete();
                segment.end();
                let docs = emitter.documents();
                let doc = match side {
                    Side::Server => &docs[0],
                    Side::Client => &docs[0].subsegments[0],
                };
                let what = format!("{code} ({side:?})");
                assert_eq!(
                    (doc.error, doc.throttle, doc.fault),
                    (
                        flags.contains('e'),
                        flags.contains('t'),
                        flags.contains('f')
                    ),
                    "{what}"
                );
                assert!(doc.cause.is_none(), "{what}");
                let response = doc.http.response.as_ref().unwrap();
                assert_eq!(response.status, Some(200), "{what}");
                assert_eq!(response.content_length, Some(7), "{what}");
                assert_eq!(
                    doc.metadata["default"][GRPC_STATUS_METADATA],
                    code.as_i32(),
                    "{what}"
                );
                let annotation = doc.annotations.get(GRPC_STATUS_ANNOTATION);
                if code == Ok {
                    assert_eq!(annotation, None, "{what}");
                } else {
                    assert_eq!(annotation.unwrap(), code.as_str(), "{what}");
                }
                assert!(doc.end_time.is_some() && !doc.in_progress, "{what}");
            }
        }
    }

    #[test]
    fn a_grpc_status_is_recorded_next_to_user_metadata() {
        let emitter = MemoryEmitter::new();
        let recorder = Recorder::builder()
            .sampler(AlwaysSample)
            .emitter(emitter.clone())
            .ignore_env()
            .build()
            .unwrap();
        let segment = recorder.begin_segment("svc", None);
        segment.put_metadata("order", 7);
        segment.put_annotation("tenant", "a");
        let mut x = Exchange::server(segment.clone());
        x.respond(200, None);
        x.record_grpc_status(GrpcCode::NotFound);
        x.complete();
        let doc = &emitter.documents()[0];
        assert_eq!(doc.metadata["default"]["order"], 7);
        assert_eq!(doc.metadata["default"][GRPC_STATUS_METADATA], 5);
        assert_eq!(doc.annotations["tenant"], "a");
        assert_eq!(doc.annotations[GRPC_STATUS_ANNOTATION], "NOT_FOUND");
        assert!(crate::annotation::is_valid_annotation_key(
            GRPC_STATUS_ANNOTATION
        ));
    }

    #[test]
    fn unsampled_exchanges_record_nothing_and_never_panic() {
        let emitter = MemoryEmitter::new();
        let recorder = Recorder::builder()
            .sampler(crate::sampling::NeverSample)
            .emitter(emitter.clone())
            .ignore_env()
            .build()
            .unwrap();
        let mut x = Exchange::server(recorder.begin_segment("svc", None));
        x.respond(500, None);
        x.add_body_bytes(10);
        x.record_grpc_status(GrpcCode::Internal);
        x.fail(&Refused, "Refused");
        drop(Exchange::client(recorder.begin_segment("svc", None)));
        assert!(emitter.documents().is_empty());
    }
}
