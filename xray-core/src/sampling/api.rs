//! The JSON shapes of the X-Ray sampling API, as the daemon's TCP proxy serves it
//! (`POST /GetSamplingRules`, `POST /SamplingTargets`).
//!
//! Responses are read leniently: one malformed rule or target is skipped with a warning and
//! the rest are used; only a body that is not the expected JSON object fails the call.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What went wrong with a response body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("response is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("response is not the expected JSON object: {0}")]
    Shape(&'static str),
}

/// `SamplingRule` as returned by `GetSamplingRules`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SamplingRule {
    pub(crate) rule_name: String,
    #[serde(rename = "ResourceARN", default = "star")]
    pub(crate) resource_arn: String,
    pub(crate) priority: i64,
    pub(crate) fixed_rate: f64,
    pub(crate) reservoir_size: i64,
    #[serde(default = "star")]
    pub(crate) service_name: String,
    #[serde(default = "star")]
    pub(crate) service_type: String,
    #[serde(default = "star")]
    pub(crate) host: String,
    #[serde(rename = "HTTPMethod", default = "star")]
    pub(crate) http_method: String,
    #[serde(rename = "URLPath", default = "star")]
    pub(crate) url_path: String,
    #[serde(default = "one")]
    pub(crate) version: i64,
}

fn star() -> String {
    "*".into()
}

fn one() -> i64 {
    1
}

/// One page of `GetSamplingRules`.
#[derive(Debug, Default)]
pub(crate) struct RulesPage {
    pub(crate) rules: Vec<SamplingRule>,
    pub(crate) next_token: Option<String>,
}

/// Reads one `GetSamplingRules` page. Rules that cannot be read, or that this SDK must not
/// use (`Version` ≠ 1, `ResourceARN` ≠ `*`), are left out.
pub(crate) fn parse_rules_page(body: &[u8]) -> Result<RulesPage, ApiError> {
    let v: Value = serde_json::from_slice(body)?;
    let obj = v.as_object().ok_or(ApiError::Shape("not an object"))?;
    let records = match obj.get("SamplingRuleRecords") {
        Some(Value::Array(a)) => a.as_slice(),
        Some(Value::Null) | None => &[],
        Some(_) => return Err(ApiError::Shape("SamplingRuleRecords is not an array")),
    };
    let mut rules = Vec::with_capacity(records.len());
    for record in records {
        let Some(raw) = record.get("SamplingRule") else {
            tracing::warn!("ignoring a sampling rule record without SamplingRule");
            continue;
        };
        match SamplingRule::deserialize(raw) {
            Ok(rule) => rules.extend(usable(rule)),
            Err(e) => tracing::warn!(error = %e, "ignoring unreadable sampling rule"),
        }
    }
    let next_token = match obj.get("NextToken") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    Ok(RulesPage { rules, next_token })
}

/// The rule, when this SDK may use it: rules of another `Version` than 1, for specific
/// resources (`ResourceARN` other than `*`), or with an empty name or a rate that is not a
/// number are left out (whatever transport brought them).
pub(crate) fn usable(rule: SamplingRule) -> Option<SamplingRule> {
    if rule.version != 1 {
        tracing::debug!(rule = %rule.rule_name, version = rule.version, "skipping sampling rule of another version");
        None
    } else if rule.resource_arn != "*" {
        tracing::debug!(rule = %rule.rule_name, "skipping sampling rule for specific resources");
        None
    } else if !rule.fixed_rate.is_finite() || rule.rule_name.is_empty() {
        tracing::warn!(rule = %rule.rule_name, "ignoring sampling rule with an invalid name or rate");
        None
    } else {
        Some(rule)
    }
}

/// One entry of `SamplingTargetDocuments`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SamplingTarget {
    pub(crate) rule_name: String,
    #[serde(default)]
    pub(crate) fixed_rate: Option<f64>,
    #[serde(default)]
    pub(crate) reservoir_quota: Option<i64>,
    /// Epoch seconds.
    #[serde(rename = "ReservoirQuotaTTL", default)]
    pub(crate) reservoir_quota_ttl: Option<f64>,
}

/// A `SamplingTargets` answer.
#[derive(Debug, Default)]
pub(crate) struct TargetsAnswer {
    pub(crate) targets: Vec<SamplingTarget>,
    /// Epoch seconds.
    pub(crate) last_rule_modification: Option<f64>,
    pub(crate) unprocessed: usize,
}

/// Reads a `SamplingTargets` answer.
pub(crate) fn parse_targets(body: &[u8]) -> Result<TargetsAnswer, ApiError> {
    let v: Value = serde_json::from_slice(body)?;
    let obj = v.as_object().ok_or(ApiError::Shape("not an object"))?;
    let docs = match obj.get("SamplingTargetDocuments") {
        Some(Value::Array(a)) => a.as_slice(),
        Some(Value::Null) | None => &[],
        Some(_) => return Err(ApiError::Shape("SamplingTargetDocuments is not an array")),
    };
    let mut targets = Vec::with_capacity(docs.len());
    for d in docs {
        match SamplingTarget::deserialize(d) {
            Ok(t) => targets.push(t),
            Err(e) => tracing::warn!(error = %e, "ignoring unreadable sampling target"),
        }
    }
    let unprocessed = match obj.get("UnprocessedStatistics") {
        Some(Value::Array(a)) => {
            for u in a {
                tracing::debug!(statistics = %u, "X-Ray did not process sampling statistics");
            }
            a.len()
        }
        _ => 0,
    };
    Ok(TargetsAnswer {
        targets,
        last_rule_modification: obj.get("LastRuleModification").and_then(Value::as_f64),
        unprocessed,
    })
}

/// One `SamplingStatisticsDocuments` entry.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StatisticsDocument {
    pub(crate) rule_name: String,
    #[serde(rename = "ClientID")]
    pub(crate) client_id: String,
    /// Epoch seconds.
    pub(crate) timestamp: u64,
    pub(crate) request_count: u64,
    pub(crate) sampled_count: u64,
    pub(crate) borrow_count: u64,
}

/// The `SamplingTargets` request body.
pub(crate) fn targets_request(docs: &[StatisticsDocument]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Body<'a> {
        sampling_statistics_documents: &'a [StatisticsDocument],
    }
    serde_json::to_vec(&Body {
        sampling_statistics_documents: docs,
    })
    .unwrap_or_else(|_| b"{}".to_vec())
}

/// The `GetSamplingRules` request body.
pub(crate) fn rules_request(next_token: Option<&str>) -> Vec<u8> {
    match next_token {
        Some(t) => serde_json::to_vec(&serde_json::json!({ "NextToken": t }))
            .unwrap_or_else(|_| b"{}".to_vec()),
        None => b"{}".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_of_other_versions_or_resources_are_left_out() {
        let body = br#"{"SamplingRuleRecords": [
            {"SamplingRule": {"RuleName": "Default", "RuleARN": "arn", "ResourceARN": "*",
             "Priority": 10000, "FixedRate": 0.05, "ReservoirSize": 1, "ServiceName": "*",
             "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*", "Version": 1,
             "Attributes": {}}, "CreatedAt": 0, "ModifiedAt": 1},
            {"SamplingRule": {"RuleName": "v2", "ResourceARN": "*", "Priority": 1,
             "FixedRate": 1, "ReservoirSize": 1, "Version": 2}},
            {"SamplingRule": {"RuleName": "arn", "ResourceARN": "arn:aws:x", "Priority": 1,
             "FixedRate": 1, "ReservoirSize": 1, "Version": 1}},
            {"SamplingRule": {"RuleName": "bad", "Priority": "high"}},
            {"NoRule": true}
        ], "NextToken": "abc"}"#;
        let page = parse_rules_page(body).unwrap();
        assert_eq!(page.rules.len(), 1);
        assert_eq!(page.rules[0].rule_name, "Default");
        assert_eq!(page.rules[0].priority, 10000);
        assert_eq!(page.next_token.as_deref(), Some("abc"));
    }

    #[test]
    fn bodies_that_are_not_the_expected_object_fail() {
        for bad in [&b"garbage"[..], b"[]", b"{\"SamplingRuleRecords\": 5}", b""] {
            assert!(
                parse_rules_page(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [&b"<html>"[..], b"3", b"{\"SamplingTargetDocuments\": {}}"] {
            assert!(parse_targets(bad).is_err());
        }
    }

    #[test]
    fn targets_and_last_modification_are_read() {
        let t = parse_targets(
            br#"{"SamplingTargetDocuments": [{"RuleName": "r", "FixedRate": 0.1,
                "ReservoirQuota": 5, "ReservoirQuotaTTL": 1700000010.5, "Interval": 10}],
                "LastRuleModification": 1700000000, "UnprocessedStatistics": []}"#,
        )
        .unwrap();
        assert_eq!(t.targets[0].reservoir_quota, Some(5));
        assert_eq!(t.targets[0].reservoir_quota_ttl, Some(1_700_000_010.5));
        assert_eq!(t.last_rule_modification, Some(1_700_000_000.0));
        assert_eq!(t.unprocessed, 0);
    }

    #[test]
    fn statistics_use_the_api_field_names() {
        let body = targets_request(&[StatisticsDocument {
            rule_name: "r".into(),
            client_id: "0123456789abcdef01234567".into(),
            timestamp: 5,
            request_count: 3,
            sampled_count: 2,
            borrow_count: 1,
        }]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let d = &v["SamplingStatisticsDocuments"][0];
        assert_eq!(d["RuleName"], "r");
        assert_eq!(d["ClientID"], "0123456789abcdef01234567");
        assert_eq!(d["Timestamp"], 5);
        assert_eq!(d["RequestCount"], 3);
        assert_eq!(d["SampledCount"], 2);
        assert_eq!(d["BorrowCount"], 1);
        assert_eq!(rules_request(None), b"{}");
        assert_eq!(rules_request(Some("t")), br#"{"NextToken":"t"}"#);
    }
}
