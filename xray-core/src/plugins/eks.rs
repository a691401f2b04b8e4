//! EKS: the pod (host name) and container (cgroup) of a pod with a service-account token.

use serde_json::{Map, Value};

use super::{container_id, PluginSources};

pub(super) fn resolve(src: &PluginSources) -> Option<Map<String, Value>> {
    if !src.eks_token.exists() {
        return None;
    }
    let mut block = Map::new();
    if let Some(name) = &src.eks_cluster_name {
        block.insert("cluster_name".into(), Value::String(name.clone()));
    } else {
        tracing::debug!("EKS cluster name unknown; set EKS_CLUSTER_NAME to record it");
    }
    if let Some(h) = &src.hostname {
        block.insert("pod".into(), Value::String(h.clone()));
    }
    if let Some(id) = container_id(&src.cgroup) {
        block.insert("container_id".into(), Value::String(id));
    }
    Some(block)
}
