//! X-Ray without AWS: two traced services and a local collector in one process.
//!
//! `cargo run -p examples --bin demo` starts an embedded `xray-local` collector, a frontend
//! (axum) and a backend (actix-web) on free loopback ports, sends a few requests through
//! frontend → reqwest → backend, and prints the traces the collector assembled as trees.
//! Then it keeps running and prints each new trace, until ctrl-c.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use examples::{actix_app, axum_app, shutdown::shutdown_signal, AppState};
use xray_actix::XRay;
use xray_core::{Recorder, TraceHeader, TraceId};
use xray_local::{render_trace, Collector, RenderOptions, Trace};
use xray_tower::XRayLayer;

/// The frontend's segment name.
const FRONTEND: &str = "frontend";
/// The backend's segment name.
const BACKEND: &str = "backend";

#[tokio::main]
async fn main() -> ExitCode {
    // Only warnings: stdout is for the traces.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,examples::reply=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> std::io::Result<()> {
    // 1. The collector: a real UDP listener standing in for the X-Ray daemon.
    let collector = Collector::builder()
        .max_datagrams(10_000)
        .max_traces(1_000)
        .start()?;
    let new_traces = collector.subscribe();
    // A recorder that samples every request and sends to the collector.
    let recorder = collector.recorder("demo");
    let _ = Recorder::set_global(recorder.clone());

    // 2. The backend, on actix-web.
    let backend_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let backend = format!("http://{}", backend_listener.local_addr()?);
    let xray = XRay::new(BACKEND).with_recorder(recorder.clone());
    let backend_server = actix_app::server(backend_listener, AppState::new(), xray, 1)?;
    let backend_handle = backend_server.handle();
    tokio::spawn(backend_server);

    // 3. The frontend, on axum; its reqwest client is traced and calls the backend.
    let frontend_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let frontend = format!("http://{}", frontend_listener.local_addr()?);
    let layer = XRayLayer::new(FRONTEND).with_recorder(recorder.clone());
    let app = axum_app::router(AppState::new(), layer);
    let (stop_frontend, frontend_stopped) = tokio::sync::oneshot::channel::<()>();
    let frontend_server = tokio::spawn(axum_app::serve(frontend_listener, app, async {
        let _ = frontend_stopped.await;
    }));

    let out = Output::new();
    out.line(&format!(
        "X-Ray demo: collector on udp://{}\n  {FRONTEND} (axum)  {frontend}\n  {BACKEND} (actix) {backend}\n",
        collector.addr()
    ));

    // 4. A few requests, each printed as a trace once the collector has all of it.
    let requests = [
        (
            format!("/call?url={backend}/fanout/5"),
            "frontend calls the backend, which fans out",
        ),
        (
            format!("/call?url={backend}/error"),
            "frontend calls the backend, which fails",
        ),
        ("/annotated".to_string(), "annotation, metadata and user"),
        ("/work/3".to_string(), "three sequential subsegments"),
        (
            "/db/3".to_string(),
            "three SQL queries (DATABASE_URL, or SQLite in memory)",
        ),
    ];
    let client = reqwest::Client::new();
    let collector = Arc::new(collector);
    let printed = Arc::new(Mutex::new(HashSet::new()));
    for (path, what) in &requests {
        let url = format!("{frontend}{path}");
        out.line(&format!("── GET {path}\n   ({what})"));
        let trace_id = match client.get(&url).send().await {
            Ok(response) => response
                .headers()
                .get("x-amzn-trace-id")
                .and_then(|v| TraceHeader::from_bytes(v.as_bytes()).ok())
                .and_then(|h| h.root),
            Err(e) => {
                out.line(&format!("   request failed: {e}\n"));
                continue;
            }
        };
        let Some(trace_id) = trace_id else {
            out.line("   (no trace id in the response)\n");
            continue;
        };
        match wait_for_trace(&collector, trace_id).await {
            Some(trace) => {
                printed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(trace_id);
                out.trace(&trace);
            }
            None => out.line("   (the trace did not arrive within 5 s)\n"),
        }
    }

    out.line(&format!(
        "The services keep running. Try:\n  curl {frontend}/work/3\n  curl {frontend}/db/5\n  curl {frontend}/fanout/4\n  \
         curl '{frontend}/call?url={backend}/status/429'\n  curl {frontend}/panic\n  \
         curl {backend}/annotated\nEach new trace is printed below. Press ctrl-c to stop.\n"
    ));

    // 5. From now on, print every trace the collector completes.
    let printer_out = out.clone();
    std::thread::spawn(move || {
        for trace in new_traces {
            let Some(id) = trace.trace_id() else { continue };
            if printed.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
                printer_out.trace(&trace);
            }
        }
    });

    shutdown_signal().await;
    let _ = stop_frontend.send(());
    backend_handle.stop(true).await;
    let _ = frontend_server.await;
    recorder.shutdown(Duration::from_secs(2));
    Ok(())
}

async fn wait_for_trace(collector: &Arc<Collector>, id: TraceId) -> Option<Trace> {
    let collector = collector.clone();
    tokio::task::spawn_blocking(move || collector.wait_for_trace_id(id, Duration::from_secs(5)))
        .await
        .ok()
        .flatten()
}

/// Writes to stdout, one block at a time, so the printer thread and the main task do not mix
/// their lines.
#[derive(Clone)]
struct Output {
    lock: Arc<Mutex<()>>,
    render: RenderOptions,
}

impl Output {
    fn new() -> Self {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(80)
            .clamp(60, 160);
        Self {
            lock: Arc::new(Mutex::new(())),
            render: RenderOptions::default().color(color).width(width),
        }
    }

    fn line(&self, text: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    fn trace(&self, trace: &Trace) {
        self.line(&render_trace(trace, &self.render));
    }
}
