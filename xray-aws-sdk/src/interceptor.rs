//! The interceptor: one `aws` subsegment per AWS call.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::region::Region;
use aws_types::request_id::RequestId;
use xray_core::http::{IgnoreRule, OutboundOptions};
use xray_core::lifecycle::Exchange;
use xray_core::Entity;

use crate::call::{CallState, XRayCall};
use crate::extract::{Body, Message};
use crate::params;

/// Records every AWS SDK call made inside a traced request as an X-Ray subsegment.
///
/// Register it once per client (or per operation with `customize()`); one instance serves
/// every call of the client, concurrently. Each call gets:
///
/// - a subsegment named after the service (`DynamoDB`, `S3`, `SQS`, ...) with
///   `namespace: "aws"`, child of the entity current when the call was made
///   ([`xray_core::context::current`]) or of the entity given to [`parent`];
/// - `aws.operation`, `aws.region`, `aws.request_id`, `aws.id_2` (S3), `aws.retries`
///   (attempts − 1, all attempts share the one subsegment) and the parameters of the
///   [capture table](crate#what-is-recorded);
/// - `http.response.status` and `content_length` of the last attempt;
/// - on failure, `error` (4xx), `throttle` (429 or a throttling code) or `fault` (5xx, no
///   response), with a cause whose exception type is the AWS error code and `remote: true`;
/// - an `X-Amzn-Trace-Id` header on every attempt, with the subsegment as `Parent`, so that
///   AWS services that continue traces (Lambda, SQS, SNS, API Gateway, ...) link to it.
///
/// The call's result, errors included, reaches the caller unchanged: the interceptor never
/// fails a call. Without a current entity and without an explicit parent, the call goes out
/// untouched (no header, nothing recorded); the global recorder's context-missing strategy
/// decides whether that is logged (`LOG_ERROR`, the default, and `RUNTIME_ERROR`, which does
/// not panic here) or not (`IGNORE_ERROR`).
///
/// Calls to an endpoint matching [`ignore_host`], [`ignore_url`] or [`ignore`], and calls to
/// the recorder's daemon address (an X-Ray client pointed at the daemon's proxy), go out
/// untouched too.
///
/// [`parent`]: XRayInterceptor::parent
/// [`ignore_host`]: XRayInterceptor::ignore_host
/// [`ignore_url`]: XRayInterceptor::ignore_url
/// [`ignore`]: XRayInterceptor::ignore
#[derive(Clone, Debug, Default)]
#[must_use = "register the interceptor on a client config to record calls"]
pub struct XRayInterceptor {
    parent: Option<Entity>,
    options: OutboundOptions,
}

impl XRayInterceptor {
    /// An interceptor that records calls under the current entity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves calls to endpoints whose host matches `pattern` alone: no subsegment, no trace
    /// header (Python's `add_ignored(hostname=...)`). The host is the resolved endpoint's,
    /// without the port (`dynamodb.us-east-1.amazonaws.com`, or the host of a custom
    /// `endpoint_url`); `*` and `?` are wildcards and case is ignored.
    ///
    /// ```
    /// let interceptor = xray_aws_sdk::XRayInterceptor::new().ignore_host("localhost");
    /// # drop(interceptor);
    /// ```
    ///
    /// Calls to the recorder's daemon address are never recorded, with or without rules.
    pub fn ignore_host(self, pattern: impl Into<String>) -> Self {
        self.ignore(IgnoreRule::new().host(pattern))
    }

    /// Leaves calls whose request path matches `pattern` alone (without the query string):
    /// no subsegment, no trace header.
    pub fn ignore_url(self, pattern: impl Into<String>) -> Self {
        self.ignore(IgnoreRule::new().url(pattern))
    }

    /// Leaves calls matching every part of `rule` alone. See
    /// [`xray_core::http::IgnoreRules`] for the matching rules.
    pub fn ignore(mut self, rule: IgnoreRule) -> Self {
        self.options.ignore.push(rule);
        self
    }

    /// An interceptor that records calls under `parent`, whatever is current when the call is
    /// made. Useful for code that runs outside any context scope (a spawned task that did not
    /// carry the segment along, a background worker with its own segment).
    pub fn parent(mut self, parent: Entity) -> Self {
        self.parent = Some(parent);
        self
    }
}

impl Intercept for XRayInterceptor {
    fn name(&self) -> &'static str {
        "XRayInterceptor"
    }

    // Client-level interceptors run this hook before the operation's configuration is in the
    // bag, so the service and operation are not known yet: take only the parent and the time.
    fn read_before_execution(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<XRayCall>().is_some() {
            // Registered twice (client and operation): the first one records the call.
            return Ok(());
        }
        let Some(parent) = self.parent.clone().or_else(xray_core::current) else {
            xray_core::report_missing_context("AWS SDK call");
            return Ok(());
        };
        cfg.interceptor_state().store_put(XRayCall::new(parent));
        Ok(())
    }

    fn read_before_serialization(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let metadata = cfg.load::<Metadata>().cloned();
        let region = cfg.load::<Region>().map(|r| r.to_string());
        let Some(call) = cfg.get_mut_from_interceptor_state::<XRayCall>() else {
            return Ok(());
        };
        if call.described.is_some() || !matches!(call.state, CallState::Unsent) {
            return Ok(());
        }
        if call.parent.is_sampled() {
            call.params = metadata
                .as_ref()
                .and_then(|m| params::lookup(m.service(), m.name()));
        }
        // The subsegment begins once the endpoint is known (see `call.rs`).
        call.described = Some((metadata, region));
        Ok(())
    }

    // Runs on every attempt, after signing (the signature does not cover this header) and after
    // the endpoint was resolved, so the final URL is known: the first attempt decides whether
    // the call is ignored, and begins its subsegment if not.
    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(call) = cfg.get_mut_from_interceptor_state::<XRayCall>() else {
            return Ok(());
        };
        let request = ctx.request();
        call.decide(&self.options, request.method(), Some(request.uri()));
        let row = call.params;
        let Some(outbound) = call.recording() else {
            return Ok(());
        };
        for (name, value) in outbound.headers().iter() {
            if let Err(e) = ctx
                .request_mut()
                .headers_mut()
                .try_insert(name, value.to_string())
            {
                tracing::warn!(error = %e, header = name, "could not add a trace header to an AWS call");
            }
        }
        let Some(sub) = outbound.subsegment().filter(|s| s.is_sampled()).cloned() else {
            return Ok(());
        };
        if std::mem::replace(&mut call.request_recorded, true) {
            return Ok(());
        }
        if let Some(row) = row {
            let request = ctx.request();
            let body = if row.request_needs_body() {
                Body::parse(
                    request.headers().get("content-type"),
                    request.body().bytes(),
                )
            } else {
                Body::None
            };
            let message = Message {
                uri: Some(request.uri()),
                headers: request.headers(),
                body,
                status: None,
            };
            for field in row.request {
                if let Some(value) = message.read(field) {
                    sub.set_aws(field.name, value);
                }
            }
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempts = cfg.load::<RequestAttempts>().map(|a| a.attempts());
        let Some(call) = cfg.get_mut_from_interceptor_state::<XRayCall>() else {
            return Ok(());
        };
        // A call that failed before it was sent is decided now, with what is known of it.
        let request = ctx.request();
        call.decide(
            &self.options,
            request.map_or("", |r| r.method()),
            request.map(|r| r.uri()),
        );
        let row = call.params;
        if let Some(mut outbound) = call.finish() {
            record_outcome(outbound.exchange(), ctx, attempts, row);
        }
        Ok(())
    }
}

/// Records what the call's last attempt returned and ends the call.
fn record_outcome(
    exchange: &mut Exchange,
    ctx: &FinalizerInterceptorContextRef<'_>,
    attempts: Option<u32>,
    row: Option<&'static params::Operation>,
) {
    let Some(sub) = exchange.entity().filter(|s| s.is_sampled()).cloned() else {
        exchange.complete();
        return;
    };
    let sub = &sub;
    sub.set_aws("retries", attempts.unwrap_or(1).saturating_sub(1));
    let response = ctx.response();
    if let Some(response) = response {
        let status = response.status().as_u16();
        let headers = response.headers();
        let content_length = headers
            .get("content-length")
            .and_then(|v| xray_core::http::parse_content_length(v.as_bytes()))
            .or_else(|| response.body().bytes().map(|b| b.len() as u64));
        exchange.respond(status, content_length);
        if let Some(id) = response.request_id() {
            sub.set_aws("request_id", id);
        }
        if let Some(id_2) = headers.get("x-amz-id-2") {
            sub.set_aws("id_2", id_2);
        }
    }
    match ctx.output_or_error() {
        Some(Ok(_)) => {
            if let (Some(row), Some(response)) = (row, response) {
                let body = if row.response_needs_body() {
                    Body::parse(
                        response.headers().get("content-type"),
                        response.body().bytes(),
                    )
                } else {
                    Body::None
                };
                let message = Message {
                    uri: None,
                    headers: response.headers(),
                    body,
                    status: Some(response.status().as_u16()),
                };
                for field in row.response {
                    if let Some(value) = message.read(field) {
                        sub.set_aws(field.name, value);
                    }
                }
            }
        }
        Some(Err(err)) => {
            let exceptions = crate::error::failure(sub, err, response);
            exchange.fail_with(exceptions);
        }
        None => {}
    }
    exchange.complete();
}
