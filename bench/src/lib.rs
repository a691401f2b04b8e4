//! Shared setup for the load-benchmark servers (`bench-axum`, `bench-actix`).
//!
//! Each server answers `GET /` with `ok` on one thread, in one of these modes:
//! - `bare`: no X-Ray at all;
//! - `header`: no X-Ray; a plain middleware adds a fixed `X-Amzn-Trace-Id` response header.
//!   It is the floor for any layer that answers the trace header, as X-Ray asks servers to;
//! - `sampled`: the X-Ray layer, every request sampled, segments sent over UDP to the daemon
//!   address (`AWS_XRAY_DAEMON_ADDRESS`; `scripts/bench-load` runs `bench-sink` there);
//! - `absent`: as `sampled`, with nothing listening at the daemon address;
//! - `otlp`: as `sampled`, segments sent as spans over OTLP/HTTP to
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (`scripts/bench-load` runs `bench-otlp-sink` there);
//! - `default`: the X-Ray layer with the default sampling rule (1/s, then 5 %);
//! - `disabled`: the X-Ray layer with the SDK disabled;
//! - `tracelayer` (axum only): no X-Ray; tower-http's `TraceLayer::new_for_http()` with no
//!   `tracing` subscriber. Like the X-Ray layer it wraps the response future and body, so
//!   it shows what any layer that sees the end of the body costs in axum.
//!
//! `scripts/bench-load` runs them under `wrk` and prints the comparison.

use xray_core::sampling::{AlwaysSample, LocalSampler};
use xray_core::Recorder;

/// What the server does per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No X-Ray.
    Bare,
    /// No X-Ray; a fixed `X-Amzn-Trace-Id` response header added by a plain middleware.
    Header,
    /// X-Ray, every request sampled.
    Sampled,
    /// X-Ray, every request sampled, no daemon listening.
    Absent,
    /// X-Ray, every request sampled, sent over OTLP/HTTP.
    Otlp,
    /// X-Ray, default sampling rule.
    Default,
    /// X-Ray layer present, SDK disabled.
    Disabled,
    /// No X-Ray; tower-http's `TraceLayer` (axum only).
    TraceLayer,
}

/// Reads `MODE ADDR` from the command line.
pub fn args() -> (Mode, String) {
    let mut a = std::env::args().skip(1);
    let mode = match a.next().as_deref() {
        Some("bare") => Mode::Bare,
        Some("header") => Mode::Header,
        Some("sampled") => Mode::Sampled,
        Some("absent") => Mode::Absent,
        Some("otlp") => Mode::Otlp,
        Some("default") => Mode::Default,
        Some("disabled") => Mode::Disabled,
        Some("tracelayer") => Mode::TraceLayer,
        other => {
            eprintln!(
                "usage: bench-<server> bare|header|sampled|absent|otlp|default|disabled|tracelayer ADDR (got {other:?})"
            );
            std::process::exit(2)
        }
    };
    let addr = a.next().unwrap_or_else(|| "127.0.0.1:8089".into());
    (mode, addr)
}

/// The value the `header` mode answers: what the layer would send, fixed.
pub const FIXED_TRACE_HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

/// The recorder for a mode (`None` for bare and header).
pub fn recorder(mode: Mode) -> Option<Recorder> {
    let b = Recorder::builder().service_name("bench");
    let r = match mode {
        Mode::Bare | Mode::Header | Mode::TraceLayer => return None,
        Mode::Sampled | Mode::Absent => b.sampler(AlwaysSample).build(),
        Mode::Otlp => b
            .sampler(AlwaysSample)
            .emitter(
                xray_core::emitter::otlp::OtlpEmitter::builder()
                    .from_env()
                    .build(),
            )
            .build(),
        Mode::Default => b.sampler(LocalSampler::default()).build(),
        Mode::Disabled => b.enabled(false).build(),
    };
    Some(r.expect("valid benchmark configuration"))
}
