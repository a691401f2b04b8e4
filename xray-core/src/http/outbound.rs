//! The client side: one outbound call, from its subsegment and headers to its end.

use http::header::{HeaderName, HeaderValue};

use crate::context;
use crate::document::{Exception, HttpRequest, SmolStr};
use crate::entity::{Entity, Namespace};
use crate::lifecycle::Exchange;
use crate::recorder::Recorder;

use super::ignore::{is_daemon_url, IgnoreRules};
use super::url::{recorded_url, url_host};

const X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static(crate::header::HEADER_NAME);

/// Options for outbound calls, shared by the client adapters.
#[derive(Clone, Debug)]
pub struct OutboundOptions {
    /// Subsegment name; default: the URL's host.
    pub name: Option<String>,
    /// Record the query string in `http.request.url` (on by default for calls; user info is
    /// never recorded).
    pub record_query: bool,
    /// Also send a W3C `traceparent` carrying the same trace id, parent and sampling
    /// decision as the X-Ray header. Off by default.
    pub send_w3c: bool,
    /// Replace trace headers the caller already set on the request (on by default, as in the
    /// official SDKs). When off, a caller's `X-Amzn-Trace-Id` is sent as written and the
    /// subsegment does not claim the callee is traced.
    pub overwrite_header: bool,
    /// Calls that are left alone (Python's `add_ignored`): no subsegment, no trace header.
    /// Empty by default. Calls to the recorder's daemon are left alone whatever the rules
    /// say; see [`IgnoreRules`].
    pub ignore: IgnoreRules,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        Self {
            name: None,
            record_query: true,
            send_w3c: false,
            overwrite_header: true,
            ignore: IgnoreRules::new(),
        }
    }
}

impl OutboundOptions {
    /// Whether a call is left alone: it matches one of the [`ignore`](Self::ignore) rules,
    /// or it goes to `recorder`'s daemon ([`is_daemon_url`]). [`begin_outbound`] asks this
    /// itself; an adapter that begins its subsegments some other way (the AWS SDK
    /// interceptor) asks it once the URL is known.
    pub fn ignores(&self, recorder: &Recorder, method: &str, url: &str) -> bool {
        self.ignore.matches(method, url) || is_daemon_url(recorder.daemon_address(), url)
    }
}

/// The entity an outbound call is recorded under, given per request.
///
/// Client adapters record a call under the current entity ([`crate::current`]). Code that runs
/// where no segment is current (a task spawned without
/// [`in_current_segment`](crate::FutureExt::in_current_segment), a callback run by another
/// library) puts a `Parent` in the request's extensions instead; it wins over the current
/// entity, so it can also attach a call to a subsegment that is held but not current.
#[derive(Clone, Debug)]
pub struct Parent(pub Entity);

impl From<Entity> for Parent {
    fn from(entity: Entity) -> Self {
        Parent(entity)
    }
}

/// The trace headers an outbound call carries: `X-Amzn-Trace-Id`, and the W3C pair when asked.
#[derive(Clone, Debug)]
pub struct OutboundHeaders {
    xray: String,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl OutboundHeaders {
    /// The headers for a call recorded by `entity`: `Root=<trace>;Parent=<entity>;Sampled=...`
    /// plus the pairs kept from the incoming header; with `w3c`, a `traceparent` with the same
    /// ids and the `tracestate` that arrived with the trace.
    pub fn for_entity(entity: &Entity, w3c: bool) -> Self {
        let header = entity.outbound_header();
        let traceparent = if w3c {
            crate::w3c::to_traceparent(&header)
        } else {
            None
        };
        let tracestate = traceparent
            .as_ref()
            .and_then(|_| entity.tracestate())
            .map(str::to_string);
        Self {
            xray: header.to_header_string(),
            traceparent,
            tracestate,
        }
    }

    /// The `X-Amzn-Trace-Id` value.
    pub fn x_amzn_trace_id(&self) -> &str {
        &self.xray
    }

    /// The `traceparent` value, when W3C headers were asked for.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// Every header to send, as `(name, value)` pairs with lower-case names, for clients whose
    /// header type is not `http::HeaderMap`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            Some((crate::header::HEADER_NAME, self.xray.as_str())),
            self.traceparent
                .as_deref()
                .map(|v| (crate::w3c::TRACEPARENT, v)),
            self.tracestate
                .as_deref()
                .map(|v| (crate::w3c::TRACESTATE, v)),
        ]
        .into_iter()
        .flatten()
    }
}

/// An outbound call being recorded: its subsegment, the headers to send, and its end.
///
/// Dropping it before it ended records the call as cancelled (see [`crate::lifecycle`]).
#[derive(Debug)]
pub struct OutboundCall {
    exchange: Exchange,
    headers: OutboundHeaders,
    overwrite_header: bool,
}

impl OutboundCall {
    /// A call recorded by a subsegment the adapter made itself (the AWS SDK's `aws`
    /// subsegments, named after the service).
    pub fn for_subsegment(subsegment: Entity, options: &OutboundOptions) -> Self {
        Self {
            headers: OutboundHeaders::for_entity(&subsegment, options.send_w3c),
            exchange: Exchange::client(subsegment),
            overwrite_header: options.overwrite_header,
        }
    }

    /// The subsegment, while the call is open.
    pub fn subsegment(&self) -> Option<&Entity> {
        self.exchange.entity()
    }

    /// The headers this call sends.
    pub fn headers(&self) -> &OutboundHeaders {
        &self.headers
    }

    /// The exchange that ends the call.
    pub fn exchange(&mut self) -> &mut Exchange {
        &mut self.exchange
    }

    /// Puts the trace headers on an outbound request. Headers the caller already set stay
    /// unless [`OutboundOptions::overwrite_header`] is on (the default); when the
    /// `X-Amzn-Trace-Id` that goes out is not ours, the subsegment does not claim the callee
    /// is traced. A stale `tracestate` is removed when a new `traceparent` goes out. Returns
    /// whether our `X-Amzn-Trace-Id` was set.
    pub fn inject(&self, headers: &mut http::HeaderMap) -> bool {
        let overwrite = self.overwrite_header;
        if let Some(tp) = self.headers.traceparent.as_deref() {
            if overwrite || !headers.contains_key(crate::w3c::TRACEPARENT) {
                if let Ok(value) = HeaderValue::from_str(tp) {
                    headers.insert(crate::w3c::TRACEPARENT, value);
                    match self
                        .headers
                        .tracestate
                        .as_deref()
                        .and_then(|v| HeaderValue::from_str(v).ok())
                    {
                        Some(state) => headers.insert(crate::w3c::TRACESTATE, state),
                        None => headers.remove(crate::w3c::TRACESTATE),
                    };
                }
            }
        }
        if !overwrite && headers.contains_key(&X_AMZN_TRACE_ID) {
            self.not_traced();
            return false;
        }
        match HeaderValue::from_str(&self.headers.xray) {
            Ok(value) => {
                headers.insert(X_AMZN_TRACE_ID, value);
                true
            }
            Err(_) => {
                // Extra pairs come from an incoming header and were text then; a bad value
                // must still not fail the call.
                tracing::warn!(
                    header = %self.headers.xray,
                    "X-Ray trace header is not a valid header value; sending the request without it"
                );
                self.not_traced();
                false
            }
        }
    }

    /// The header that goes out is not ours: the callee will not name our subsegment.
    fn not_traced(&self) {
        if let Some(sub) = self.exchange.entity() {
            sub.with_document(|d| {
                if let Some(request) = d.http.request.as_mut() {
                    request.traced = false;
                }
            });
        }
    }

    /// The response head arrived: records the status and length, and ends the call.
    pub fn finish(&mut self, status: u16, content_length: Option<u64>) {
        self.exchange.finish(status, content_length);
    }

    /// The call failed without a response (refused, timed out, DNS, ...): `fault` with the
    /// error as a remote cause, and the call ends.
    pub fn fail(&mut self, error: &(dyn std::error::Error + 'static), type_name: &str) {
        self.exchange.fail(error, type_name);
    }

    /// Like [`fail`](Self::fail) for an error that is only `Display`.
    pub fn fail_display(&mut self, error: &dyn std::fmt::Display, type_name: &str) {
        self.exchange.fail_display(error, type_name);
    }

    /// Like [`fail`](Self::fail) with exceptions the adapter built itself.
    pub fn fail_with(&mut self, exceptions: Vec<Exception>) {
        self.exchange.fail_with(exceptions);
    }
}

/// Begins a `remote` subsegment for an outbound HTTP call under `parent`, else the current
/// entity. Returns `None` when the call is to be left alone: the adapter then sends it
/// untouched, without a trace header. That is the case
///
/// - when the call is ignored ([`OutboundOptions::ignores`]: it matches one of the options'
///   [`ignore`](OutboundOptions::ignore) rules, or goes to the daemon of the recorder that
///   would record it);
/// - when there is neither a parent nor a current entity; the recorder's context-missing
///   strategy then decides what is logged (it never panics here, even under
///   `RUNTIME_ERROR`: tracing must not fail the call).
pub fn begin_outbound(
    parent: Option<Entity>,
    method: &str,
    url: &str,
    options: &OutboundOptions,
) -> Option<OutboundCall> {
    if options.ignore.matches(method, url) {
        return None;
    }
    let parent = match parent.or_else(context::current) {
        Some(p) => p,
        None => {
            // A call to the daemon is never recorded, so nothing is missing.
            if !is_daemon_url(Recorder::global().daemon_address(), url) {
                crate::report_missing_context("outbound HTTP call");
            }
            return None;
        }
    };
    if is_daemon_url(parent.recorder().daemon_address(), url) {
        return None;
    }
    let name = options
        .name
        .as_deref()
        .or_else(|| url_host(url))
        .unwrap_or("remote");
    let sub = parent.begin_subsegment(name);
    if sub.is_sampled() {
        let recorded = recorded_url(
            url,
            options.record_query,
            parent.recorder().redacted_query_params(),
        );
        sub.set_namespace(Namespace::Remote);
        sub.set_http_request(HttpRequest {
            method: Some(SmolStr::new(method)),
            url: Some(recorded.to_string()),
            traced: true,
            ..HttpRequest::default()
        });
    }
    Some(OutboundCall::for_subsegment(sub, options))
}
