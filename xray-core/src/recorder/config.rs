//! The recorder's settings that users choose: what a missing context does, how incoming
//! sampling decisions are followed, and configuration errors.

use crate::daemon::DaemonAddressError;

/// What happens when code asks for the current segment where there is none
/// (`AWS_XRAY_CONTEXT_MISSING`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContextMissing {
    /// Log an error through `tracing` and carry on (the default, `LOG_ERROR`).
    #[default]
    LogError,
    /// Panic (`RUNTIME_ERROR`). Functions returning `Result`, such as
    /// [`try_current`](crate::try_current), return an error instead.
    RuntimeError,
    /// Carry on silently (`IGNORE_ERROR`).
    IgnoreError,
}

impl ContextMissing {
    /// Parses `LOG_ERROR`, `RUNTIME_ERROR` or `IGNORE_ERROR` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "LOG_ERROR" => Some(Self::LogError),
            "RUNTIME_ERROR" => Some(Self::RuntimeError),
            "IGNORE_ERROR" => Some(Self::IgnoreError),
            _ => None,
        }
    }
}

/// How an incoming `Sampled=1` from a caller is treated.
///
/// `Sampled=0` is followed whatever the policy.
///
/// ```
/// use xray_core::{IncomingSampled, Recorder};
///
/// // A public endpoint: follow at most 10 caller-forced samples per second.
/// let recorder = Recorder::builder()
///     .incoming_sampled(IncomingSampled::cap(10))
///     .ignore_env()
///     .build()
///     .unwrap();
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IncomingSampled {
    /// The caller's decision is followed (the X-Ray convention; the default).
    #[default]
    Trust,
    /// `Sampled=1` is treated like no decision: the local sampler decides. Use it on public
    /// endpoints, where callers could otherwise force every request to be traced.
    Ignore,
    /// `Sampled=1` is followed for at most so many requests per second; beyond that the
    /// sampler decides, as for [`Ignore`](Self::Ignore).
    Cap(crate::sampling::SampledCap),
}

impl IncomingSampled {
    /// [`Cap`](Self::Cap) with a new budget of `per_second` caller-forced samples per second.
    pub fn cap(per_second: u32) -> Self {
        Self::Cap(crate::sampling::SampledCap::new(per_second))
    }
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The daemon address given in code is invalid.
    #[error(transparent)]
    DaemonAddress(#[from] DaemonAddressError),
}
