//! `GetSamplingRules` and `GetSamplingTargets` through the emitter's SDK client, for the
//! centralized sampler's poller.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_xray::error::DisplayErrorContext;
use aws_sdk_xray::primitives::DateTime;
use aws_sdk_xray::types::SamplingStatisticsDocument;

use super::sdk::{no_sdk_retries, Sdk};
use crate::sampling::api::{
    usable, RulesPage, SamplingRule, SamplingTarget, StatisticsDocument, TargetsAnswer,
};
use crate::sampling::client::SamplingApi;

/// The poller's transport through the SDK.
#[derive(Debug)]
pub(super) struct SdkSampling {
    pub(super) sdk: Arc<Sdk>,
}

fn rule(r: &aws_sdk_xray::types::SamplingRule) -> SamplingRule {
    SamplingRule {
        rule_name: r.rule_name().unwrap_or_default().to_string(),
        resource_arn: r.resource_arn().to_string(),
        priority: r.priority().into(),
        fixed_rate: r.fixed_rate(),
        reservoir_size: r.reservoir_size().into(),
        service_name: r.service_name().to_string(),
        service_type: r.service_type().to_string(),
        host: r.host().to_string(),
        http_method: r.http_method().to_string(),
        url_path: r.url_path().to_string(),
        version: r.version().into(),
    }
}

/// Counts sent to the API as its 32-bit integers.
fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl SamplingApi for SdkSampling {
    fn rules_page(&self, next_token: Option<&str>, timeout: Duration) -> Result<RulesPage, String> {
        let sdk = self.sdk.clone();
        let token = next_token.map(str::to_owned);
        self.sdk.run(timeout, async move {
            let out = sdk
                .client()
                .await
                .get_sampling_rules()
                .set_next_token(token)
                .customize()
                .config_override(no_sdk_retries())
                .send()
                .await
                .map_err(|e| format!("GetSamplingRules: {}", DisplayErrorContext(&e)))?;
            let rules = out
                .sampling_rule_records()
                .iter()
                .filter_map(|r| r.sampling_rule())
                .filter_map(|r| usable(rule(r)))
                .collect();
            Ok(RulesPage {
                rules,
                next_token: out
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            })
        })
    }

    fn targets(
        &self,
        documents: &[StatisticsDocument],
        timeout: Duration,
    ) -> Result<TargetsAnswer, String> {
        let docs = documents
            .iter()
            .map(|d| {
                SamplingStatisticsDocument::builder()
                    .rule_name(&d.rule_name)
                    .client_id(&d.client_id)
                    .timestamp(DateTime::from_secs(
                        i64::try_from(d.timestamp).unwrap_or(i64::MAX),
                    ))
                    .request_count(count(d.request_count))
                    .sampled_count(count(d.sampled_count))
                    .borrow_count(count(d.borrow_count))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sdk = self.sdk.clone();
        self.sdk.run(timeout, async move {
            let out = sdk
                .client()
                .await
                .get_sampling_targets()
                .set_sampling_statistics_documents(Some(docs))
                .customize()
                .config_override(no_sdk_retries())
                .send()
                .await
                .map_err(|e| format!("GetSamplingTargets: {}", DisplayErrorContext(&e)))?;
            let targets = out
                .sampling_target_documents()
                .iter()
                .filter_map(|t| {
                    Some(SamplingTarget {
                        rule_name: t.rule_name()?.to_string(),
                        fixed_rate: Some(t.fixed_rate()).filter(|r| r.is_finite()),
                        reservoir_quota: t.reservoir_quota().map(i64::from),
                        reservoir_quota_ttl: t.reservoir_quota_ttl().map(DateTime::as_secs_f64),
                    })
                })
                .collect();
            for u in out.unprocessed_statistics() {
                tracing::debug!(rule = ?u.rule_name(), code = ?u.error_code(), message = ?u.message(), "X-Ray did not process sampling statistics");
            }
            Ok(TargetsAnswer {
                targets,
                last_rule_modification: out.last_rule_modification().map(DateTime::as_secs_f64),
                unprocessed: out.unprocessed_statistics().len(),
            })
        })
    }

    fn describe(&self) -> String {
        "the X-Ray API (AWS SDK)".into()
    }
}
