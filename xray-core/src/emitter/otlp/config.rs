//! OpenTelemetry's standard exporter variables.
//!
//! | Variable | Use |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the full URL spans are posted to, used as is |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | a base URL; `/v1/traces` is appended |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TRACES_HEADERS` | `key=value,...` request headers (values percent-decoded) |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` | milliseconds per request |
//! | `OTEL_SERVICE_NAME` | the resource's `service.name` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,...` resource attributes (values percent-decoded) |
//!
//! Only `http/protobuf` is spoken: `OTEL_EXPORTER_OTLP_PROTOCOL` set to anything else, or
//! `OTEL_EXPORTER_OTLP_COMPRESSION` asking for compression, is warned about and otherwise
//! ignored. A value that cannot be parsed is warned about and ignored, as the OpenTelemetry
//! specification asks.

use std::time::Duration;

/// The endpoint used when no variable or builder call gives one: a collector or CloudWatch
/// agent on the same host.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/traces";

/// What the environment says.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct EnvConfig {
    pub(crate) endpoint: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) service_name: Option<String>,
    pub(crate) resource: Vec<(String, String)>,
}

/// Reads the variables through `get` (the process environment in production).
pub(crate) fn read(get: impl Fn(&str) -> Option<String>) -> EnvConfig {
    let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let mut c = EnvConfig::default();
    if let Some(v) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        c.endpoint = Some(v.trim().to_string());
    } else if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        c.endpoint = Some(traces_url(v.trim()));
    }
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        if let Some(v) = get(var) {
            match parse_pairs(&v) {
                Ok(pairs) => {
                    for (k, v) in pairs {
                        // The traces-specific variable comes second and wins.
                        c.headers.retain(|(old, _)| !old.eq_ignore_ascii_case(&k));
                        c.headers.push((k, v));
                    }
                }
                Err(e) => warn_ignored(var, &v, &e),
            }
        }
    }
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ] {
        if let Some(v) = get(var) {
            match v.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => {
                    c.timeout = Some(Duration::from_millis(ms));
                    break;
                }
                _ => warn_ignored(var, &v, "a positive number of milliseconds"),
            }
        }
    }
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(v) = get(var) {
            if v.trim() != "http/protobuf" {
                warn_ignored(var, &v, "http/protobuf, the only protocol of this exporter");
            }
            break;
        }
    }
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ] {
        if let Some(v) = get(var) {
            if v.trim() != "none" {
                warn_ignored(var, &v, "none: this exporter does not compress");
            }
            break;
        }
    }
    if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
        match parse_pairs(&v) {
            Ok(pairs) => c.resource = pairs,
            Err(e) => warn_ignored("OTEL_RESOURCE_ATTRIBUTES", &v, &e),
        }
    }
    c.service_name = get("OTEL_SERVICE_NAME")
        .map(|s| s.trim().to_string())
        .or_else(|| {
            c.resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        });
    c
}

/// The region of an X-Ray endpoint URL (`https://xray.us-west-2.amazonaws.com/...`).
pub(crate) fn xray_region(endpoint: &str) -> Option<&str> {
    let host = endpoint.split_once("://")?.1.split(['/', ':']).next()?;
    let rest = host.strip_prefix("xray.")?;
    let (region, domain) = rest.split_once('.')?;
    (domain.starts_with("amazonaws.") && !region.is_empty()).then_some(region)
}

fn warn_ignored(var: &str, value: &str, expected: &str) {
    let shown: String = value.chars().take(100).collect();
    tracing::warn!("ignoring invalid {var}={shown:?}: expected {expected}");
}

/// `base` with `/v1/traces` appended (one slash between them).
pub(crate) fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// Parses `key=value,key=value` (OpenTelemetry's format for headers and resource attributes):
/// blanks around keys and values are dropped, values are percent-decoded, empty members are
/// skipped. Any malformed member makes the whole value invalid.
pub(crate) fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for member in s.split(',') {
        if member.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = member.split_once('=') else {
            return Err("key=value pairs separated by commas".into());
        };
        let k = k.trim();
        if k.is_empty()
            || k.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err("key=value pairs with non-empty keys".into());
        }
        let v = percent_decode(v.trim())
            .ok_or_else(|| "key=value pairs with valid percent-encoded UTF-8 values".to_string())?;
        out.push((k.to_string(), v));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> EnvConfig {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        read(|k| map.get(k).cloned())
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_the_traces_one_is_used_as_is() {
        assert_eq!(
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).endpoint,
            Some("http://collector:4318/v1/traces".into())
        );
        assert_eq!(
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/base")]).endpoint,
            Some("http://c:4318/base/v1/traces".into())
        );
        assert_eq!(
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1234/custom"),
            ])
            .endpoint,
            Some("http://t:1234/custom".into())
        );
        assert_eq!(env(&[]).endpoint, None);
    }

    #[test]
    fn headers_and_resource_attributes_are_percent_decoded_and_bad_values_ignored() {
        let c = env(&[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=a%20b, x-team = core ,",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "API-KEY=traces"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=from-attrs,note=caf%C3%A9",
            ),
        ]);
        assert_eq!(
            c.headers,
            vec![
                ("x-team".to_string(), "core".to_string()),
                ("API-KEY".to_string(), "traces".to_string())
            ]
        );
        assert_eq!(c.resource.len(), 3);
        assert_eq!(c.resource[2], ("note".into(), "café".into()));
        assert_eq!(c.service_name.as_deref(), Some("from-attrs"));
        let c = env(&[
            ("OTEL_SERVICE_NAME", "checkout"),
            ("OTEL_RESOURCE_ATTRIBUTES", "a=1,broken,b=2"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "k=%zz"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ]);
        assert_eq!(c.service_name.as_deref(), Some("checkout"));
        assert!(c.resource.is_empty(), "the whole invalid value is ignored");
        assert!(c.headers.is_empty());
        assert_eq!(c.timeout, None);
        assert_eq!(
            env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]).timeout,
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn malformed_pairs_never_panic() {
        for s in [
            "=", "=v", "%", "k=%", "k=%4", "k=%ff", "k v=1", "\u{0}=1", ",,,", "k==v",
        ] {
            let _ = parse_pairs(s);
        }
        assert_eq!(
            parse_pairs("k==v").unwrap(),
            vec![("k".into(), "=v".into())]
        );
        assert!(parse_pairs("k=%ff").is_err());
    }

    #[test]
    fn the_region_comes_from_xray_endpoint_urls_only() {
        assert_eq!(
            xray_region("https://xray.eu-west-1.amazonaws.com/v1/traces"),
            Some("eu-west-1")
        );
        assert_eq!(
            xray_region("https://xray.cn-north-1.amazonaws.com.cn/v1/traces"),
            Some("cn-north-1")
        );
        assert_eq!(xray_region("http://localhost:4318/v1/traces"), None);
        assert_eq!(xray_region("https://xray.example.com/v1/traces"), None);
        assert_eq!(xray_region("garbage"), None);
    }
}
