//! Helpers for tests that run the example binaries as child processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use xray_core::{TraceHeader, TraceId};
use xray_local::{Collector, Trace};

/// How long a child may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a trace may take to arrive.
pub const TRACE_TIMEOUT: Duration = Duration::from_secs(10);

/// Samples every request.
pub const SAMPLE_ALL: &str =
    r#"{"version": 2, "rules": [], "default": {"fixed_target": 0, "rate": 1.0}}"#;
/// Samples no request.
pub const SAMPLE_NONE: &str =
    r#"{"version": 2, "rules": [], "default": {"fixed_target": 0, "rate": 0.0}}"#;

/// A child process killed (and reaped) when dropped.
pub struct ChildGuard {
    pub child: Child,
    /// The child's stdout lines not consumed yet.
    pub lines: mpsc::Receiver<String>,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout piped and read line by line on a thread.
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdout(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next stdout line, waiting at most `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Sends SIGTERM and waits at most `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xray-examples-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running example service, its collector, and its base URL.
pub struct Service {
    pub child: ChildGuard,
    pub collector: Collector,
    pub base: String,
    pub http: reqwest::Client,
    _dir: TempDir,
}

/// Options for [`Service::start_with`].
pub struct Options<'a> {
    /// The service's `--sampling-rules` file (its local fallback).
    pub rules: &'a str,
    /// Rules the collector serves as the daemon's sampling API (local-file format), if any.
    pub served_rules: Option<&'a str>,
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            rules: SAMPLE_ALL,
            served_rules: None,
            args: &[],
            env: &[],
        }
    }
}

/// The command for `bin` with a clean X-Ray environment sending to `collector`.
pub fn command(bin: &str, collector: &Collector) -> Command {
    let mut cmd = Command::new(bin);
    for var in [
        "AWS_XRAY_TRACING_NAME",
        "AWS_XRAY_SDK_ENABLED",
        "AWS_XRAY_CONTEXT_MISSING",
        "AWS_ENDPOINT_URL",
        "DATABASE_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_XRAY_DAEMON_ADDRESS", collector.daemon_address())
        .env("RUST_LOG", "warn");
    cmd
}

impl Service {
    /// Starts `bin` on a free port, sampling everything, sending to a new collector.
    pub fn start(bin: &str) -> Self {
        Self::start_with(bin, Options::default())
    }

    pub fn start_with(bin: &str, opts: Options<'_>) -> Self {
        let collector = match opts.served_rules {
            Some(rules) => Collector::builder()
                .sampling_rules(
                    xray_core::sampling::LocalRules::from_json(rules).expect("served rules"),
                )
                .start(),
            None => Collector::start(),
        }
        .expect("collector");
        let dir = TempDir::new();
        let rules = dir.file("rules.json", opts.rules);
        let mut cmd = command(bin, &collector);
        cmd.args(["--listen", "127.0.0.1:0", "--sampling-rules"])
            .arg(&rules)
            .args(opts.args);
        for (k, v) in opts.env {
            cmd.env(k, v);
        }
        let child = ChildGuard::spawn(cmd);
        let line = child
            .next_line(START_TIMEOUT)
            .expect("the service prints its address");
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self {
            child,
            collector,
            base,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// GETs `path`; returns the status, the body and the trace id from the response header.
    pub async fn get(&self, path: &str) -> (u16, String, Option<TraceId>) {
        self.get_with(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn get_with(&self, req: reqwest::RequestBuilder) -> (u16, String, Option<TraceId>) {
        let res = req.send().await.expect("request");
        let trace_id = res
            .headers()
            .get("x-amzn-trace-id")
            .and_then(|v| TraceHeader::from_bytes(v.as_bytes()).ok())
            .and_then(|h| h.root);
        let status = res.status().as_u16();
        (status, res.text().await.expect("body"), trace_id)
    }

    /// GETs `path` and waits for its complete trace.
    pub async fn traced(&self, path: &str) -> (u16, String, Trace) {
        let (status, body, id) = self.get(path).await;
        let id = id.expect("the response carries X-Amzn-Trace-Id with a Root");
        let trace = self
            .collector
            .wait_for_trace_id(id, TRACE_TIMEOUT)
            .unwrap_or_else(|| panic!("no complete trace for GET {path}"));
        assert!(
            self.collector.violations().is_empty(),
            "documents the X-Ray service would reject: {:?}",
            self.collector.violations()
        );
        (status, body, trace)
    }
}
