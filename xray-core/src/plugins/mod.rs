//! Plugins: where the service runs (EC2, ECS, EKS, Elastic Beanstalk).
//!
//! Enabled on the recorder builder, plugins are resolved once, on a background thread, right
//! after the recorder is built: start-up never waits for them, and every segment sent after
//! they finish carries their blocks under `aws` (`ec2`, `ecs`, `eks`, `elastic_beanstalk`) and
//! the most specific `origin` (EKS, then ECS, then Elastic Beanstalk, then EC2). The origin is
//! also given to the sampler as the service type. A plugin that finds nothing (not on that
//! platform, endpoint unreachable, file missing) contributes nothing; none of them can fail the
//! application. Network lookups are bounded by short timeouts (one second in all, at most).
//!
//! ```no_run
//! use xray_core::plugins::Plugin;
//! let recorder = xray_core::Recorder::builder()
//!     .service_name("orders")
//!     .plugins([Plugin::Ec2, Plugin::Ecs])
//!     .build()
//!     .unwrap();
//! // Optional: give the plugins a moment before the first request.
//! recorder.wait_for_plugins(std::time::Duration::from_secs(1));
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::daemon::HostPort;

mod beanstalk;
mod ec2;
mod ecs;
mod eks;

/// Data that plugins found about where the service runs.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct RuntimeEnvironment {
    /// `origin`, e.g. `AWS::ECS::Container`.
    pub origin: Option<String>,
    /// Blocks for `aws` (`ec2`, `ecs`, `eks`, `elastic_beanstalk`).
    pub aws: Map<String, Value>,
}

/// A runtime environment to detect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Plugin {
    /// Amazon EC2: instance identity from the instance metadata service (IMDSv2, then v1).
    Ec2,
    /// Amazon ECS: container and task metadata from the task metadata endpoint v4.
    Ecs,
    /// Amazon EKS: pod and container from the pod's hostname and cgroup.
    Eks,
    /// AWS Elastic Beanstalk: the environment file the platform writes.
    ElasticBeanstalk,
}

impl Plugin {
    /// The `origin` this plugin sets.
    pub const fn origin(&self) -> &'static str {
        match self {
            Plugin::Ec2 => "AWS::EC2::Instance",
            Plugin::Ecs => "AWS::ECS::Container",
            Plugin::Eks => "AWS::EKS::Container",
            Plugin::ElasticBeanstalk => "AWS::ElasticBeanstalk::Environment",
        }
    }

    /// The key of this plugin's block under `aws`.
    pub const fn aws_key(&self) -> &'static str {
        match self {
            Plugin::Ec2 => "ec2",
            Plugin::Ecs => "ecs",
            Plugin::Eks => "eks",
            Plugin::ElasticBeanstalk => "elastic_beanstalk",
        }
    }

    /// Higher wins when several plugins find something.
    const fn specificity(&self) -> u8 {
        match self {
            Plugin::Eks => 4,
            Plugin::Ecs => 3,
            Plugin::ElasticBeanstalk => 2,
            Plugin::Ec2 => 1,
        }
    }
}

/// Where plugins look. The defaults are the real locations; tests and unusual platforms
/// override them.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PluginSources {
    /// Base URL of the EC2 instance metadata service (`http://169.254.169.254`).
    pub imds_endpoint: String,
    /// ECS task metadata endpoint v4 (`ECS_CONTAINER_METADATA_URI_V4`).
    pub ecs_metadata_uri: Option<String>,
    /// Elastic Beanstalk's X-Ray environment file.
    pub beanstalk_config: PathBuf,
    /// The Kubernetes service-account token, whose presence means EKS.
    pub eks_token: PathBuf,
    /// The EKS cluster name. Reading it from the cluster's `cluster-info` config map needs a
    /// TLS call to the Kubernetes API, which this crate does not make: set it here or with
    /// `EKS_CLUSTER_NAME` (for example from the downward API or the deployment manifest).
    pub eks_cluster_name: Option<String>,
    /// The cgroup file that names the container (`/proc/self/cgroup`).
    pub cgroup: PathBuf,
    /// The host name (the pod name on EKS); default `HOSTNAME` or `/etc/hostname`.
    pub hostname: Option<String>,
    /// Time allowed for each network call; the calls of one plugin stay under one second.
    pub timeout: Duration,
}

impl Default for PluginSources {
    fn default() -> Self {
        Self {
            imds_endpoint: "http://169.254.169.254".into(),
            ecs_metadata_uri: std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok(),
            beanstalk_config: "/var/elasticbeanstalk/xray/environment.conf".into(),
            eks_token: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
            eks_cluster_name: std::env::var("EKS_CLUSTER_NAME").ok(),
            cgroup: "/proc/self/cgroup".into(),
            hostname: std::env::var("HOSTNAME").ok().or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
            }),
            timeout: Duration::from_millis(400),
        }
    }
}

/// Runs the plugins (blocking, bounded by their timeouts) and merges what they found.
pub fn resolve(plugins: &[Plugin], sources: &PluginSources) -> RuntimeEnvironment {
    let mut env = RuntimeEnvironment::default();
    let mut best = 0u8;
    for plugin in plugins {
        let found = match plugin {
            Plugin::Ec2 => ec2::resolve(sources),
            Plugin::Ecs => ecs::resolve(sources),
            Plugin::Eks => eks::resolve(sources),
            Plugin::ElasticBeanstalk => beanstalk::resolve(sources),
        };
        match found {
            Some(block) => {
                tracing::debug!(plugin = ?plugin, "X-Ray plugin found its platform");
                env.aws
                    .insert(plugin.aws_key().into(), Value::Object(block));
                if plugin.specificity() > best {
                    best = plugin.specificity();
                    env.origin = Some(plugin.origin().into());
                }
            }
            None => tracing::debug!(plugin = ?plugin, "X-Ray plugin found nothing"),
        }
    }
    env
}

/// `http://host[:port][/path]` → the address and the path (without trailing `/`).
pub(crate) fn split_http_url(url: &str) -> Option<(HostPort, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') || h.ends_with(']') => (h, p.parse().ok()?),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((
        HostPort {
            host: host.to_string(),
            port,
        },
        path.trim_end_matches('/').to_string(),
    ))
}

/// Copies string fields from `from` (by source name) into a new block (by X-Ray name).
pub(crate) fn pick(from: &Value, fields: &[(&str, &str)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (src, dst) in fields {
        if let Some(v) = from.get(*src).filter(|v| !v.is_null()) {
            out.insert((*dst).to_string(), v.clone());
        }
    }
    out
}

/// The container id: the last 64-hex-digit run in the cgroup file.
pub(crate) fn container_id(cgroup: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(cgroup).ok()?;
    let mut found = None;
    for line in text.lines() {
        let bytes = line.as_bytes();
        let mut run = 0usize;
        for (i, b) in bytes.iter().enumerate() {
            if b.is_ascii_hexdigit() && !b.is_ascii_uppercase() {
                run += 1;
                if run >= 64 && (i + 1 == bytes.len() || !bytes[i + 1].is_ascii_hexdigit()) {
                    found = Some(line[i + 1 - 64..=i].to_string());
                }
            } else {
                run = 0;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_are_split() {
        let (hp, path) = split_http_url("http://169.254.170.2/v4/abc-123/").unwrap();
        assert_eq!(
            (hp.host.as_str(), hp.port, path.as_str()),
            ("169.254.170.2", 80, "/v4/abc-123")
        );
        let (hp, path) = split_http_url("http://127.0.0.1:9000").unwrap();
        assert_eq!((hp.port, path.as_str()), (9000, ""));
        assert!(split_http_url("https://x/").is_none());
        assert!(split_http_url("http://:80/").is_none());
        assert!(split_http_url("http://h:notaport/").is_none());
    }

    #[test]
    fn most_specific_origin_wins() {
        assert!(Plugin::Eks.specificity() > Plugin::Ecs.specificity());
        assert!(Plugin::Ecs.specificity() > Plugin::ElasticBeanstalk.specificity());
        assert!(Plugin::ElasticBeanstalk.specificity() > Plugin::Ec2.specificity());
    }
}
