//! Cost of a `tracing` span with `SubsegmentLayer` installed: inside a sampled segment (a
//! subsegment is recorded), inside an unsampled one, and outside any segment (nothing is).
//! Each measured span is opened, entered, exited and closed, with one integer field.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tracing::info_span;
use tracing_subscriber::layer::SubscriberExt;
use xray_core::emitter::Emitter;
use xray_core::sampling::{AlwaysSample, NeverSample};
use xray_core::{context, Document, Recorder};
use xray_tracing::SubsegmentLayer;

#[derive(Debug)]
struct Discard;
impl Emitter for Discard {
    fn emit(&self, document: Document) {
        black_box(document);
    }
}

fn recorder(sampled: bool) -> Recorder {
    let b = Recorder::builder().emitter(Discard).ignore_env();
    let b = if sampled {
        b.sampler(AlwaysSample)
    } else {
        b.sampler(NeverSample)
    };
    b.build().unwrap()
}

fn span(i: u64) {
    let _s = info_span!("work", item = i).entered();
    black_box(i);
}

/// Times `iters` spans, in segments of 50 spans each (segment start and end not timed).
fn in_segments(recorder: &Recorder, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(50);
        let segment = recorder.begin_segment("bench", None);
        let _g = context::enter(segment.clone());
        let start = Instant::now();
        for i in 0..n {
            span(i);
        }
        total += start.elapsed();
        drop(_g);
        segment.end();
        left -= n;
    }
    total
}

fn benches(c: &mut Criterion) {
    let subscriber = tracing_subscriber::registry().with(SubsegmentLayer::new());
    let _default = tracing::subscriber::set_default(subscriber);

    c.bench_function("span_outside_any_segment", |b| {
        b.iter(|| span(black_box(1)))
    });
    let sampled = recorder(true);
    c.bench_function("span_in_sampled_segment", |b| {
        b.iter_custom(|iters| in_segments(&sampled, iters))
    });
    let unsampled = recorder(false);
    c.bench_function("span_in_unsampled_segment", |b| {
        b.iter_custom(|iters| in_segments(&unsampled, iters))
    });
    drop(_default);

    // The same span with only the registry, for comparison.
    let _plain = tracing::subscriber::set_default(tracing_subscriber::registry());
    c.bench_function("span_registry_only", |b| b.iter(|| span(black_box(1))));
}

criterion_group! {
    name = spans;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = benches
}
criterion_main!(spans);
