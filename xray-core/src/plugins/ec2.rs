//! EC2: the instance identity document, with an IMDSv2 token when the service gives one.

use serde_json::{Map, Value};

use super::{pick, split_http_url, PluginSources};
use crate::httpc::request;

pub(super) fn resolve(src: &PluginSources) -> Option<Map<String, Value>> {
    let (addr, base) = split_http_url(&src.imds_endpoint)?;
    // IMDSv2: a session token first. Instances that only allow v1 (or old metadata services)
    // refuse the PUT, and the identity document is read without a token.
    let token = request(
        &addr,
        "PUT",
        &format!("{base}/latest/api/token"),
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        b"",
        src.timeout,
    )
    .ok()
    .filter(|r| r.status == 200)
    .and_then(|r| String::from_utf8(r.body).ok())
    .map(|t| t.trim().to_string())
    .filter(|t| !t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    if token.is_none() {
        tracing::debug!("no IMDSv2 token; reading the EC2 identity document with IMDSv1");
    }
    let headers: Vec<(&str, &str)> = token
        .as_deref()
        .map(|t| vec![("X-aws-ec2-metadata-token", t)])
        .unwrap_or_default();
    let doc = request(
        &addr,
        "GET",
        &format!("{base}/latest/dynamic/instance-identity/document"),
        &headers,
        b"",
        src.timeout,
    )
    .ok()
    .filter(|r| r.status == 200)?;
    let doc: Value = serde_json::from_slice(&doc.body).ok()?;
    let block = pick(
        &doc,
        &[
            ("instanceId", "instance_id"),
            ("availabilityZone", "availability_zone"),
            ("instanceType", "instance_size"),
            ("imageId", "ami_id"),
        ],
    );
    (!block.is_empty()).then_some(block)
}
