//! `xray-local`: a local X-Ray daemon that prints the traces it receives.

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use xray_core::sampling::LocalRules;
use xray_local::escape::{escape_control, escape_json_controls};
use xray_local::limits::{
    CLI_MAX_DATAGRAMS, CLI_MAX_DATAGRAM_BYTES, CLI_MAX_TRACES, CLI_MAX_TRACE_BYTES,
    SAMPLING_API_MAX_CONNECTIONS, SAMPLING_API_REQUEST_DEADLINE,
};
use xray_local::render::{render_trace, render_violation, RenderOptions};
use xray_local::sampling_api::SamplingApi;
use xray_local::{Collector, CollectorStats};

/// Receives X-Ray segment documents over UDP, like the X-Ray daemon, and prints every trace
/// as a tree with a timeline once it is complete. Every document is checked against the
/// rules of the X-Ray service; violations are printed on stderr.
#[derive(Debug, Parser)]
#[command(name = "xray-local", version)]
struct Args {
    /// UDP address to listen on (the AWS_XRAY_DAEMON_ADDRESS of the traced programs).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2000")]
    listen: SocketAddr,

    /// Print each complete trace as one JSON line instead of a tree.
    #[arg(long)]
    json: bool,

    /// Never write colours (they are written only to a terminal anyway; NO_COLOR works too).
    #[arg(long)]
    no_color: bool,

    /// Serve the daemon's sampling API (POST /GetSamplingRules, /SamplingTargets) on the TCP
    /// port of --listen, from this local rules file (version 1 or 2).
    #[arg(long, value_name = "FILE")]
    sampling_rules: Option<PathBuf>,

    /// Also send every datagram, unchanged, to this address (e.g. a real daemon). Only with a
    /// loopback --listen address, unless --allow-remote-forward is given.
    #[arg(long, value_name = "ADDR")]
    forward: Option<String>,

    /// Allow --forward while listening on an address other machines can reach: anyone who can
    /// send datagrams to xray-local then sends them on to the --forward address.
    #[arg(long)]
    allow_remote_forward: bool,

    /// Also receive spans over OTLP/HTTP (POST /v1/traces, protobuf) on this TCP address,
    /// e.g. 127.0.0.1:4318 (the OTEL_EXPORTER_OTLP_ENDPOINT of programs using the OTLP
    /// exporter is then http://127.0.0.1:4318). Off unless given.
    #[arg(long, value_name = "ADDR")]
    otlp_listen: Option<SocketAddr>,

    /// A trace is complete once nothing is in progress and nothing arrived for this long.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    quiet_period: u64,
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve --forward {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--forward {addr:?} resolves to no address"))
}

/// What the limits dropped or forgot since `before`, as one line; `None` when nothing.
fn limits_report(
    before: &(CollectorStats, u64, u64),
    now: &(CollectorStats, u64, u64),
) -> Option<String> {
    let (b, n) = (&before.0, &now.0);
    let mut parts = Vec::new();
    let mut part = |old: u64, new: u64, what: &str| {
        if new > old {
            parts.push(format!("{} {what}", new - old));
        }
    };
    part(
        b.dropped,
        n.dropped,
        "datagrams dropped (worker queue full)",
    );
    part(
        b.traces_forgotten,
        n.traces_forgotten,
        &format!(
            "traces forgotten (trace store full: {} traces, {} MiB)",
            CLI_MAX_TRACES,
            CLI_MAX_TRACE_BYTES >> 20
        ),
    );
    part(
        b.documents_refused,
        n.documents_refused,
        "documents not assembled (their trace is at its limit)",
    );
    part(
        b.violations_forgotten,
        n.violations_forgotten,
        "violations not kept",
    );
    part(
        before.1,
        now.1,
        &format!("sampling API connections refused (over {SAMPLING_API_MAX_CONNECTIONS} at once)"),
    );
    part(
        before.2,
        now.2,
        &format!(
            "sampling API connections cut (no answer within {} s)",
            SAMPLING_API_REQUEST_DEADLINE.as_secs()
        ),
    );
    (!parts.is_empty()).then(|| format!("limits reached: {}", parts.join(", ")))
}

fn counts(collector: &Collector) -> (CollectorStats, u64, u64) {
    let api = collector.sampling_api();
    (
        collector.stats(),
        api.map_or(0, SamplingApi::connections_refused),
        api.map_or(0, SamplingApi::connections_cut),
    )
}

fn run(args: Args) -> Result<(), String> {
    let mut builder = Collector::builder()
        .listen(args.listen)
        .quiet_period(Duration::from_millis(args.quiet_period))
        .max_datagrams(CLI_MAX_DATAGRAMS)
        .max_datagram_bytes(CLI_MAX_DATAGRAM_BYTES)
        .max_traces(CLI_MAX_TRACES)
        .max_trace_bytes(CLI_MAX_TRACE_BYTES);
    if let Some(path) = &args.sampling_rules {
        let rules = LocalRules::from_file(path).map_err(|e| e.to_string())?;
        builder = builder.sampling_rules(rules);
    }
    if let Some(f) = &args.forward {
        builder = builder.forward(resolve(f)?);
    }
    if let Some(at) = args.otlp_listen {
        builder = builder.otlp_listen(at);
    }
    let collector = builder.start().map_err(|e| match args.otlp_listen {
        Some(otlp) => format!("cannot listen on {} or {otlp}: {e}", args.listen),
        None => format!("cannot listen on {}: {e}", args.listen),
    })?;

    let no_color = args.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let out_opts = RenderOptions::default().color(!no_color && std::io::stdout().is_terminal());
    let err_opts = RenderOptions::default().color(!no_color && std::io::stderr().is_terminal());

    let json = args.json;
    collector.on_trace_complete(move |trace| {
        let text = if json {
            // serde_json escapes C0 controls; C1 controls and bidi marks are escaped here.
            format!("{}\n", escape_json_controls(&trace.to_json().to_string()))
        } else {
            format!("{}\n", render_trace(trace, &out_opts))
        };
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    });
    collector.on_violation(move |v| {
        eprintln!("{}", render_violation(v, &err_opts));
    });

    eprintln!(
        "xray-local: listening for segments on udp {}",
        collector.addr()
    );
    if let Some(api) = collector.sampling_api() {
        eprintln!("xray-local: sampling API on tcp {}", api.addr());
    }
    if let Some(otlp) = collector.otlp() {
        eprintln!(
            "xray-local: OTLP/HTTP spans on http://{}/v1/traces",
            otlp.addr()
        );
    }
    if let Some(f) = &args.forward {
        eprintln!("xray-local: forwarding every datagram to {f}");
    }
    // Once a second, say what the limits dropped or forgot, if anything.
    let mut before = counts(&collector);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = counts(&collector);
        if let Some(line) = limits_report(&before, &now) {
            eprintln!("xray-local: {line}");
        }
        before = now;
    }
}

/// Refuses `--forward` from a listener other machines can reach, unless allowed: it would
/// relay anyone's datagrams.
fn check_forward(args: &Args) {
    if let Some(forward) = &args.forward {
        if !args.listen.ip().is_loopback() && !args.allow_remote_forward {
            Args::command()
                .error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "--forward {forward:?} with --listen {}, which is not a loopback address, \
                         would let anyone who can reach it send datagrams through xray-local to \
                         {forward:?}; listen on 127.0.0.1 or ::1, or pass --allow-remote-forward \
                         to do it anyway",
                        args.listen
                    ),
                )
                .exit();
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    check_forward(&args);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xray-local: {}", escape_control(&e));
            ExitCode::FAILURE
        }
    }
}
