//! Nothing user-visible runs under a segment's lock: a `tracing` subscriber that records on
//! the segment from inside a warning the emitter raised must not deadlock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use xray_core::daemon::DaemonAddress;
use xray_core::emitter::UdpEmitter;
use xray_core::sampling::AlwaysSample;
use xray_core::{Entity, Recorder};

/// On every warning, touches the segment (which takes its lock).
struct TouchSegment {
    segment: Entity,
    warned: Arc<AtomicBool>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TouchSegment {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN
            && !self.warned.swap(true, Ordering::SeqCst)
        {
            let _ = self.segment.is_ended();
            self.segment.put_metadata("late", 1);
        }
    }
}

#[test]
fn an_emitter_warning_is_logged_after_the_segment_lock_is_released() {
    let (done_tx, done_rx) = mpsc::channel();
    let warned = Arc::new(AtomicBool::new(false));
    let warned2 = warned.clone();
    std::thread::spawn(move || {
        // The smallest datagram budget, and a segment that trimming cannot bring under it
        // (precursor ids are never trimmed): ending it makes the emitter warn.
        let emitter = UdpEmitter::builder()
            .address(&DaemonAddress::parse("127.0.0.1:9").unwrap())
            .datagram_budget(64)
            .build();
        let recorder = Recorder::builder()
            .sampler(AlwaysSample)
            .emitter(emitter)
            .ignore_env()
            .build()
            .unwrap();
        let segment = recorder.begin_segment("svc", None);
        for _ in 0..200 {
            segment.add_precursor_id(xray_core::EntityId::new());
        }
        let subscriber = tracing_subscriber::registry().with(TouchSegment {
            segment: segment.clone(),
            warned: warned2,
        });
        tracing::subscriber::with_default(subscriber, || segment.end());
        let _ = done_tx.send(());
    });
    assert!(
        done_rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "ending the segment deadlocked: a warning was raised under the segment's lock"
    );
    assert!(warned.load(Ordering::SeqCst), "the emitter did warn");
}
