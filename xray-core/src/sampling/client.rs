//! How the sampling poller reaches the sampling API.
//!
//! By default it posts JSON to the daemon's TCP proxy with the crate-wide HTTP client
//! ([`crate::httpc`], shared with the plugins). With the cargo feature `xray-api` it can call
//! the X-Ray API itself through the AWS SDK instead ([`SamplingApi`], implemented by the
//! X-Ray API emitter).

use std::time::Duration;

pub(crate) use crate::httpc::post_json;

use super::api::{RulesPage, StatisticsDocument, TargetsAnswer};

/// A transport for `GetSamplingRules` and `GetSamplingTargets` other than the daemon's proxy.
/// Each call blocks the poller's thread for at most `timeout`.
#[cfg_attr(not(feature = "xray-api"), allow(dead_code))]
pub(crate) trait SamplingApi: Send + Sync + 'static {
    /// One page of `GetSamplingRules`, rules this SDK cannot use left out (see
    /// [`usable`](super::api::usable)).
    fn rules_page(&self, next_token: Option<&str>, timeout: Duration) -> Result<RulesPage, String>;

    /// One `GetSamplingTargets` call with up to 25 statistics documents.
    fn targets(
        &self,
        documents: &[StatisticsDocument],
        timeout: Duration,
    ) -> Result<TargetsAnswer, String>;

    /// Names the peer in logs.
    fn describe(&self) -> String;
}
