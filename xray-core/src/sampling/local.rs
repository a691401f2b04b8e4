//! Local sampling with the default rule.

use std::sync::Arc;

use super::{Reservoir, Sampler, SamplingDecision, SamplingRequest};
use crate::time::Timestamp;

/// Samples with a fixed target per second, then a fixed rate of the rest.
#[derive(Debug)]
pub struct LocalSampler {
    reservoir: Reservoir,
    rate: f64,
    name: Arc<str>,
}

impl LocalSampler {
    /// `fixed_target` requests per second, then `rate` (0.0 to 1.0) of the rest.
    pub fn new(fixed_target: u32, rate: f64) -> Self {
        Self {
            reservoir: Reservoir::new(fixed_target),
            rate: if rate.is_finite() {
                rate.clamp(0.0, 1.0)
            } else {
                0.0
            },
            name: Arc::from("Default"),
        }
    }
}

impl Default for LocalSampler {
    /// The X-Ray default rule: 1 request per second, then 5 %.
    fn default() -> Self {
        Self::new(1, 0.05)
    }
}

impl Sampler for LocalSampler {
    fn should_sample(&self, _request: &SamplingRequest<'_>) -> SamplingDecision {
        let sampled = self.reservoir.take(Timestamp::now().as_secs())
            || (self.rate > 0.0 && fastrand::f64() < self.rate);
        SamplingDecision {
            sampled,
            rule_name: Some(self.name.clone()),
        }
    }
}
