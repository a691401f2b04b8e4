//! The cost of one sampling decision, alone and with two threads deciding at once.
//!
//! Target: at most 50 ns per decision under contention from 2 threads. A decision reads the
//! clock once (`Instant`), which is most of its cost on virtual machines; nothing on the path
//! writes memory shared between threads except the first `fixed_target` takes each second,
//! so two threads should cost what one does.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use xray_core::daemon::DaemonAddress;
use xray_core::sampling::{CentralizedSampler, LocalRule, LocalSampler, Sampler, SamplingRequest};

fn request() -> SamplingRequest<'static> {
    SamplingRequest::new("checkout")
        .host(Some("api.example.com"))
        .method(Some("GET"))
        .url_path(Some("/orders/123"))
}

/// Runs `iters` decisions on each of `threads` threads at once; returns the time per thread.
fn contended<S: Sampler>(sampler: &Arc<S>, threads: usize, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let s = sampler.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                let req = request();
                b.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(s.should_sample(black_box(&req)));
                }
                start.elapsed()
            })
        })
        .collect();
    let total: Duration = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total / threads as u32
}

/// A one-shot daemon answering `GetSamplingRules` with three rules.
fn daemon_with_rules() -> DaemonAddress {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rule = |name: &str, prio: u32, path: &str| {
            format!(
                r#"{{"SamplingRule":{{"RuleName":"{name}","ResourceARN":"*","Priority":{prio},
                "FixedRate":0.05,"ReservoirSize":1,"ServiceName":"*","ServiceType":"*",
                "Host":"*","HTTPMethod":"*","URLPath":"{path}","Version":1}}}}"#
            )
        };
        let body = format!(
            r#"{{"SamplingRuleRecords":[{},{},{}]}}"#,
            rule("health", 1, "/health"),
            rule("orders", 2, "/orders/*"),
            rule("Default", 10000, "*")
        );
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    DaemonAddress::parse(&format!("127.0.0.1:{port}")).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sampling");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    let local = Arc::new(LocalSampler::default());
    let rules = Arc::new(
        LocalSampler::default()
            .with_rule(LocalRule::new(0, 0.0).url_path("/health"))
            .with_rule(
                LocalRule::new(1, 0.1)
                    .host("*.example.com")
                    .url_path("/orders/*"),
            ),
    );
    let central = Arc::new(CentralizedSampler::new(
        &daemon_with_rules(),
        LocalSampler::default(),
    ));
    assert!(central.refresh_rules_now(), "bench daemon did not answer");

    g.bench_function("local_default/1_thread", |b| {
        b.iter_custom(|n| contended(&local, 1, n))
    });
    g.bench_function("local_default/2_threads", |b| {
        b.iter_custom(|n| contended(&local, 2, n))
    });
    g.bench_function("local_rules/2_threads", |b| {
        b.iter_custom(|n| contended(&rules, 2, n))
    });
    g.bench_function("centralized/1_thread", |b| {
        b.iter_custom(|n| contended(&central, 1, n))
    });
    g.bench_function("centralized/2_threads", |b| {
        b.iter_custom(|n| contended(&central, 2, n))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
