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
//! - `xray-api`: as `sampled`, documents sent to the X-Ray API (`PutTraceSegments`) by
//!   xray-core's X-Ray API emitter, at `AWS_ENDPOINT_URL_XRAY` (`scripts/bench-load` points
//!   it at `bench-otlp-sink`, which accepts the calls);
//! - `otel`: no X-Ray; the OpenTelemetry SDK, every request sampled, a server span per
//!   request made by a small middleware (see [`otel`]), exported by OpenTelemetry's own
//!   OTLP/HTTP protobuf exporter to `OTEL_EXPORTER_OTLP_ENDPOINT`;
//! - `default`: the X-Ray layer with the default sampling rule (1/s, then 5 %);
//! - `centralized`: the X-Ray layer with the recorder's own default sampler, centralized
//!   sampling through the daemon, as `XRayLayer::new` gets it; the benchmarks' daemon stand-in
//!   serves no sampling rules, so the sampler's local default rule (1/s, then 5 %) decides;
//! - `unsampled`: the X-Ray layer, no request sampled: the path the default rule takes for
//!   95 % of requests, measured alone;
//! - `disabled`: the X-Ray layer with the SDK disabled;
//! - `tracelayer` (axum only): no X-Ray; tower-http's `TraceLayer::new_for_http()` with no
//!   `tracing` subscriber. Like the X-Ray layer it wraps the response future and body, so
//!   it shows what any layer that sees the end of the body costs in axum.
//! - `wrap` (axum only): no X-Ray; the `header` mode's fixed response header plus a response
//!   body wrapped in a pass-through (`http-body-util`'s `map_err` with the identity, which
//!   keeps the body's size hint, so the response still gets its `Content-Length`). The
//!   floor for any layer that answers the trace header and follows the body to its end, as
//!   the X-Ray layer must: axum boxes every response body a layer wraps.
//! - `minimal` (axum only): no X-Ray layer; a middleware written for the benchmark
//!   ([`minimal`]) that does by hand only what X-Ray asks of every unsampled request: new
//!   ids (or the caller's trace id), the `Root=` response header, the ids current while the
//!   handler and the body are polled. The floor under `unsampled`.
//!
//! `scripts/bench-load` runs them under `wrk` and prints the comparison. `bench-inproc` serves
//! the axum modes without sockets, for counts that repeat to the instruction
//! (`scripts/bench-instructions inproc`).

use xray_core::sampling::{AlwaysSample, LocalSampler, NeverSample};
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
    /// X-Ray, every request sampled, sent to the X-Ray API.
    XRayApi,
    /// No X-Ray; the OpenTelemetry SDK and its OTLP exporter, every request sampled.
    Otel,
    /// X-Ray, default sampling rule.
    Default,
    /// X-Ray, the recorder's default (centralized) sampler.
    Centralized,
    /// X-Ray, no request sampled.
    Unsampled,
    /// X-Ray layer present, SDK disabled.
    Disabled,
    /// No X-Ray; tower-http's `TraceLayer` (axum only).
    TraceLayer,
    /// No X-Ray; the fixed response header and a pass-through body wrapper (axum only).
    Wrap,
    /// No X-Ray layer; the least an unsampled request needs, by hand (axum only).
    Minimal,
}

/// Reads `MODE ARG` from the command line: the mode, and the second argument (`default` when
/// absent). Exits with a usage message naming `what` (the second argument) on a bad mode.
pub fn args_with(what: &str, default: &str) -> (Mode, String) {
    let mut a = std::env::args().skip(1);
    let mode = match a.next().as_deref() {
        Some("bare") => Mode::Bare,
        Some("header") => Mode::Header,
        Some("sampled") => Mode::Sampled,
        Some("absent") => Mode::Absent,
        Some("otlp") => Mode::Otlp,
        Some("xray-api") => Mode::XRayApi,
        Some("otel") => Mode::Otel,
        Some("default") => Mode::Default,
        Some("centralized") => Mode::Centralized,
        Some("unsampled") => Mode::Unsampled,
        Some("disabled") => Mode::Disabled,
        Some("tracelayer") => Mode::TraceLayer,
        Some("wrap") => Mode::Wrap,
        Some("minimal") => Mode::Minimal,
        other => {
            eprintln!(
                "usage: bench-<server> bare|header|sampled|absent|otlp|xray-api|otel|default|centralized|unsampled|disabled|tracelayer|wrap|minimal {what} (got {other:?})"
            );
            std::process::exit(2)
        }
    };
    let arg = a.next().unwrap_or_else(|| default.into());
    (mode, arg)
}

/// Reads `MODE ADDR` from the command line.
pub fn args() -> (Mode, String) {
    args_with("ADDR", "127.0.0.1:8089")
}

/// The value the `header` mode answers: what the layer would send, fixed.
pub const FIXED_TRACE_HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

/// The recorder for a mode (`None` for bare and header).
pub fn recorder(mode: Mode) -> Option<Recorder> {
    let b = Recorder::builder().service_name("bench");
    let r = match mode {
        Mode::Bare | Mode::Header | Mode::TraceLayer | Mode::Otel | Mode::Wrap | Mode::Minimal => {
            return None
        }
        Mode::Sampled | Mode::Absent => b.sampler(AlwaysSample).build(),
        Mode::Otlp => b
            .sampler(AlwaysSample)
            .emitter(
                xray_core::emitter::otlp::OtlpEmitter::builder()
                    .from_env()
                    .build(),
            )
            .build(),
        Mode::XRayApi => b
            .sampler(AlwaysSample)
            .emitter(
                xray_core::emitter::XRayApiEmitter::from_env()
                    .expect("the X-Ray API emitter's thread starts"),
            )
            .build(),
        Mode::Default => b.sampler(LocalSampler::default()).build(),
        Mode::Centralized => b.build(),
        Mode::Unsampled => b.sampler(NeverSample).build(),
        Mode::Disabled => b.enabled(false).build(),
    };
    Some(r.expect("valid benchmark configuration"))
}

pub mod axum_app;
pub mod minimal;

pub mod otel {
    //! The `otel` mode: a hello-world traced the way an OpenTelemetry user traces it, with
    //! the OpenTelemetry SDK (100 % sampled, AWS's X-Ray id generator so that the ids are
    //! X-Ray's, the X-Ray propagator to continue an incoming `X-Amzn-Trace-Id`), the batch
    //! span processor and OpenTelemetry's own OTLP/HTTP protobuf exporter with its default
    //! blocking HTTP client.
    //!
    //! The servers' middleware calls [`start`] before the handler, runs the handler inside
    //! the returned context (so spans the handler would make are its children) and calls
    //! [`end`] with the response status: one server span per request, named `GET /`, with
    //! the attributes of OpenTelemetry's HTTP server conventions.

    use std::sync::OnceLock;

    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
    use opentelemetry_sdk::Resource;

    struct Otel {
        // Kept so that the batch processor and its thread live as long as the server.
        _provider: SdkTracerProvider,
        tracer: SdkTracer,
        propagator: XrayPropagator,
    }

    static OTEL: OnceLock<Otel> = OnceLock::new();

    /// Sets up the SDK and the exporter (endpoint from `OTEL_EXPORTER_OTLP_ENDPOINT`, as
    /// the exporter reads it). Call once, before the server starts its runtime.
    pub fn init() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .expect("OTLP exporter");
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::AlwaysOn)
            .with_id_generator(XrayIdGenerator::default())
            .with_resource(Resource::builder().with_service_name("bench").build())
            .build();
        let tracer = provider.tracer("bench");
        let _ = OTEL.set(Otel {
            _provider: provider,
            tracer,
            propagator: XrayPropagator::default(),
        });
    }

    /// What the middleware knows of a request.
    pub struct Request<'a> {
        /// The method.
        pub method: &'a str,
        /// The path, without the query.
        pub path: &'a str,
        /// The matched route.
        pub route: &'a str,
        /// `1.1`, `2`...
        pub protocol_version: &'a str,
        /// The `Host` header, if any (split into `server.address` and `server.port` here).
        pub host: Option<&'a str>,
        /// The `User-Agent` header, if any.
        pub user_agent: Option<&'a str>,
    }

    /// Starts the request's server span, a child of the incoming X-Ray trace header if the
    /// request has one, and returns the context holding it.
    pub fn start(headers: &dyn Extractor, req: &Request<'_>) -> Context {
        let otel = OTEL.get().expect("otel::init was called");
        let parent = otel.propagator.extract(headers);
        let mut attributes = Vec::with_capacity(8);
        attributes.push(KeyValue::new("http.request.method", req.method.to_owned()));
        attributes.push(KeyValue::new("url.path", req.path.to_owned()));
        attributes.push(KeyValue::new("url.scheme", "http"));
        attributes.push(KeyValue::new("http.route", req.route.to_owned()));
        attributes.push(KeyValue::new(
            "network.protocol.version",
            req.protocol_version.to_owned(),
        ));
        if let Some((host, port)) = req.host.map(host_port) {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
            if let Some(port) = port {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        if let Some(ua) = req.user_agent {
            attributes.push(KeyValue::new("user_agent.original", ua.to_owned()));
        }
        let span = otel
            .tracer
            .span_builder(format!("{} {}", req.method, req.route))
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&otel.tracer, &parent);
        parent.with_span(span)
    }

    /// Ends the request's server span with the response status (an error status for 5xx,
    /// as the conventions ask of server spans).
    pub fn end(cx: &Context, status: u16) {
        let span = cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 {
            span.set_status(Status::error(""));
        }
        span.end();
    }

    /// The `Host` header split into host and port (`[::1]:80` gives `[::1]` and 80).
    pub fn host_port(host: &str) -> (&str, Option<u16>) {
        match host.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => match p.parse() {
                Ok(port) => (h, Some(port)),
                Err(_) => (host, None),
            },
            _ => (host, None),
        }
    }
}
