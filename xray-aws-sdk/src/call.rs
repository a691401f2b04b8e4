//! The state of one AWS call, kept in the call's own `ConfigBag`.
//!
//! One interceptor serves every call of a client at once, so nothing about a call lives in the
//! interceptor. The orchestrator gives each execution its own bag; the state goes into its
//! interceptor layer and is dropped with it.
//!
//! The call's subsegment begins on the first attempt's `modify_before_transmit`, the first
//! hook that knows the endpoint, so that a call to an ignored host (or to the daemon) can be
//! left alone before anything is recorded: a subsegment, once begun, is part of its segment
//! and would be sent with it. Its start time is the time the call was made. A call that ends
//! before it was ever sent (no credentials, no endpoint, dropped while waiting) begins and
//! ends its subsegment at that moment, so it is still recorded.

use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use xray_core::http::{OutboundCall, OutboundOptions};
use xray_core::lifecycle::Exchange;
use xray_core::time::Timestamp;
use xray_core::{Entity, Namespace};

use crate::params::Operation;

/// Per-execution state.
#[derive(Debug)]
pub(crate) struct XRayCall {
    /// The entity the call was made from.
    pub(crate) parent: Entity,
    /// When the call started (before the operation's configuration was applied).
    pub(crate) started: Timestamp,
    /// The service and operation (from `read_before_serialization` on), and the region.
    pub(crate) described: Option<(Option<Metadata>, Option<String>)>,
    /// Where the call stands.
    pub(crate) state: CallState,
    /// The capture-table row for this operation, if any.
    pub(crate) params: Option<&'static Operation>,
    /// Request parameters have been recorded (they are read on the first attempt only).
    pub(crate) request_recorded: bool,
}

/// Where a call stands.
#[derive(Debug)]
pub(crate) enum CallState {
    /// Not sent yet: the subsegment begins when the endpoint is known.
    Unsent,
    /// Being recorded. Dropped with the execution's state: a call dropped before it finished
    /// is recorded as cancelled.
    Recording(OutboundCall),
    /// Left alone (an ignore rule, or the daemon's address): nothing recorded, no header.
    Ignored,
    /// Recorded and ended.
    Done,
}

impl XRayCall {
    pub(crate) fn new(parent: Entity) -> Self {
        Self {
            parent,
            started: Timestamp::now(),
            described: None,
            state: CallState::Unsent,
            params: None,
            request_recorded: false,
        }
    }

    /// Decides, once the request's method and URL are known (`url` is `None` when the call
    /// never got an endpoint), whether the call is recorded, and begins its subsegment if so.
    /// Only an unsent, described call is decided; later calls change nothing.
    pub(crate) fn decide(&mut self, options: &OutboundOptions, method: &str, url: Option<&str>) {
        if !matches!(self.state, CallState::Unsent) || self.described.is_none() {
            return;
        }
        let ignored = url.is_some_and(|u| options.ignores(self.parent.recorder(), method, u));
        self.state = if ignored {
            CallState::Ignored
        } else {
            CallState::Recording(OutboundCall::for_subsegment(
                self.begin_subsegment(),
                options,
            ))
        };
    }

    /// The call being recorded, if it is.
    pub(crate) fn recording(&mut self) -> Option<&mut OutboundCall> {
        match &mut self.state {
            CallState::Recording(call) => Some(call),
            _ => None,
        }
    }

    /// Takes the call out to end it; the state becomes `Done`.
    pub(crate) fn finish(&mut self) -> Option<OutboundCall> {
        match std::mem::replace(&mut self.state, CallState::Done) {
            CallState::Recording(call) => Some(call),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Begins the `aws` subsegment named after the service, with `operation` and `region`,
    /// starting when the call was made.
    fn begin_subsegment(&mut self) -> Entity {
        let (metadata, region) = self.described.take().unwrap_or_default();
        let service = metadata.as_ref().map_or("AWS", |m| m.service());
        let sub = self.parent.begin_subsegment(service);
        if sub.is_sampled() {
            let started = self.started;
            sub.set_namespace(Namespace::Aws);
            sub.with_document(|d| {
                d.start_time = started.min(d.start_time);
                if let Some(m) = &metadata {
                    d.aws.insert("operation".into(), m.name().into());
                }
                if let Some(region) = region {
                    d.aws.insert("region".into(), region.into());
                }
            });
        }
        sub
    }
}

impl Drop for XRayCall {
    fn drop(&mut self) {
        // Dropped before it was ever sent (a timeout while credentials load, a `select!`):
        // record the call, ended as cancelled by the lifecycle's rules.
        if matches!(self.state, CallState::Unsent) && self.described.is_some() {
            drop(Exchange::client(self.begin_subsegment()));
        }
    }
}

impl Storable for XRayCall {
    type Storer = StoreReplace<Self>;
}
