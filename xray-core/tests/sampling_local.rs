//! Local sampling and the incoming `Sampled` policies, checked through a recorder and the
//! documents its emitter received.

use std::sync::Arc;
use std::time::Duration;

use xray_core::emitter::MemoryEmitter;
use xray_core::sampling::clock::ManualClock;
use xray_core::sampling::{
    sqs_message_sampled, LocalSampler, NeverSample, Sampler, SamplingRequest,
};
use xray_core::time::Timestamp;
use xray_core::{IncomingSampled, Recorder, TraceHeader};

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

fn recorder(sampler: impl Sampler, policy: IncomingSampled) -> (Recorder, MemoryEmitter) {
    let emitter = MemoryEmitter::new();
    let r = Recorder::builder()
        .service_name("svc")
        .sampler(sampler)
        .emitter(emitter.clone())
        .incoming_sampled(policy)
        .ignore_env()
        .build()
        .unwrap();
    (r, emitter)
}

fn header(sampled: &str) -> TraceHeader {
    format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled={sampled}")
        .parse()
        .unwrap()
}

/// Begins and ends `n` segments within one wall-clock second; retries when a second boundary
/// falls inside the burst, so per-second counts are exact.
fn sampled_in_one_second(r: &Recorder, h: &TraceHeader, n: usize) -> usize {
    loop {
        let before = Timestamp::now().as_secs();
        let count = (0..n)
            .filter(|_| {
                let s = r.begin_segment("svc", Some(h));
                let sampled = s.is_sampled();
                s.end();
                sampled
            })
            .count();
        if Timestamp::now().as_secs() == before {
            return count;
        }
        std::thread::sleep(Duration::from_millis(1100));
    }
}

#[test]
fn incoming_sampled_one_is_trusted_by_default() {
    let (r, e) = recorder(NeverSample, IncomingSampled::default());
    assert_eq!(sampled_in_one_second(&r, &header("1"), 20), 20);
    assert_eq!(e.documents().len(), 20);
}

#[test]
fn incoming_sampled_one_is_capped_per_second_then_the_sampler_decides() {
    let (r, e) = recorder(NeverSample, IncomingSampled::cap(3));
    assert_eq!(sampled_in_one_second(&r, &header("1"), 20), 3);
    assert!(e.documents().len() >= 3);
    let (r, _) = recorder(xray_core::sampling::AlwaysSample, IncomingSampled::cap(0));
    assert_eq!(
        sampled_in_one_second(&r, &header("1"), 5),
        5,
        "beyond the cap the sampler decides, and this one samples"
    );
}

#[test]
fn incoming_sampled_one_is_ignored_when_configured() {
    let (r, e) = recorder(NeverSample, IncomingSampled::Ignore);
    assert_eq!(sampled_in_one_second(&r, &header("1"), 10), 0);
    r.flush(Duration::from_secs(1));
    assert!(e.documents().is_empty());
}

#[test]
fn incoming_sampled_zero_is_followed_under_every_policy() {
    for policy in [
        IncomingSampled::Trust,
        IncomingSampled::Ignore,
        IncomingSampled::cap(5),
    ] {
        let (r, _) = recorder(xray_core::sampling::AlwaysSample, policy.clone());
        assert_eq!(sampled_in_one_second(&r, &header("0"), 5), 0, "{policy:?}");
    }
}

#[test]
fn local_rules_file_decides_for_the_recorder_by_host_method_and_path() {
    let path =
        std::env::temp_dir().join(format!("xray-sampling-local-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{
            "version": 2,
            "rules": [
                {"description": "checkout", "host": "*.shop.example", "http_method": "POST",
                 "url_path": "/checkout*", "fixed_target": 2, "rate": 0},
                {"description": "health", "host": "*", "http_method": "*",
                 "url_path": "/health", "fixed_target": 0, "rate": 0}
            ],
            "default": {"fixed_target": 0, "rate": 0}
        }"#,
    )
    .unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let sampler = LocalSampler::from_file(&path)
        .unwrap()
        .with_clock(clock.clone());
    let _ = std::fs::remove_file(&path);
    let (r, e) = recorder(sampler, IncomingSampled::Trust);
    let checkout = SamplingRequest::new("svc")
        .host(Some("www.shop.example"))
        .method(Some("POST"))
        .url_path(Some("/checkout/pay"));
    let sampled = (0..5)
        .filter(|_| {
            let s = r.begin_segment_with("svc", Some(&header("?")), &checkout);
            let yes = s.is_sampled();
            s.end();
            yes
        })
        .count();
    assert_eq!(sampled, 2, "fixed_target 2 of the first matching rule");
    let health = SamplingRequest::new("svc").url_path(Some("/health"));
    assert!(!r.begin_segment_with("svc", None, &health).is_sampled());
    r.flush(Duration::from_secs(1));
    assert_eq!(e.documents().len(), 2);
}

#[test]
fn sqs_attribute_with_sampled_10_is_not_sampled() {
    assert!(!sqs_message_sampled(Some(&format!(
        "Root={ROOT};Sampled=10"
    ))));
    assert!(sqs_message_sampled(Some(&format!("Root={ROOT};Sampled=1"))));
}

/// Says yes to every other request and counts how often it was asked.
#[derive(Debug, Default)]
struct Alternating {
    asked: std::sync::atomic::AtomicUsize,
}

impl Sampler for Alternating {
    fn should_sample(&self, _: &SamplingRequest<'_>) -> xray_core::sampling::SamplingDecision {
        let n = self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        xray_core::sampling::SamplingDecision::new(n.is_multiple_of(2))
    }
    fn reads_request(&self) -> bool {
        false
    }
}

#[test]
fn a_server_asks_the_sampler_once_per_request_it_must_decide_and_never_for_decided_ones() {
    let sampler = Arc::new(Alternating::default());
    let (r, e) = recorder(sampler.clone(), IncomingSampled::Trust);
    let tracing = xray_core::http::ServerTracing::new("svc").with_recorder(r.clone());
    let asked = || sampler.asked.load(std::sync::atomic::Ordering::SeqCst);
    let serve = |trace_header: Option<String>| {
        let mut req = http::Request::builder().uri("http://svc.example/");
        if let Some(h) = trace_header {
            req = req.header("x-amzn-trace-id", h);
        }
        let req = req.body(()).unwrap();
        let mut exchange = tracing.begin_http(req.method(), req.uri(), req.headers(), || None);
        let sampled = exchange.is_sampled();
        let answer = exchange.response_header().unwrap();
        exchange.finish(200, Some(0));
        (sampled, answer)
    };
    // No header: the sampler decides, one call each; yes, no, yes, no.
    let decided: Vec<bool> = (0..4).map(|_| serve(None).0).collect();
    assert_eq!(decided, [true, false, true, false]);
    assert_eq!(asked(), 4);
    // `Sampled=?` and a header without a decision: asked once each, answered with `Sampled=`
    // only when the caller asked for it.
    let (yes, answer) = serve(Some(format!("Root={ROOT};Sampled=?")));
    assert!(yes);
    assert_eq!(answer, format!("Root={ROOT};Sampled=1"));
    let (no, answer) = serve(Some(format!("Root={ROOT}")));
    assert!(!no);
    assert_eq!(answer, format!("Root={ROOT}"));
    assert_eq!(asked(), 6);
    // The caller decided: the sampler is not asked.
    assert!(serve(Some(format!("Root={ROOT};Sampled=1"))).0);
    assert!(!serve(Some(format!("Root={ROOT};Sampled=0"))).0);
    assert_eq!(asked(), 6);
    r.flush(Duration::from_secs(1));
    assert_eq!(
        e.documents().len(),
        4,
        "2 decided here, `Sampled=?` and `Sampled=1`"
    );
}

#[test]
fn begin_lazy_reads_the_request_only_when_something_needs_it() {
    use xray_core::http::{IncomingRequest, ServerTracing};
    let reads = std::cell::Cell::new(0);
    let read = || {
        reads.set(reads.get() + 1);
        IncomingRequest {
            method: "GET",
            host: Some("shop.example"),
            path_and_query: "/checkout/pay?card=1",
            ..IncomingRequest::default()
        }
    };

    // A sampler that only needs the trace header: read for sampled requests alone.
    let sampler = Arc::new(Alternating::default());
    let (r, e) = recorder(sampler.clone(), IncomingSampled::Trust);
    let tracing = ServerTracing::new("svc").with_recorder(r.clone());
    let served: Vec<bool> = (0..4)
        .map(|_| {
            let mut x = tracing.begin_lazy(None, "GET", read);
            let sampled = x.is_sampled();
            x.finish(200, Some(0));
            sampled
        })
        .collect();
    assert_eq!(served, [true, false, true, false]);
    assert_eq!(reads.get(), 2, "only the two sampled requests were read");
    r.flush(Duration::from_secs(1));
    let urls: Vec<_> = e
        .documents()
        .iter()
        .map(|d| d.http.request.as_ref().and_then(|h| h.url.clone()))
        .collect();
    assert_eq!(
        urls,
        vec![Some("http://shop.example/checkout/pay".to_string()); 2]
    );

    // A caller that decided, on an unsampled trace: not read at all.
    reads.set(0);
    let header = format!("Root={ROOT};Sampled=0");
    let mut x = tracing.begin_lazy(Some(header.as_bytes()), "GET", read);
    assert!(!x.is_sampled());
    assert_eq!(x.response_header().unwrap(), format!("Root={ROOT}"));
    x.finish(200, Some(0));
    assert_eq!(reads.get(), 0);

    // Rules on the path: read before deciding, every time, and the rule sees the path.
    reads.set(0);
    let ruled = LocalSampler::new(0, 0.0)
        .with_rule(xray_core::sampling::LocalRule::new(100, 0.0).url_path("/checkout/*"));
    let (r, _) = recorder(ruled, IncomingSampled::Trust);
    let tracing = ServerTracing::new("svc").with_recorder(r);
    let mut x = tracing.begin_lazy(None, "GET", read);
    assert!(x.is_sampled(), "the path rule matched");
    x.finish(200, Some(0));
    assert_eq!(reads.get(), 1);
    // The trace header given to `begin_lazy` counts on this path too, not `read`'s.
    let mut x = tracing.begin_lazy(Some(header.as_bytes()), "GET", read);
    assert!(!x.is_sampled(), "the caller's Sampled=0 holds");
    assert_eq!(x.response_header().unwrap(), format!("Root={ROOT}"));
    x.finish(200, Some(0));
    assert_eq!(reads.get(), 2);
}
