//! The sampling poller's HTTP client lives in the crate-wide [`crate::httpc`] module, shared
//! with the plugins.

pub(crate) use crate::httpc::post_json;
