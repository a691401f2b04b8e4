//! Sampling: which requests are recorded.
//!
//! Every adapter asks the recorder's [`Sampler`] once per incoming request that did not carry
//! a decision (`Sampled=1` or `0`) from its caller, telling it the service name, service type
//! (origin), host, method and URL path in a [`SamplingRequest`]. The answer is a
//! [`SamplingDecision`]: sampled or not, and the name of the rule that decided.
//!
//! Samplers:
//!
//! - [`LocalSampler`] (the default): local rules, given in code ([`LocalRule`]) or read from a
//!   JSON document in the version 1 or 2 format ([`LocalRules`]); the first matching rule wins,
//!   else the default rule (out of the box: the first request each second, then 5 %).
//! - [`CentralizedSampler`]: rules and quotas from the X-Ray service through the daemon,
//!   polled on a background thread, with a `LocalSampler` as fallback.
//! - [`AlwaysSample`] and [`NeverSample`], for tests and demos.
//!
//! Patterns in rules use `*` (any run of characters) and `?` (exactly one character) and
//! ignore ASCII case (see [`wildcard_match`](crate::naming::wildcard_match)). A request
//! detail the adapter did not supply is matched as the empty string, so only `*` matches it.
//!
//! Deciding is cheap and never blocks: reservoirs are single atomic words, exact per second
//! across threads, and no lock is taken on the request path.
//!
//! Time and randomness come from a [`Clock`](clock::Clock) and a
//! [`RandomSource`](clock::RandomSource), which tests replace (see [`clock`]).

use std::fmt;
use std::sync::Arc;

pub(crate) mod api;
mod cache;
mod cap;
mod centralized;
pub(crate) mod client;
pub mod clock;
mod counter;
mod local;
mod names;
mod pattern;
mod reservoir;
mod rules;
mod sqs;

pub use cap::SampledCap;
pub use centralized::{
    client_id, CentralizedSampler, PollerStatus, DEFAULT_RULES_INTERVAL, DEFAULT_TARGETS_INTERVAL,
    DEFAULT_TIMEOUT,
};
pub use local::{LocalRule, LocalSampler};
pub use reservoir::Reservoir;
pub use rules::{DefaultRule, LocalRules, RulesError};
pub use sqs::sqs_message_sampled;

/// What a sampler is told about a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SamplingRequest<'a> {
    /// The segment (service) name.
    pub service_name: &'a str,
    /// The service type, i.e. the origin (`AWS::EC2::Instance`, ...), when known.
    pub service_type: Option<&'a str>,
    /// The `Host` of the request, without port.
    pub host: Option<&'a str>,
    /// The HTTP method.
    pub method: Option<&'a str>,
    /// The URL path, without query.
    pub url_path: Option<&'a str>,
}

impl<'a> SamplingRequest<'a> {
    /// A request known only by its service name.
    pub fn new(service_name: &'a str) -> Self {
        Self {
            service_name,
            ..Self::default()
        }
    }

    /// Sets the host.
    pub fn host(mut self, host: Option<&'a str>) -> Self {
        self.host = host;
        self
    }

    /// Sets the method.
    pub fn method(mut self, method: Option<&'a str>) -> Self {
        self.method = method;
        self
    }

    /// Sets the URL path.
    pub fn url_path(mut self, path: Option<&'a str>) -> Self {
        self.url_path = path;
        self
    }

    /// Sets the service type.
    pub fn service_type(mut self, service_type: Option<&'a str>) -> Self {
        self.service_type = service_type;
        self
    }
}

/// A sampler's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SamplingDecision {
    /// Record this request.
    pub sampled: bool,
    /// The rule that decided, for statistics and debugging.
    pub rule_name: Option<Arc<str>>,
}

impl SamplingDecision {
    /// A decision without a rule name.
    pub fn new(sampled: bool) -> Self {
        Self {
            sampled,
            rule_name: None,
        }
    }
}

/// Decides whether a request is recorded.
///
/// Implementations must be cheap and must not block: they run on the request path.
pub trait Sampler: Send + Sync + fmt::Debug + 'static {
    /// Decides for one request.
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision;

    /// Decides for one request without naming the rule: what the recorder asks. Same answer
    /// as [`should_sample`](Self::should_sample) (and the same effect on reservoirs and
    /// statistics); samplers that find their rule names at a cost skip that here.
    fn sample(&self, request: &SamplingRequest<'_>) -> bool {
        self.should_sample(request).sampled
    }

    /// Whether decisions can depend on the request's `host`, `method` or `url_path`. When
    /// false, the server adapters do not work them out from the request and leave them
    /// `None`. True unless a sampler says otherwise.
    fn reads_request(&self) -> bool {
        true
    }

    /// Stops background work (pollers). Called by [`Recorder::shutdown`](crate::Recorder::shutdown).
    fn shutdown(&self) {}
}

impl<S: Sampler + ?Sized> Sampler for Arc<S> {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        (**self).should_sample(request)
    }
    fn sample(&self, request: &SamplingRequest<'_>) -> bool {
        (**self).sample(request)
    }
    fn reads_request(&self) -> bool {
        (**self).reads_request()
    }
    fn shutdown(&self) {
        (**self).shutdown()
    }
}

/// Samples every request. Useful in tests and demos.
#[derive(Debug, Default, Clone, Copy)]
pub struct AlwaysSample;

impl Sampler for AlwaysSample {
    fn should_sample(&self, _: &SamplingRequest<'_>) -> SamplingDecision {
        SamplingDecision::new(true)
    }
    fn reads_request(&self) -> bool {
        false
    }
}

/// Samples no request (trace headers still propagate).
#[derive(Debug, Default, Clone, Copy)]
pub struct NeverSample;

impl Sampler for NeverSample {
    fn should_sample(&self, _: &SamplingRequest<'_>) -> SamplingDecision {
        SamplingDecision::new(false)
    }
    fn reads_request(&self) -> bool {
        false
    }
}
