//! `xray-local`: a local X-Ray daemon that prints the traces it receives.

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use xray_core::sampling::LocalRules;
use xray_local::render::{render_trace, render_violation, RenderOptions};
use xray_local::Collector;

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

    /// Also send every datagram, unchanged, to this address (e.g. a real daemon).
    #[arg(long, value_name = "ADDR")]
    forward: Option<String>,

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

fn run(args: Args) -> Result<(), String> {
    let mut builder = Collector::builder()
        .listen(args.listen)
        .quiet_period(Duration::from_millis(args.quiet_period))
        .max_datagrams(10_000)
        .max_traces(10_000);
    if let Some(path) = &args.sampling_rules {
        let rules = LocalRules::from_file(path).map_err(|e| e.to_string())?;
        builder = builder.sampling_rules(rules);
    }
    if let Some(f) = &args.forward {
        builder = builder.forward(resolve(f)?);
    }
    let collector = builder
        .start()
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;

    let no_color = args.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let out_opts = RenderOptions::default().color(!no_color && std::io::stdout().is_terminal());
    let err_opts = RenderOptions::default().color(!no_color && std::io::stderr().is_terminal());

    let json = args.json;
    collector.on_trace_complete(move |trace| {
        let text = if json {
            format!("{}\n", trace.to_json())
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
    if let Some(f) = &args.forward {
        eprintln!("xray-local: forwarding every datagram to {f}");
    }
    loop {
        std::thread::park();
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xray-local: {e}");
            ExitCode::FAILURE
        }
    }
}
