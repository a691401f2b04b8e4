//! Elastic Beanstalk: the environment file the platform writes for X-Ray.

use serde_json::{Map, Value};

use super::{pick, PluginSources};

pub(super) fn resolve(src: &PluginSources) -> Option<Map<String, Value>> {
    let text = std::fs::read(&src.beanstalk_config).ok()?;
    let conf: Value = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(path = %src.beanstalk_config.display(), error = %e, "unreadable Elastic Beanstalk environment file; plugin skipped");
            return None;
        }
    };
    let block = pick(
        &conf,
        &[
            ("environment_name", "environment_name"),
            ("version_label", "version_label"),
            ("deployment_id", "deployment_id"),
        ],
    );
    (!block.is_empty()).then_some(block)
}
