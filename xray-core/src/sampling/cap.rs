//! A per-second cap on caller-forced sampling.

use std::fmt;
use std::sync::Arc;

use super::Reservoir;

/// Follows an incoming `Sampled=1` for at most `per_second` requests each second; beyond that
/// the recorder's sampler decides, as if the caller had sent no decision.
///
/// Used through [`IncomingSampled::Cap`](crate::IncomingSampled::Cap): on a public endpoint
/// any caller can send `Sampled=1`, and without a cap every such request is traced and paid
/// for. Clones share one budget.
///
/// ```
/// use xray_core::sampling::SampledCap;
///
/// let cap = SampledCap::new(2);
/// let admitted = (0..10).filter(|_| cap.admit()).count();
/// assert!(admitted <= 4); // 2 per second; the loop may straddle a second boundary
/// ```
#[derive(Clone)]
pub struct SampledCap {
    reservoir: Arc<Reservoir>,
}

impl SampledCap {
    /// A cap of `per_second` caller-forced samples per second.
    pub fn new(per_second: u32) -> Self {
        Self {
            reservoir: Arc::new(Reservoir::new(per_second)),
        }
    }

    /// The cap.
    pub fn per_second(&self) -> u32 {
        self.reservoir.per_second()
    }

    /// Counts one caller-forced sample; false when this second's allowance is spent.
    pub fn admit(&self) -> bool {
        self.reservoir
            .take(u64::from(crate::time::epoch_seconds_now()))
    }
}

impl fmt::Debug for SampledCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SampledCap")
            .field("per_second", &self.per_second())
            .finish()
    }
}

/// Two caps are equal when they allow the same number per second.
impl PartialEq for SampledCap {
    fn eq(&self, other: &Self) -> bool {
        self.per_second() == other.per_second()
    }
}

impl Eq for SampledCap {}
