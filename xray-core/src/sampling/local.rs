//! Local sampling: rules given in code or read from a rules document, no daemon involved.

use std::path::Path;
use std::sync::Arc;

use super::clock::{Clock, FastRandom, RandomSource, SystemClock};
use super::names::{next_owner_id, thread_copy};
use super::pattern::Pattern;
use super::rules::{DefaultRule, LocalRules, RulesError};
use super::{Reservoir, Sampler, SamplingDecision, SamplingRequest};

/// One local sampling rule: which requests it applies to, and how many of them it samples.
///
/// Patterns use `*` (any run of characters) and `?` (exactly one), ignoring ASCII case. A
/// request detail the adapter did not supply is matched as the empty string, so only `*`
/// matches it. A port on the host is ignored.
///
/// ```
/// use xray_core::sampling::{LocalRule, LocalSampler, Sampler, SamplingRequest};
///
/// let sampler = LocalSampler::new(1, 0.05)
///     .with_rule(LocalRule::new(0, 0.0).http_method("GET").url_path("/health"));
/// let health = SamplingRequest::new("svc").method(Some("get")).url_path(Some("/health"));
/// assert!(!sampler.should_sample(&health).sampled);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LocalRule {
    /// Free text; also the rule's name in decisions when given.
    pub description: Option<String>,
    /// Pattern for the request's host (version 1 documents call it `service_name`).
    pub host: String,
    /// Pattern for the HTTP method.
    pub http_method: String,
    /// Pattern for the URL path.
    pub url_path: String,
    /// Requests sampled each second before the rate applies.
    pub fixed_target: u32,
    /// The share (0 to 1) of further requests that are sampled.
    pub rate: f64,
}

impl LocalRule {
    /// A rule matching every request: `fixed_target` per second, then `rate` (clamped to
    /// 0..=1; not a number counts as 0).
    pub fn new(fixed_target: u32, rate: f64) -> Self {
        Self {
            description: None,
            host: "*".into(),
            http_method: "*".into(),
            url_path: "*".into(),
            fixed_target,
            rate: clamp_rate(rate),
        }
    }

    /// Sets the host pattern.
    pub fn host(mut self, pattern: impl Into<String>) -> Self {
        self.host = pattern.into();
        self
    }

    /// Sets the HTTP method pattern.
    pub fn http_method(mut self, pattern: impl Into<String>) -> Self {
        self.http_method = pattern.into();
        self
    }

    /// Sets the URL path pattern.
    pub fn url_path(mut self, pattern: impl Into<String>) -> Self {
        self.url_path = pattern.into();
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }
}

pub(crate) fn clamp_rate(rate: f64) -> f64 {
    if rate.is_finite() {
        rate.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[derive(Debug)]
struct ActiveRule {
    rule: LocalRule,
    host: Pattern,
    method: Pattern,
    path: Pattern,
    reservoir: Reservoir,
}

impl ActiveRule {
    fn new(rule: LocalRule) -> Self {
        Self {
            host: Pattern::new(&rule.host),
            method: Pattern::new(&rule.http_method),
            path: Pattern::new(&rule.url_path),
            reservoir: Reservoir::new(rule.fixed_target),
            rule,
        }
    }

    #[inline]
    fn matches(&self, request: &SamplingRequest<'_>) -> bool {
        self.host.matches_host(request.host)
            && self.method.matches(request.method)
            && self.path.matches(request.url_path)
    }
}

/// Samples by local rules: the first rule matching the request decides, else the default rule.
/// Each rule samples its `fixed_target` requests per second (exactly, across threads), then
/// `rate` of the rest.
///
/// ```
/// use xray_core::sampling::{LocalSampler, Sampler, SamplingRequest};
///
/// let sampler = LocalSampler::from_json(r#"{
///     "version": 2,
///     "rules": [{"description": "no health checks", "host": "*", "http_method": "*",
///                "url_path": "/health", "fixed_target": 0, "rate": 0}],
///     "default": {"fixed_target": 1, "rate": 0.05}
/// }"#).unwrap();
/// let decision = sampler.should_sample(&SamplingRequest::new("svc").url_path(Some("/health")));
/// assert!(!decision.sampled);
/// assert_eq!(decision.rule_name.as_deref(), Some("no health checks"));
/// ```
#[derive(Debug)]
pub struct LocalSampler {
    id: u64,
    rules: Vec<ActiveRule>,
    default: ActiveRule,
    /// Rule names in order, then the default's.
    names: Vec<Arc<str>>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
}

impl LocalSampler {
    /// No rules besides the default: `fixed_target` requests per second, then `rate` (0.0 to
    /// 1.0) of the rest.
    pub fn new(fixed_target: u32, rate: f64) -> Self {
        Self {
            id: next_owner_id(),
            rules: Vec::new(),
            names: vec![Arc::from("Default")],
            default: ActiveRule::new(LocalRule::new(fixed_target, rate)),
            clock: Arc::new(SystemClock),
            random: Arc::new(FastRandom),
        }
    }

    /// A sampler applying a validated rules document.
    pub fn from_rules(rules: LocalRules) -> Self {
        let DefaultRule { fixed_target, rate } = rules.default;
        rules
            .rules
            .into_iter()
            .fold(Self::new(fixed_target, rate), Self::with_rule)
    }

    /// Parses a rules document (versions 1 and 2, see [`LocalRules`]).
    pub fn from_json(text: &str) -> Result<Self, RulesError> {
        LocalRules::from_json(text).map(Self::from_rules)
    }

    /// Reads a rules file (versions 1 and 2, see [`LocalRules`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, RulesError> {
        LocalRules::from_file(path).map(Self::from_rules)
    }

    /// Adds a rule, tried after the rules added before it.
    pub fn with_rule(mut self, mut rule: LocalRule) -> Self {
        rule.rate = clamp_rate(rule.rate);
        let name: Arc<str> = match &rule.description {
            Some(d) if !d.is_empty() => Arc::from(d.as_str()),
            _ => Arc::from(format!("rules[{}]", self.rules.len())),
        };
        self.names.insert(self.rules.len(), name);
        self.rules.push(ActiveRule::new(rule));
        self
    }

    /// Reads the time from `clock` (tests use a [`ManualClock`](super::clock::ManualClock)).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Draws random numbers from `random`.
    pub fn with_random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }

    /// The rules, in the order they are tried (the default rule is not among them).
    pub fn rules(&self) -> impl Iterator<Item = &LocalRule> + '_ {
        self.rules.iter().map(|r| &r.rule)
    }

    /// The default rule.
    pub fn default_rule(&self) -> DefaultRule {
        DefaultRule {
            fixed_target: self.default.rule.fixed_target,
            rate: self.default.rule.rate,
        }
    }
}

impl Default for LocalSampler {
    /// The X-Ray default rule: 1 request per second, then 5 %.
    fn default() -> Self {
        Self::new(1, 0.05)
    }
}

impl LocalSampler {
    /// The index of the rule that applies (`rules.len()` for the default) and its decision.
    #[inline]
    fn decide(&self, request: &SamplingRequest<'_>) -> (usize, bool) {
        let index = self
            .rules
            .iter()
            .position(|r| r.matches(request))
            .unwrap_or(self.rules.len());
        let active = self.rules.get(index).unwrap_or(&self.default);
        let rate = active.rule.rate;
        let sampled = active.reservoir.take(self.clock.now_secs())
            || (rate > 0.0 && self.random.next_f64() < rate);
        (index, sampled)
    }
}

impl Sampler for LocalSampler {
    fn sample(&self, request: &SamplingRequest<'_>) -> bool {
        self.decide(request).1
    }

    /// Only the default rule: the request's details do not matter.
    fn reads_request(&self) -> bool {
        !self.rules.is_empty()
    }

    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        let (index, sampled) = self.decide(request);
        SamplingDecision {
            sampled,
            // The rule count changes only while building, so it tells the name lists apart.
            rule_name: Some(thread_copy(
                self.id,
                self.rules.len() as u64,
                index,
                &self.names,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::clock::{FixedRandom, ManualClock, SeededRandom};
    use crate::time::Timestamp;
    use std::time::Duration;

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(Timestamp::from_micros(
            1_700_000_000_000_000,
        )))
    }

    fn count(s: &LocalSampler, req: &SamplingRequest<'_>, n: usize) -> usize {
        (0..n).filter(|_| s.should_sample(req).sampled).count()
    }

    #[test]
    fn default_rule_samples_one_per_second_then_nothing_at_rate_zero() {
        let c = clock();
        let s = LocalSampler::new(1, 0.0).with_clock(c.clone());
        let req = SamplingRequest::new("svc");
        assert_eq!(count(&s, &req, 100), 1);
        c.advance(Duration::from_millis(999));
        assert_eq!(count(&s, &req, 100), 0, "same second");
        c.advance(Duration::from_millis(1));
        assert_eq!(count(&s, &req, 100), 1, "next second");
    }

    #[test]
    fn reservoir_is_exact_per_second_under_concurrency() {
        let c = clock();
        let s = Arc::new(LocalSampler::new(7, 0.0).with_clock(c.clone()));
        for _ in 0..3 {
            let total: usize = std::thread::scope(|scope| {
                let hs: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| count(&s, &SamplingRequest::new("svc"), 2000)))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(total, 7);
            c.advance(Duration::from_secs(1));
        }
    }

    #[test]
    fn rate_is_within_statistical_bounds_after_the_reservoir() {
        // 100 000 draws at 5 %: mean 5000, sd ~69; 6 sd either side.
        let s = LocalSampler::new(0, 0.05)
            .with_clock(clock())
            .with_random(Arc::new(SeededRandom::new(7)));
        let n = count(&s, &SamplingRequest::new("svc"), 100_000);
        assert!((4586..=5414).contains(&n), "{n}");
        let s = LocalSampler::new(0, 0.5).with_clock(clock());
        let n = count(&s, &SamplingRequest::new("svc"), 100_000);
        assert!((49_051..=50_949).contains(&n), "{n}");
    }

    #[test]
    fn rate_zero_and_one_are_never_and_always() {
        let s = LocalSampler::new(0, 0.0).with_random(Arc::new(FixedRandom::new(0.0)));
        assert!(!s.should_sample(&SamplingRequest::new("svc")).sampled);
        let s = LocalSampler::new(0, 1.0).with_random(Arc::new(FixedRandom::new(0.999_999)));
        assert!(s.should_sample(&SamplingRequest::new("svc")).sampled);
    }

    #[test]
    fn first_matching_rule_wins_in_order() {
        let s = LocalSampler::new(0, 0.0)
            .with_clock(clock())
            .with_rule(LocalRule::new(0, 1.0).url_path("/api/*").description("api"))
            .with_rule(LocalRule::new(0, 0.0).url_path("/api/health"))
            .with_rule(LocalRule::new(0, 1.0).http_method("DELETE"));
        let req = |m, p| {
            SamplingRequest::new("svc")
                .method(Some(m))
                .url_path(Some(p))
        };
        let d = s.should_sample(&req("GET", "/api/health"));
        assert!(d.sampled, "the earlier /api/* rule wins over the exact one");
        assert_eq!(d.rule_name.as_deref(), Some("api"));
        let d = s.should_sample(&req("delete", "/x"));
        assert!(d.sampled);
        assert_eq!(d.rule_name.as_deref(), Some("rules[2]"));
        let d = s.should_sample(&req("GET", "/x"));
        assert!(!d.sampled);
        assert_eq!(d.rule_name.as_deref(), Some("Default"));
    }

    #[test]
    fn wildcards_match_host_method_and_path_ignoring_case() {
        let s = LocalSampler::new(0, 0.0).with_clock(clock()).with_rule(
            LocalRule::new(0, 1.0)
                .host("*.Example.com")
                .http_method("P?T")
                .url_path("/users/?/*"),
        );
        let yes = [
            ("api.example.com", "PUT", "/users/7/orders"),
            ("A.EXAMPLE.COM", "pat", "/USERS/x/"),
            ("api.example.com:8443", "PUT", "/users/7/orders"),
        ];
        let no = [
            ("example.com", "PUT", "/users/7/orders"),
            ("api.example.com", "POST", "/users/7/orders"),
            ("api.example.com", "PUT", "/users/42/orders"),
            ("api.example.org", "PUT", "/users/7/orders"),
        ];
        for (h, m, p) in yes {
            let r = SamplingRequest::new("svc")
                .host(Some(h))
                .method(Some(m))
                .url_path(Some(p));
            assert!(s.should_sample(&r).sampled, "{h} {m} {p}");
        }
        for (h, m, p) in no {
            let r = SamplingRequest::new("svc")
                .host(Some(h))
                .method(Some(m))
                .url_path(Some(p));
            assert!(!s.should_sample(&r).sampled, "{h} {m} {p}");
        }
    }

    #[test]
    fn a_missing_request_detail_matches_only_star() {
        let s = LocalSampler::new(0, 0.0)
            .with_clock(clock())
            .with_rule(LocalRule::new(0, 1.0).host("api.*"));
        assert!(!s.should_sample(&SamplingRequest::new("svc")).sampled);
        let s = LocalSampler::new(0, 0.0)
            .with_clock(clock())
            .with_rule(LocalRule::new(0, 1.0).url_path("*"));
        assert!(s.should_sample(&SamplingRequest::new("svc")).sampled);
    }

    #[test]
    fn each_rule_has_its_own_reservoir() {
        let s = LocalSampler::new(1, 0.0)
            .with_clock(clock())
            .with_rule(LocalRule::new(3, 0.0).url_path("/a"));
        let a = SamplingRequest::new("svc").url_path(Some("/a"));
        let b = SamplingRequest::new("svc").url_path(Some("/b"));
        assert_eq!(count(&s, &a, 10), 3);
        assert_eq!(count(&s, &b, 10), 1);
    }

    #[test]
    fn version_1_and_2_files_give_the_same_sampler() {
        let dir = std::env::temp_dir().join(format!("xray-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v1 = dir.join("v1.json");
        let v2 = dir.join("v2.json");
        std::fs::write(
            &v1,
            r#"{"version": 1, "rules": [{"service_name": "a.*", "http_method": "GET",
                "url_path": "/x", "fixed_target": 2, "rate": 0}],
                "default": {"fixed_target": 0, "rate": 0}}"#,
        )
        .unwrap();
        std::fs::write(
            &v2,
            r#"{"version": 2, "rules": [{"host": "a.*", "http_method": "GET",
                "url_path": "/x", "fixed_target": 2, "rate": 0}],
                "default": {"fixed_target": 0, "rate": 0}}"#,
        )
        .unwrap();
        for path in [&v1, &v2] {
            let s = LocalSampler::from_file(path).unwrap().with_clock(clock());
            let hit = SamplingRequest::new("svc")
                .host(Some("a.b"))
                .method(Some("GET"))
                .url_path(Some("/x"));
            assert_eq!(count(&s, &hit, 10), 2, "{}", path.display());
            let miss = SamplingRequest::new("svc").host(Some("b.b"));
            assert_eq!(count(&s, &miss, 10), 0);
        }
        std::fs::write(&v1, r#"{"version": 1, "default": {"fixed_target": 0}}"#).unwrap();
        let e = LocalSampler::from_file(&v1).unwrap_err();
        assert_eq!(e.field(), Some("default.rate"));
        assert!(e.to_string().contains("v1.json"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
