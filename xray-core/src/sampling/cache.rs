//! The centralized rule cache: rules fetched from X-Ray, their quotas, and their statistics.
//!
//! Deciding for one request reads only immutable rule definitions and per-rule atomics, so
//! request threads never wait for each other or for the poller.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::api::{SamplingRule, SamplingTarget, StatisticsDocument};
use super::clock::RandomSource;
use super::counter::{Counts, RuleCounters};
use super::pattern::Pattern;
use super::reservoir::take_up_to;
#[cfg(test)]
use super::SamplingDecision;
use super::SamplingRequest;
use crate::time::Timestamp;

/// What changes while a rule lives: quota granted by X-Ray, rate, usage, counters. Kept across
/// rule refreshes for rules that keep their name.
#[derive(Debug)]
pub(crate) struct RuleState {
    rate_bits: AtomicU64,
    /// The quota granted by X-Ray (`u64::MAX`: none granted yet).
    quota: AtomicU64,
    /// When the quota expires, epoch microseconds.
    quota_expires: AtomicU64,
    /// `(second << 32) | taken`, shared by quota takes and borrows.
    this_second: AtomicU64,
    counters: RuleCounters,
    ever_matched: AtomicBool,
}

const NO_QUOTA: u64 = u64::MAX;

impl RuleState {
    fn new(rate: f64) -> Self {
        Self {
            rate_bits: AtomicU64::new(rate.to_bits()),
            quota: AtomicU64::new(NO_QUOTA),
            quota_expires: AtomicU64::new(0),
            this_second: AtomicU64::new(0),
            counters: RuleCounters::default(),
            ever_matched: AtomicBool::new(false),
        }
    }

    fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }
}

/// A rule fetched from X-Ray, with its live state.
#[derive(Debug)]
pub(crate) struct CentralRule {
    pub(crate) def: SamplingRule,
    patterns: [Pattern; 5],
    pub(crate) name: Arc<str>,
    pub(crate) state: Arc<RuleState>,
}

impl CentralRule {
    /// Whether the rule looks at the request's host, method or path (a pattern other than `*`).
    fn reads_request(&self) -> bool {
        let [_, _, host, method, path] = &self.patterns;
        !(host.is_any() && method.is_any() && path.is_any())
    }

    fn matches(&self, r: &SamplingRequest<'_>) -> bool {
        let [service, service_type, host, method, path] = &self.patterns;
        service.matches(Some(r.service_name))
            && service_type.matches(r.service_type)
            && host.matches_host(r.host)
            && method.matches(r.method)
            && path.matches(r.url_path)
    }

    fn sample(&self, now: Timestamp, random: &dyn RandomSource) -> bool {
        let st = &*self.state;
        if !st.ever_matched.load(Ordering::Relaxed) {
            st.ever_matched.store(true, Ordering::Relaxed);
        }
        let quota = st.quota.load(Ordering::Relaxed);
        let fresh = quota != NO_QUOTA && now.as_micros() < st.quota_expires.load(Ordering::Relaxed);
        let second = now.as_secs();
        let (mut sampled, mut borrowed) = (false, false);
        if fresh {
            sampled = take_up_to(
                &st.this_second,
                second,
                quota.min(u64::from(u32::MAX)) as u32,
            );
        } else if self.def.reservoir_size > 0 {
            // No quota yet, or it expired: borrow one request per second so the rule is not
            // silent until X-Ray answers.
            sampled = take_up_to(&st.this_second, second, 1);
            borrowed = sampled;
        }
        if !sampled {
            let rate = st.rate();
            sampled = rate > 0.0 && random.next_f64() < rate;
        }
        st.counters.record(sampled, borrowed);
        sampled
    }
}

/// An immutable set of rules in matching order (priority, then name).
#[derive(Debug, Default)]
pub(crate) struct RuleSet {
    rules: Vec<Arc<CentralRule>>,
    names: Vec<Arc<str>>,
}

impl RuleSet {
    /// Builds the set from fetched rules, reusing the state of same-named rules in `previous`.
    pub(crate) fn new(mut defs: Vec<SamplingRule>, previous: &RuleSet) -> Self {
        defs.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| a.rule_name.cmp(&b.rule_name))
        });
        defs.dedup_by(|a, b| a.rule_name == b.rule_name);
        let old: HashMap<&str, &Arc<CentralRule>> = previous
            .rules
            .iter()
            .map(|r| (r.def.rule_name.as_str(), r))
            .collect();
        let rules = defs
            .into_iter()
            .map(|def| {
                let rate = def.fixed_rate.clamp(0.0, 1.0);
                let state = match old.get(def.rule_name.as_str()) {
                    Some(prev) => {
                        if prev.def.fixed_rate != def.fixed_rate {
                            prev.state
                                .rate_bits
                                .store(rate.to_bits(), Ordering::Relaxed);
                        }
                        prev.state.clone()
                    }
                    None => Arc::new(RuleState::new(rate)),
                };
                Arc::new(CentralRule {
                    patterns: [
                        Pattern::new(&def.service_name),
                        Pattern::new(&def.service_type),
                        Pattern::new(&def.host),
                        Pattern::new(&def.http_method),
                        Pattern::new(&def.url_path),
                    ],
                    name: Arc::from(def.rule_name.as_str()),
                    def,
                    state,
                })
            })
            .collect::<Vec<_>>();
        let names = rules.iter().map(|r| r.name.clone()).collect();
        Self { rules, names }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.rules.len()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.def.rule_name.clone()).collect()
    }

    /// Whether any rule looks at the request's host, method or path.
    pub(crate) fn reads_request(&self) -> bool {
        self.rules.iter().any(|r| r.reads_request())
    }

    /// The index and decision of the first matching rule, or `None` when no rule matches.
    #[inline]
    pub(crate) fn decide_index(
        &self,
        request: &SamplingRequest<'_>,
        now: Timestamp,
        random: &dyn RandomSource,
    ) -> Option<(usize, bool)> {
        let i = self.rules.iter().position(|r| r.matches(request))?;
        Some((i, self.rules[i].sample(now, random)))
    }

    /// The rule names, in matching order.
    pub(crate) fn name_list(&self) -> &[Arc<str>] {
        &self.names
    }

    /// The decision of the first matching rule, or `None` when no rule matches.
    #[cfg(test)]
    pub(crate) fn decide(
        &self,
        request: &SamplingRequest<'_>,
        now: Timestamp,
        random: &dyn RandomSource,
    ) -> Option<SamplingDecision> {
        let (i, sampled) = self.decide_index(request, now, random)?;
        Some(SamplingDecision {
            sampled,
            rule_name: Some(self.names[i].clone()),
        })
    }

    /// Applies targets from X-Ray; returns how many named a known rule.
    pub(crate) fn apply_targets(&self, targets: &[SamplingTarget]) -> usize {
        let mut applied = 0;
        for t in targets {
            let Some(rule) = self.rules.iter().find(|r| r.def.rule_name == t.rule_name) else {
                tracing::debug!(rule = %t.rule_name, "sampling target for an unknown rule");
                continue;
            };
            let st = &rule.state;
            if let Some(rate) = t.fixed_rate.filter(|r| r.is_finite()) {
                st.rate_bits
                    .store(rate.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
            }
            if let Some(ttl) = t.reservoir_quota_ttl.filter(|t| t.is_finite()) {
                st.quota_expires
                    .store(Timestamp::from_secs_f64(ttl).as_micros(), Ordering::Relaxed);
            }
            if let Some(q) = t.reservoir_quota {
                st.quota.store(q.max(0) as u64, Ordering::Relaxed);
            }
            applied += 1;
        }
        applied
    }

    /// Takes the statistics of every rule that ever matched a request, resetting its counters.
    pub(crate) fn take_statistics(
        &self,
        now: Timestamp,
        client_id: &str,
    ) -> Vec<(Arc<CentralRule>, StatisticsDocument)> {
        self.rules
            .iter()
            .filter(|r| r.state.ever_matched.load(Ordering::Relaxed))
            .map(|r| {
                let c = r.state.counters.take();
                let doc = StatisticsDocument {
                    rule_name: r.def.rule_name.clone(),
                    client_id: client_id.to_string(),
                    timestamp: now.as_secs(),
                    request_count: c.requests,
                    sampled_count: c.sampled,
                    borrow_count: c.borrowed,
                };
                (r.clone(), doc)
            })
            .collect()
    }
}

/// Puts counts back after a report failed.
pub(crate) fn restore_statistics(rule: &CentralRule, doc: &StatisticsDocument) {
    rule.state.counters.restore(Counts {
        requests: doc.request_count,
        sampled: doc.sampled_count,
        borrowed: doc.borrow_count,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::clock::{FixedRandom, SeededRandom};

    pub(crate) fn rule(name: &str, priority: i64, rate: f64, reservoir: i64) -> SamplingRule {
        SamplingRule {
            rule_name: name.into(),
            resource_arn: "*".into(),
            priority,
            fixed_rate: rate,
            reservoir_size: reservoir,
            service_name: "*".into(),
            service_type: "*".into(),
            host: "*".into(),
            http_method: "*".into(),
            url_path: "*".into(),
            version: 1,
        }
    }

    const T0: u64 = 1_700_000_000;

    fn at(secs: u64, millis: u64) -> Timestamp {
        Timestamp::from_micros(secs * 1_000_000 + millis * 1000)
    }

    fn target(name: &str, rate: f64, quota: i64, ttl: f64) -> SamplingTarget {
        SamplingTarget {
            rule_name: name.into(),
            fixed_rate: Some(rate),
            reservoir_quota: Some(quota),
            reservoir_quota_ttl: Some(ttl),
        }
    }

    fn sampled(set: &RuleSet, req: &SamplingRequest<'_>, now: Timestamp, n: usize) -> usize {
        let never = FixedRandom::new(0.999);
        (0..n)
            .filter(|_| set.decide(req, now, &never).unwrap().sampled)
            .count()
    }

    #[test]
    fn rules_are_matched_by_priority_then_name() {
        let mut api = rule("api", 5, 1.0, 0);
        api.url_path = "/api/*".into();
        let mut b = rule("b", 1, 1.0, 0);
        b.http_method = "POST".into();
        let mut a = rule("a", 1, 1.0, 0);
        a.http_method = "POST".into();
        let set = RuleSet::new(
            vec![rule("Default", 10000, 0.0, 0), api, b, a],
            &RuleSet::default(),
        );
        assert_eq!(set.names(), ["a", "b", "api", "Default"]);
        let r = FixedRandom::new(0.5);
        let name = |req: SamplingRequest<'_>| {
            set.decide(&req, at(T0, 0), &r)
                .unwrap()
                .rule_name
                .unwrap()
                .to_string()
        };
        assert_eq!(
            name(
                SamplingRequest::new("s")
                    .method(Some("post"))
                    .url_path(Some("/api/x"))
            ),
            "a"
        );
        assert_eq!(
            name(
                SamplingRequest::new("s")
                    .method(Some("GET"))
                    .url_path(Some("/api/x"))
            ),
            "api"
        );
        assert_eq!(
            name(
                SamplingRequest::new("s")
                    .method(Some("GET"))
                    .url_path(Some("/x"))
            ),
            "Default"
        );
    }

    #[test]
    fn rules_match_service_name_and_type() {
        let mut svc = rule("svc", 1, 1.0, 0);
        svc.service_name = "orders-*".into();
        svc.service_type = "AWS::EC2::Instance".into();
        let set = RuleSet::new(vec![svc], &RuleSet::default());
        let r = FixedRandom::new(0.5);
        let hit = SamplingRequest::new("Orders-api").service_type(Some("aws::ec2::instance"));
        assert!(set.decide(&hit, at(T0, 0), &r).is_some());
        let wrong_type =
            SamplingRequest::new("orders-api").service_type(Some("AWS::ECS::Container"));
        assert!(set.decide(&wrong_type, at(T0, 0), &r).is_none());
        let no_type = SamplingRequest::new("orders-api");
        assert!(set.decide(&no_type, at(T0, 0), &r).is_none());
        assert!(set
            .decide(&SamplingRequest::new("users"), at(T0, 0), &r)
            .is_none());
    }

    #[test]
    fn without_quota_one_request_per_second_is_borrowed_then_the_rate_applies() {
        let set = RuleSet::new(vec![rule("r", 1, 0.0, 10)], &RuleSet::default());
        let req = SamplingRequest::new("s");
        assert_eq!(sampled(&set, &req, at(T0, 0), 50), 1);
        assert_eq!(sampled(&set, &req, at(T0, 900), 50), 0);
        assert_eq!(sampled(&set, &req, at(T0 + 1, 0), 50), 1);
        let stats = set.take_statistics(at(T0 + 1, 0), "c");
        assert_eq!(stats[0].1.request_count, 150);
        assert_eq!(stats[0].1.sampled_count, 2);
        assert_eq!(stats[0].1.borrow_count, 2);
    }

    #[test]
    fn a_rule_with_no_reservoir_never_borrows() {
        let set = RuleSet::new(vec![rule("r", 1, 0.0, 0)], &RuleSet::default());
        assert_eq!(sampled(&set, &SamplingRequest::new("s"), at(T0, 0), 50), 0);
    }

    #[test]
    fn quota_is_exact_per_second_until_its_ttl() {
        let set = RuleSet::new(vec![rule("r", 1, 0.0, 10)], &RuleSet::default());
        assert_eq!(
            set.apply_targets(&[target("r", 0.0, 4, (T0 + 2) as f64)]),
            1
        );
        let req = SamplingRequest::new("s");
        assert_eq!(sampled(&set, &req, at(T0, 0), 50), 4);
        assert_eq!(sampled(&set, &req, at(T0 + 1, 999), 50), 4);
        // Expired: back to borrowing one per second.
        assert_eq!(sampled(&set, &req, at(T0 + 2, 0), 50), 1);
        let stats = set.take_statistics(at(T0 + 2, 0), "c");
        assert_eq!((stats[0].1.sampled_count, stats[0].1.borrow_count), (9, 1));
    }

    #[test]
    fn quota_is_exact_under_concurrency() {
        let set = Arc::new(RuleSet::new(
            vec![rule("r", 1, 0.0, 10)],
            &RuleSet::default(),
        ));
        set.apply_targets(&[target("r", 0.0, 25, (T0 + 60) as f64)]);
        let total: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| sampled(&set, &SamplingRequest::new("s"), at(T0, 0), 3000)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(total, 25);
    }

    #[test]
    fn a_zero_quota_leaves_only_the_rate() {
        let set = RuleSet::new(vec![rule("r", 1, 0.0, 10)], &RuleSet::default());
        set.apply_targets(&[target("r", 0.0, 0, (T0 + 60) as f64)]);
        assert_eq!(sampled(&set, &SamplingRequest::new("s"), at(T0, 0), 50), 0);
    }

    #[test]
    fn fixed_rate_from_targets_applies_after_the_reservoir() {
        let set = RuleSet::new(vec![rule("r", 1, 0.0, 0)], &RuleSet::default());
        set.apply_targets(&[target("r", 0.25, 0, (T0 + 60) as f64)]);
        let rnd = SeededRandom::new(3);
        let n = (0..40_000)
            .filter(|_| {
                set.decide(&SamplingRequest::new("s"), at(T0, 0), &rnd)
                    .unwrap()
                    .sampled
            })
            .count();
        // mean 10 000, sd ~87; 6 sd either side.
        assert!((9_480..=10_520).contains(&n), "{n}");
    }

    #[test]
    fn refreshed_rules_keep_quota_and_counters_by_name() {
        let first = RuleSet::new(
            vec![rule("keep", 1, 0.0, 1), rule("drop", 2, 0.0, 1)],
            &RuleSet::default(),
        );
        first.apply_targets(&[target("keep", 0.0, 3, (T0 + 60) as f64)]);
        let req = SamplingRequest::new("s");
        assert_eq!(sampled(&first, &req, at(T0, 0), 2), 2);
        let second = RuleSet::new(
            vec![rule("keep", 1, 0.0, 1), rule("new", 2, 0.0, 1)],
            &first,
        );
        assert_eq!(
            sampled(&second, &req, at(T0, 0), 5),
            1,
            "one left of the quota of 3"
        );
        let stats = second.take_statistics(at(T0, 0), "c");
        assert_eq!(stats.len(), 1, "only rules that matched are reported");
        assert_eq!(stats[0].1.request_count, 7);
    }

    #[test]
    fn targets_for_unknown_rules_are_ignored() {
        let set = RuleSet::new(vec![rule("r", 1, 0.0, 1)], &RuleSet::default());
        assert_eq!(set.apply_targets(&[target("other", 1.0, 5, 0.0)]), 0);
    }
}
