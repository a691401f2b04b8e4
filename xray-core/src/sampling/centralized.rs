//! Centralized sampling: rules and quotas from the X-Ray service, through the daemon (or,
//! with the cargo feature `xray-api`, through the AWS SDK's X-Ray client).
//!
//! See [`CentralizedSampler`]. The rule cache lives in `cache.rs`, the wire shapes in
//! `api.rs`, the HTTP client in `client.rs`; this file holds the sampler and its poller.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::api::{parse_rules_page, parse_targets, rules_request, targets_request};
use super::cache::{restore_statistics, RuleSet};
use super::client::{post_json, SamplingApi};
use super::clock::{Clock, FastRandom, RandomSource, SystemClock};
use super::names::{next_owner_id, thread_copy};
use super::{LocalSampler, Sampler, SamplingDecision, SamplingRequest};
use crate::daemon::{DaemonAddress, HostPort};
use crate::time::Timestamp;

/// Default interval between rule fetches.
pub const DEFAULT_RULES_INTERVAL: Duration = Duration::from_secs(300);
/// Default interval between statistics reports (and target fetches).
pub const DEFAULT_TARGETS_INTERVAL: Duration = Duration::from_secs(10);
/// Default time allowed for one call to the daemon.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

const MAX_PAGES: usize = 100;
const STATISTICS_PER_CALL: usize = 25;

/// The id this process reports its statistics under: 24 lower-case hex digits, drawn once.
///
/// ```
/// let id = xray_core::sampling::client_id();
/// assert_eq!(id.len(), 24);
/// assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
/// assert_eq!(id, xray_core::sampling::client_id());
/// ```
pub fn client_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut rng = fastrand::Rng::new();
        format!("{:016x}{:08x}", rng.u64(..), rng.u32(..))
    })
}

/// What the poller has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollerStatus {
    /// Rules in the current set (0 while the daemon has never answered).
    pub rules: usize,
    /// Successful rule fetches.
    pub rule_fetches: u64,
    /// Failed rule fetches (state kept).
    pub rule_failures: u64,
    /// Successful statistics reports.
    pub target_fetches: u64,
    /// Failed statistics reports (state kept, counts carried over).
    pub target_failures: u64,
}

struct Config {
    daemon: HostPort,
    /// Calls the X-Ray API itself instead of the daemon's proxy, when set.
    api: Option<Arc<dyn SamplingApi>>,
    rules_interval: Duration,
    targets_interval: Duration,
    timeout: Duration,
}

struct Shared {
    id: u64,
    config: Config,
    fallback: LocalSampler,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    rules: RwLock<(u64, Arc<RuleSet>)>,
    generation: AtomicU64,
    /// Whether the current rules or the fallback look at the request's host, method or path
    /// (see [`Sampler::reads_request`]); set with each new rule set.
    reads_request: std::sync::atomic::AtomicBool,
    last_fetch: Mutex<Option<Timestamp>>,
    stop: Mutex<bool>,
    wake: Condvar,
    /// The last call to the daemon failed: further failures are logged at debug level only,
    /// so an absent daemon costs one warning, not one per poll.
    failing: std::sync::atomic::AtomicBool,
    rule_fetches: AtomicU64,
    rule_failures: AtomicU64,
    target_fetches: AtomicU64,
    target_failures: AtomicU64,
}

/// A sampler following the rules and quotas X-Ray distributes.
///
/// A background thread (the poller) fetches the rules (`POST /GetSamplingRules`, at
/// [`start`](Self::start) and then every 300 s plus up to 5 s of jitter, following
/// `NextToken`) and every 10 s (plus up to 100 ms) reports each rule's statistics and receives
/// its targets (`POST /SamplingTargets`): a reservoir quota valid until a TTL, and a fixed
/// rate. An answer saying the rules changed after the last fetch (`LastRuleModification`)
/// makes it fetch them again at once.
///
/// Deciding never waits for the network: the request thread reads the current rule set, takes
/// the first matching rule (by priority, then name; on service name, service type, host,
/// method and URL path) and applies its quota, then its rate. Until X-Ray grants a quota, or
/// after it expired, a rule with a reservoir borrows one request per second. Any failure
/// (daemon down, error status, garbage, slow answer) keeps the last good state; while the
/// daemon has never answered, the fallback [`LocalSampler`] decides (and the rules are asked
/// for at the statistics interval rather than every 300 s). Rule `Attributes` are not matched.
///
/// With the cargo feature `xray-api`, `XRayApiEmitter::centralized_sampler` (in
/// `xray_core::emitter`) makes one that calls `GetSamplingRules` and `GetSamplingTargets`
/// through the emitter's AWS SDK client, for hosts without a daemon; the recorder does so by
/// itself when `XRAY_EXPORTER=xray-api` chose that emitter.
///
/// [`Recorder::shutdown`](crate::Recorder::shutdown) stops the poller (through
/// [`Sampler::shutdown`]); so does dropping the sampler.
///
/// ```no_run
/// use xray_core::daemon::DaemonAddress;
/// use xray_core::sampling::{CentralizedSampler, LocalSampler};
/// use xray_core::Recorder;
///
/// let daemon = DaemonAddress::default();
/// let sampler = CentralizedSampler::new(&daemon, LocalSampler::default());
/// sampler.start();
/// let recorder = Recorder::builder().sampler(sampler).build().unwrap();
/// // ... serve requests ...
/// recorder.shutdown(std::time::Duration::from_secs(2)); // also stops the poller
/// ```
pub struct CentralizedSampler {
    shared: Arc<Shared>,
    poller: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for CentralizedSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CentralizedSampler")
            .field("source", &self.shared.source())
            .field("client_id", &client_id())
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl CentralizedSampler {
    /// A sampler asking the daemon's TCP address, deciding with `fallback` until the daemon
    /// first answers. Call [`start`](Self::start) to begin polling.
    pub fn new(daemon: &DaemonAddress, fallback: LocalSampler) -> Self {
        // No rules yet: the fallback decides.
        let reads_request = std::sync::atomic::AtomicBool::new(fallback.reads_request());
        Self {
            shared: Arc::new(Shared {
                id: next_owner_id(),
                config: Config {
                    daemon: daemon.tcp.clone(),
                    api: None,
                    rules_interval: DEFAULT_RULES_INTERVAL,
                    targets_interval: DEFAULT_TARGETS_INTERVAL,
                    timeout: DEFAULT_TIMEOUT,
                },
                fallback,
                clock: Arc::new(SystemClock),
                random: Arc::new(FastRandom),
                rules: RwLock::new((0, Arc::new(RuleSet::default()))),
                generation: AtomicU64::new(0),
                reads_request,
                last_fetch: Mutex::new(None),
                stop: Mutex::new(false),
                wake: Condvar::new(),
                failing: std::sync::atomic::AtomicBool::new(false),
                rule_fetches: AtomicU64::new(0),
                rule_failures: AtomicU64::new(0),
                target_fetches: AtomicU64::new(0),
                target_failures: AtomicU64::new(0),
            }),
            poller: Mutex::new(None),
        }
    }

    /// A sampler calling the sampling API through `api` instead of the daemon.
    #[cfg_attr(not(feature = "xray-api"), allow(dead_code))]
    pub(crate) fn with_api(api: Arc<dyn SamplingApi>, fallback: LocalSampler) -> Self {
        Self::new(&DaemonAddress::default(), fallback)
            .configure("the transport", |s| s.config.api = Some(api))
    }

    fn configure(mut self, what: &str, f: impl FnOnce(&mut Shared)) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => f(shared),
            None => tracing::warn!("{what} must be set before the sampling poller starts; ignored"),
        }
        self
    }

    /// Sets the interval between rule fetches (default 300 s; jitter of up to 1/60 of it is
    /// added).
    pub fn with_rules_interval(self, interval: Duration) -> Self {
        self.configure("the rules interval", |s| {
            s.config.rules_interval = interval.max(Duration::from_millis(10))
        })
    }

    /// Sets the interval between statistics reports (default 10 s; jitter of up to 1/100 of
    /// it is added).
    pub fn with_targets_interval(self, interval: Duration) -> Self {
        self.configure("the targets interval", |s| {
            s.config.targets_interval = interval.max(Duration::from_millis(10))
        })
    }

    /// Sets the time allowed for one call to the daemon (default 2 s).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.configure("the timeout", |s| {
            s.config.timeout = timeout.max(Duration::from_millis(1))
        })
    }

    /// Reads the time from `clock` for quotas, reservoirs and statistics (for tests; polling
    /// intervals always follow the real clock).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.configure("the clock", |s| s.clock = clock)
    }

    /// Draws the numbers compared with rule rates from `random`.
    pub fn with_random(self, random: Arc<dyn RandomSource>) -> Self {
        self.configure("the random source", |s| s.random = random)
    }

    /// Starts the poller thread; it fetches the rules at once. Does nothing when it runs
    /// already. Without a poller the fallback sampler decides.
    pub fn start(&self) {
        let mut poller = self.poller.lock().unwrap_or_else(|p| p.into_inner());
        if poller.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = false;
        let shared = self.shared.clone();
        match std::thread::Builder::new()
            .name("xray-sampling".into())
            .spawn(move || shared.run())
        {
            Ok(h) => *poller = Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the X-Ray sampling poller; using local sampling")
            }
        }
    }

    /// Stops the poller and waits for it: at once between calls; a call to the daemon in
    /// flight runs to its timeout (2 s by default), and no other call starts.
    /// [`Recorder::shutdown`](crate::Recorder::shutdown) waits for this only until its own
    /// deadline.
    pub fn stop(&self) {
        self.shared.signal_stop();
        let handle = self.poller.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    /// Whether the poller thread runs.
    pub fn is_running(&self) -> bool {
        self.poller
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// What the poller has done so far.
    pub fn status(&self) -> PollerStatus {
        let s = &self.shared;
        PollerStatus {
            rules: s.current().len(),
            rule_fetches: s.rule_fetches.load(Ordering::Relaxed),
            rule_failures: s.rule_failures.load(Ordering::Relaxed),
            target_fetches: s.target_fetches.load(Ordering::Relaxed),
            target_failures: s.target_failures.load(Ordering::Relaxed),
        }
    }

    /// The names of the current rules, in matching order.
    pub fn rule_names(&self) -> Vec<String> {
        self.shared.current().names()
    }

    /// The id statistics are reported under (see [`client_id`]).
    pub fn client_id(&self) -> &'static str {
        client_id()
    }

    /// Fetches the rules now, on the calling thread (blocking up to the timeout per page).
    /// Returns whether new rules were installed. Mostly for tests and start-up code that wants
    /// rules before serving.
    pub fn refresh_rules_now(&self) -> bool {
        self.shared.refresh_rules()
    }

    /// Reports statistics and applies the targets now, on the calling thread. Returns whether
    /// the answer asked for the rules to be fetched again.
    pub fn report_now(&self) -> bool {
        self.shared.report()
    }
}

impl Drop for CentralizedSampler {
    fn drop(&mut self) {
        self.shared.signal_stop();
    }
}

struct Cached {
    owner: u64,
    generation: u64,
    set: Arc<RuleSet>,
}

thread_local! {
    /// The rule set this thread last used, so deciding touches no shared lock or counter while
    /// the rules do not change.
    static CACHED: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

impl Sampler for CentralizedSampler {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        self.decide(request, true)
    }

    fn sample(&self, request: &SamplingRequest<'_>) -> bool {
        self.decide(request, false).sampled
    }

    /// Whether the rules in use (or, before any arrived, the local fallback rules) look at
    /// the host, method or path. X-Ray's default rule alone does not: then the server
    /// adapters skip reading them. A request decided while new rules are being installed may
    /// be asked about with the previous answer.
    fn reads_request(&self) -> bool {
        self.shared.reads_request.load(Ordering::Acquire)
    }

    fn shutdown(&self) {
        self.stop();
    }
}

impl CentralizedSampler {
    /// The decision, with the rule's name when `named`.
    fn decide(&self, request: &SamplingRequest<'_>, named: bool) -> SamplingDecision {
        let s = &*self.shared;
        let now = s.clock.now();
        let generation = s.generation.load(Ordering::Acquire);
        let decide = |generation: u64, set: &RuleSet| {
            set.decide_index(request, now, &*s.random)
                .map(|(i, sampled)| SamplingDecision {
                    sampled,
                    rule_name: named.then(|| thread_copy(s.id, generation, i, set.name_list())),
                })
        };
        let fast = CACHED
            .try_with(|c| {
                let c = c.try_borrow().ok()?;
                match &*c {
                    Some(k) if k.owner == s.id && k.generation == generation => {
                        Some(decide(generation, &k.set))
                    }
                    _ => None,
                }
            })
            .ok()
            .flatten();
        let decided = match fast {
            Some(d) => d,
            None => {
                let (generation, set) = s.current_with_generation();
                let d = decide(generation, &set);
                let _ = CACHED.try_with(|c| {
                    if let Ok(mut c) = c.try_borrow_mut() {
                        *c = Some(Cached {
                            owner: s.id,
                            generation,
                            set,
                        });
                    }
                });
                d
            }
        };
        decided.unwrap_or_else(|| match named {
            true => s.fallback.should_sample(request),
            false => SamplingDecision::new(s.fallback.sample(request)),
        })
    }
}

fn jitter(max: Duration) -> Duration {
    max.mul_f64(fastrand::f64())
}

impl Shared {
    fn current_with_generation(&self) -> (u64, Arc<RuleSet>) {
        let g = self.rules.read().unwrap_or_else(|p| p.into_inner());
        (g.0, g.1.clone())
    }

    fn current(&self) -> Arc<RuleSet> {
        self.current_with_generation().1
    }

    fn signal_stop(&self) {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    fn stopped(&self) -> bool {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps until `deadline`; true when asked to stop.
    fn sleep_until(&self, deadline: Instant) -> bool {
        let mut stop = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if *stop {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            stop = self
                .wake
                .wait_timeout(stop, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn run(&self) {
        let c = &self.config;
        let mut next_rules = Instant::now();
        let mut next_targets =
            Instant::now() + c.targets_interval + jitter(c.targets_interval / 100);
        loop {
            if self.sleep_until(next_rules.min(next_targets)) {
                break;
            }
            if Instant::now() >= next_rules {
                self.refresh_rules();
                next_rules = Instant::now() + self.rules_delay();
            }
            if self.stopped() {
                break;
            }
            if Instant::now() >= next_targets {
                if self.report() && !self.stopped() {
                    self.refresh_rules();
                    next_rules = Instant::now() + self.rules_delay();
                }
                next_targets =
                    Instant::now() + c.targets_interval + jitter(c.targets_interval / 100);
            }
        }
        tracing::debug!("X-Ray sampling poller stopped");
    }

    /// Until the daemon first answers, rules are asked for as often as targets would be.
    fn rules_delay(&self) -> Duration {
        let c = &self.config;
        if self.current().is_empty() {
            c.targets_interval.min(c.rules_interval)
        } else {
            c.rules_interval + jitter(c.rules_interval / 60)
        }
    }

    /// Logs a failed call: a warning for the first of a run of failures, debug after that.
    fn failed(&self, what: &str, error: &str) {
        if self.failing.swap(true, Ordering::Relaxed) {
            tracing::debug!(error, "{what}");
        } else {
            tracing::warn!(
                error,
                source = %self.source(),
                "{what} (local sampling decides while the sampling API cannot be reached; \
                 later failures are logged at debug level)"
            );
        }
    }

    /// The daemon answered: the next failure is worth a warning again.
    fn answered(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(source = %self.source(), "the X-Ray sampling API answers again");
        }
    }

    /// The daemon's address, or the other transport's description.
    fn source(&self) -> String {
        match &self.config.api {
            Some(api) => api.describe(),
            None => format!("daemon {}", self.config.daemon),
        }
    }

    fn rules_page(&self, token: Option<&str>) -> Result<super::api::RulesPage, String> {
        match &self.config.api {
            Some(api) => api.rules_page(token, self.config.timeout),
            None => self
                .call("/GetSamplingRules", &rules_request(token))
                .and_then(|b| parse_rules_page(&b).map_err(|e| e.to_string())),
        }
    }

    fn targets(
        &self,
        docs: &[super::api::StatisticsDocument],
    ) -> Result<super::api::TargetsAnswer, String> {
        match &self.config.api {
            Some(api) => api.targets(docs, self.config.timeout),
            None => self
                .call("/SamplingTargets", &targets_request(docs))
                .and_then(|b| parse_targets(&b).map_err(|e| e.to_string())),
        }
    }

    fn call(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let r = post_json(&self.config.daemon, path, body, self.config.timeout)
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            let text: String = String::from_utf8_lossy(&r.body).chars().take(200).collect();
            return Err(format!("status {} from {path}: {text}", r.status));
        }
        Ok(r.body)
    }

    fn refresh_rules(&self) -> bool {
        let started = self.clock.now();
        let mut defs = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = self.rules_page(token.as_deref());
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    self.rule_failures.fetch_add(1, Ordering::Relaxed);
                    self.failed(
                        "cannot fetch X-Ray sampling rules; keeping the current ones",
                        &e,
                    );
                    return false;
                }
            };
            defs.extend(page.rules);
            pages += 1;
            match page.next_token {
                Some(t) if token.as_ref() != Some(&t) && pages < MAX_PAGES && !self.stopped() => {
                    token = Some(t)
                }
                Some(_) if pages >= MAX_PAGES => {
                    tracing::warn!("X-Ray sampling rules span more than {MAX_PAGES} pages; using the first {MAX_PAGES}");
                    break;
                }
                _ => break,
            }
        }
        if defs.is_empty() {
            self.rule_failures.fetch_add(1, Ordering::Relaxed);
            self.failed(
                "the sampling API returned no usable sampling rule; keeping the current ones",
                "no rule with version 1 and resource ARN *",
            );
            return false;
        }
        self.answered();
        {
            let mut g = self.rules.write().unwrap_or_else(|p| p.into_inner());
            let set = Arc::new(RuleSet::new(defs, &g.1));
            let generation = g.0 + 1;
            self.reads_request.store(
                set.reads_request() || self.fallback.reads_request(),
                Ordering::Release,
            );
            *g = (generation, set);
            self.generation.store(generation, Ordering::Release);
        }
        *self.last_fetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(started);
        self.rule_fetches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(rules = self.current().len(), "fetched X-Ray sampling rules");
        true
    }

    /// Reports statistics and applies targets; true when the rules changed since last fetched.
    fn report(&self) -> bool {
        let set = self.current();
        if set.is_empty() {
            return false;
        }
        let stats = set.take_statistics(self.clock.now(), client_id());
        let last_fetch = *self.last_fetch.lock().unwrap_or_else(|p| p.into_inner());
        let mut refresh = false;
        for (i, chunk) in stats.chunks(STATISTICS_PER_CALL).enumerate() {
            if i > 0 && self.stopped() {
                // Shutting down: no further call; the counts not reported are kept.
                for (rule, doc) in chunk {
                    restore_statistics(rule, doc);
                }
                continue;
            }
            let docs: Vec<_> = chunk.iter().map(|(_, d)| d.clone()).collect();
            let answer = self.targets(&docs);
            match answer {
                Ok(a) => {
                    self.target_fetches.fetch_add(1, Ordering::Relaxed);
                    self.answered();
                    set.apply_targets(&a.targets);
                    if a.unprocessed > 0 {
                        tracing::warn!(
                            count = a.unprocessed,
                            "X-Ray did not process some sampling statistics"
                        );
                    }
                    if let Some(modified) = a.last_rule_modification {
                        if last_fetch.is_none_or(|f| modified > f.as_secs_f64()) {
                            refresh = true;
                        }
                    }
                }
                Err(e) => {
                    self.target_failures.fetch_add(1, Ordering::Relaxed);
                    self.failed(
                        "cannot report X-Ray sampling statistics; keeping the current targets",
                        &e,
                    );
                    for (rule, doc) in chunk {
                        restore_statistics(rule, doc);
                    }
                }
            }
        }
        refresh
    }
}
