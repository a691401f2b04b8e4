//! ECS: container and task metadata from the task metadata endpoint v4.

use serde_json::{Map, Value};

use super::{pick, split_http_url, PluginSources};
use crate::httpc::request;

pub(super) fn resolve(src: &PluginSources) -> Option<Map<String, Value>> {
    let uri = src.ecs_metadata_uri.as_deref()?;
    let Some((addr, base)) = split_http_url(uri) else {
        tracing::warn!(
            uri,
            "ECS_CONTAINER_METADATA_URI_V4 is not an http:// URL; ECS plugin skipped"
        );
        return None;
    };
    let get = |path: &str| -> Option<Value> {
        let r = request(&addr, "GET", path, &[], b"", src.timeout).ok()?;
        (r.status == 200)
            .then(|| serde_json::from_slice(&r.body).ok())
            .flatten()
    };
    let container = get(if base.is_empty() { "/" } else { &base })?;
    let mut block = pick(
        &container,
        &[
            ("Name", "container"),
            ("DockerId", "container_id"),
            ("ContainerARN", "container_arn"),
        ],
    );
    if let Some(task) = get(&format!("{base}/task")) {
        block.extend(pick(
            &task,
            &[
                ("TaskARN", "task_arn"),
                ("Family", "task_family"),
                ("Cluster", "cluster"),
                ("LaunchType", "launch_type"),
                ("AvailabilityZone", "availability_zone"),
            ],
        ));
    }
    if let (false, Some(h)) = (block.contains_key("container"), &src.hostname) {
        block.insert("container".into(), Value::String(h.clone()));
    }
    (!block.is_empty()).then_some(block)
}
