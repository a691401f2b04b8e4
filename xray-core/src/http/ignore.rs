//! Outbound calls that are never recorded: the caller's rules (Python's `add_ignored`) and the
//! daemon's own address.
//!
//! A rule names a host pattern, a URL path pattern and a method pattern, any of them optional;
//! a call matches the rule when every part the rule sets matches (Python's rules work the same
//! way), and a call is ignored when it matches any rule. Patterns use `*` (any run of
//! characters) and `?` (exactly one), ignoring ASCII case, as sampling rules do
//! ([`wildcard_match`]):
//!
//! - the host is matched without the port (`api.example.com`, `10.0.0.7`, IPv6 literals
//!   without brackets), like dynamic naming (SPEC §7);
//! - the URL pattern is matched against the path only, without the query string or fragment
//!   (`/health*` matches `https://api.example.com/healthz?full=1`);
//! - the method is the HTTP method (`GET`).
//!
//! An ignored call goes out untouched: no subsegment, and no trace header is added.
//!
//! Calls to the recorder's daemon (its UDP or TCP `host:port`, `AWS_XRAY_DAEMON_ADDRESS`) are
//! never recorded either, whatever the rules: a client that talks to the daemon's sampling
//! proxy would otherwise record its own traffic. `localhost` and loopback addresses count as
//! the same host.

use std::net::IpAddr;
use std::sync::Arc;

use crate::daemon::{DaemonAddress, HostPort};
use crate::naming::wildcard_match;

/// One rule of [`IgnoreRules`]: a call matches when every part the rule sets matches. A rule
/// that sets nothing matches nothing.
///
/// ```
/// use xray_core::http::IgnoreRule;
///
/// let rule = IgnoreRule::new().host("*.internal").url("/metrics*").method("GET");
/// assert!(rule.matches("GET", "http://prom.internal:9090/metrics/cpu"));
/// assert!(!rule.matches("POST", "http://prom.internal:9090/metrics/cpu"));
/// assert!(!rule.matches("GET", "http://api.example.com/metrics"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct IgnoreRule {
    host: Option<Box<str>>,
    url: Option<Box<str>>,
    method: Option<Box<str>>,
}

impl IgnoreRule {
    /// A rule that sets nothing yet (and so matches nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Matches calls whose host (without the port) matches `pattern`.
    pub fn host(mut self, pattern: impl Into<String>) -> Self {
        self.host = Some(pattern.into().into());
        self
    }

    /// Matches calls whose URL path (without query or fragment) matches `pattern`.
    pub fn url(mut self, pattern: impl Into<String>) -> Self {
        self.url = Some(pattern.into().into());
        self
    }

    /// Matches calls whose HTTP method matches `pattern`.
    pub fn method(mut self, pattern: impl Into<String>) -> Self {
        self.method = Some(pattern.into().into());
        self
    }

    /// True when the rule sets no part.
    pub fn is_empty(&self) -> bool {
        self.host.is_none() && self.url.is_none() && self.method.is_none()
    }

    /// Whether a call with this method and URL matches. `url` is absolute
    /// (`scheme://host[:port]/path?query`) or, when the adapter only knows the path, a path;
    /// a rule with a host pattern never matches a URL without a host.
    pub fn matches(&self, method: &str, url: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        let (host, path) = split_url(url);
        let part = |pattern: &Option<Box<str>>, value: Option<&str>| match pattern {
            None => true,
            Some(p) => value.is_some_and(|v| wildcard_match(p, v)),
        };
        part(&self.method, Some(method)) && part(&self.host, host) && part(&self.url, Some(path))
    }
}

/// The calls a client adapter leaves alone: a call that matches any [`IgnoreRule`] goes out
/// untouched, without a subsegment or a trace header. Cheap to clone.
///
/// Client adapters build it with their `ignore_host`, `ignore_url` and `ignore` builders; it
/// lives in [`OutboundOptions::ignore`](super::OutboundOptions::ignore).
///
/// ```
/// use xray_core::http::{IgnoreRule, IgnoreRules};
///
/// let rules = IgnoreRules::new()
///     .with(IgnoreRule::new().host("*.internal"))
///     .with(IgnoreRule::new().url("/health*"));
/// assert!(rules.matches("GET", "http://cache.internal/x"));
/// assert!(rules.matches("GET", "https://api.example.com/healthz?deep=1"));
/// assert!(!rules.matches("GET", "https://api.example.com/orders"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct IgnoreRules {
    rules: Arc<[IgnoreRule]>,
}

impl IgnoreRules {
    /// No rules: every call is recorded (except calls to the daemon).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `rule`. A rule that sets nothing is left out (it would match nothing).
    pub fn with(mut self, rule: IgnoreRule) -> Self {
        self.push(rule);
        self
    }

    /// Adds `rule` in place; see [`with`](Self::with).
    pub fn push(&mut self, rule: IgnoreRule) {
        if rule.is_empty() {
            return;
        }
        let mut rules = self.rules.to_vec();
        rules.push(rule);
        self.rules = rules.into();
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &IgnoreRule> {
        self.rules.iter()
    }

    /// Whether a call with this method and URL matches one of the rules.
    pub fn matches(&self, method: &str, url: &str) -> bool {
        self.rules.iter().any(|r| r.matches(method, url))
    }
}

/// True when `url` goes to the daemon at `daemon`: its host and port (the scheme's default
/// port when the URL names none) are the daemon's UDP or TCP address. `localhost` and
/// loopback addresses are the same host.
///
/// ```
/// use xray_core::daemon::DaemonAddress;
/// use xray_core::http::is_daemon_url;
///
/// let daemon = DaemonAddress::parse("127.0.0.1:2000").unwrap();
/// assert!(is_daemon_url(&daemon, "http://localhost:2000/GetSamplingRules"));
/// assert!(!is_daemon_url(&daemon, "http://127.0.0.1:8080/"));
/// ```
pub fn is_daemon_url(daemon: &DaemonAddress, url: &str) -> bool {
    let Some((host, port)) = host_and_port(url) else {
        return false;
    };
    let same = |hp: &HostPort| hp.port == port && same_host(&hp.host, host);
    same(&daemon.tcp) || same(&daemon.udp)
}

/// The host (without brackets) and the path of a URL; a URL without `://` is a path.
fn split_url(url: &str) -> (Option<&str>, &str) {
    let Some(i) = url.find("://") else {
        return (None, strip_query(url));
    };
    let rest = &url[i + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let path = strip_query(&rest[auth_end..]);
    let path = if path.is_empty() { "/" } else { path };
    (host_of(&rest[..auth_end]).map(|(h, _)| h), path)
}

fn strip_query(s: &str) -> &str {
    s.split(['?', '#']).next().unwrap_or(s)
}

/// The host (IPv6 without brackets) and the explicit port of an authority, user info removed.
fn host_of(authority: &str) -> Option<(&str, Option<&str>)> {
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let end = rest.find(']')?;
        (&rest[..end], rest[end + 1..].strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

/// The host and port of an absolute URL; the port defaults to the scheme's (80, 443).
fn host_and_port(url: &str) -> Option<(&str, u16)> {
    let i = url.find("://")?;
    let scheme = &url[..i];
    let rest = &url[i + 3..];
    let (host, port) = host_of(&rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())])?;
    let port = match port {
        Some(p) => p.parse().ok()?,
        None if scheme.eq_ignore_ascii_case("http") => 80,
        None if scheme.eq_ignore_ascii_case("https") => 443,
        None => return None,
    };
    Some((host, port))
}

fn same_host(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (is_loopback(a) && is_loopback(b))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_the_host_without_port_or_user_info_ignoring_case() {
        let rule = IgnoreRule::new().host("*.Internal");
        assert!(rule.matches("GET", "http://user:pw@cache.internal:6379/x"));
        assert!(rule.matches("GET", "https://CACHE.INTERNAL"));
        assert!(!rule.matches("GET", "https://internal.example.com/"));
        assert!(!rule.matches("GET", "/relative/path"), "no host, no match");
        assert!(IgnoreRule::new()
            .host("::1")
            .matches("GET", "http://[::1]:8080/"));
        assert!(IgnoreRule::new()
            .host("10.0.0.?")
            .matches("GET", "http://10.0.0.7/"));
    }

    #[test]
    fn url_patterns_match_the_path_without_query_or_fragment() {
        let rule = IgnoreRule::new().url("/health*");
        assert!(rule.matches("GET", "http://h/healthz?deep=1"));
        assert!(rule.matches("GET", "/health#top"));
        assert!(!rule.matches("GET", "http://h/api/health"));
        assert!(IgnoreRule::new().url("/").matches("GET", "http://h"));
        assert!(IgnoreRule::new().url("/").matches("GET", "http://h?q=1"));
        // The query is never part of what is matched.
        assert!(!IgnoreRule::new()
            .url("*token*")
            .matches("GET", "http://h/a?token=1"));
    }

    #[test]
    fn every_part_a_rule_sets_must_match() {
        let rule = IgnoreRule::new()
            .host("api.example.com")
            .url("/ping")
            .method("get");
        assert!(rule.matches("GET", "https://api.example.com/ping"));
        assert!(!rule.matches("POST", "https://api.example.com/ping"));
        assert!(!rule.matches("GET", "https://api.example.com/pong"));
        assert!(!rule.matches("GET", "https://web.example.com/ping"));
    }

    #[test]
    fn an_empty_rule_matches_nothing_and_is_not_kept() {
        assert!(!IgnoreRule::new().matches("GET", "http://h/"));
        let rules = IgnoreRules::new().with(IgnoreRule::new());
        assert!(rules.is_empty());
        assert!(!rules.matches("GET", "http://h/"));
    }

    #[test]
    fn begin_outbound_leaves_ignored_and_daemon_calls_alone() {
        use crate::http::{begin_outbound, OutboundOptions};
        let emitter = crate::emitter::MemoryEmitter::new();
        let recorder = crate::Recorder::builder()
            .daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.1:2001")
            .sampler(crate::sampling::AlwaysSample)
            .emitter(emitter.clone())
            .ignore_env()
            .build()
            .unwrap();
        let segment = recorder.begin_segment("svc", None);
        let options = OutboundOptions {
            ignore: IgnoreRules::new().with(IgnoreRule::new().host("*.internal")),
            ..OutboundOptions::default()
        };
        let call = |url: &str| begin_outbound(Some(segment.clone()), "GET", url, &options);
        assert!(call("http://cache.internal/x").is_none());
        assert!(call("http://localhost:2000/GetSamplingRules").is_none());
        assert!(call("http://127.0.0.1:2001/").is_none());
        assert!(options.ignores(&recorder, "GET", "http://127.0.0.1:2000/SamplingTargets"));
        let mut kept = call("http://api.example.com/x").expect("recorded");
        kept.finish(200, None);
        segment.end();
        let docs = emitter.documents();
        assert_eq!(docs[0].subsegments.len(), 1);
        assert_eq!(docs[0].subsegments[0].name, "api.example.com");
    }

    #[test]
    fn daemon_urls_are_recognised_on_either_address_and_loopback_aliases() {
        let one = DaemonAddress::parse("127.0.0.1:2000").unwrap();
        assert!(is_daemon_url(
            &one,
            "http://127.0.0.1:2000/GetSamplingRules"
        ));
        assert!(is_daemon_url(&one, "http://LOCALHOST:2000/SamplingTargets"));
        assert!(is_daemon_url(&one, "http://[::1]:2000/"));
        assert!(!is_daemon_url(&one, "http://127.0.0.1:2001/"));
        assert!(!is_daemon_url(&one, "http://10.0.0.1:2000/"));
        assert!(!is_daemon_url(&one, "/GetSamplingRules"));
        let split = DaemonAddress::parse("tcp:xray.local:2000 udp:10.0.0.9:2001").unwrap();
        assert!(is_daemon_url(
            &split,
            "http://xray.local:2000/GetSamplingRules"
        ));
        assert!(is_daemon_url(&split, "http://10.0.0.9:2001/"));
        assert!(!is_daemon_url(&split, "http://xray.local:2001/"));
        let web = DaemonAddress::parse("xray.local:80").unwrap();
        assert!(is_daemon_url(&web, "http://xray.local/x"), "default port");
        assert!(!is_daemon_url(&web, "https://xray.local/x"));
    }
}
