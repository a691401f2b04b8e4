//! The state of one AWS call, kept in the call's own `ConfigBag`.
//!
//! One interceptor serves every call of a client at once, so nothing about a call lives in the
//! interceptor. The orchestrator gives each execution its own bag; the state goes into its
//! interceptor layer and is dropped with it. The subsegment is held by a guard: if the call's
//! future is dropped before it completes (a timeout, a `select!`), dropping the bag ends the
//! subsegment, so it is never left open.

use aws_smithy_types::config_bag::{Storable, StoreReplace};
use xray_core::http::OutboundCall;
use xray_core::time::Timestamp;
use xray_core::Entity;

use crate::params::Operation;

/// Per-execution state.
#[derive(Debug)]
pub(crate) struct XRayCall {
    /// The entity the call was made from.
    pub(crate) parent: Entity,
    /// When the call started (before the operation's configuration was applied).
    pub(crate) started: Timestamp,
    /// The call's subsegment, headers and end, once the service and operation are known.
    /// Dropped with the execution's state: a call dropped before it finished is recorded as
    /// cancelled.
    pub(crate) call: Option<OutboundCall>,
    /// The capture-table row for this operation, if any.
    pub(crate) params: Option<&'static Operation>,
    /// Request parameters have been recorded (they are read on the first attempt only).
    pub(crate) request_recorded: bool,
}

impl XRayCall {
    pub(crate) fn new(parent: Entity) -> Self {
        Self {
            parent,
            started: Timestamp::now(),
            call: None,
            params: None,
            request_recorded: false,
        }
    }
}

impl Storable for XRayCall {
    type Storer = StoreReplace<Self>;
}
