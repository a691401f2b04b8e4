//! The Python OTLP receiver (`scripts/peers/otlp_receiver.py`, decoding with the PyPI
//! `opentelemetry-proto` package), started by the tests on a free port and stopped by pid.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Python interpreter of the test venv, or `None` (test skipped) unless
/// `XRAY_REQUIRE_PEERS=1`, which makes a missing one fail.
pub fn python(what: &str) -> Option<String> {
    match std::env::var("XRAY_TEST_PYTHON") {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("XRAY_REQUIRE_PEERS").as_deref() != Ok("1"),
                "XRAY_REQUIRE_PEERS=1 but XRAY_TEST_PYTHON is not set: run scripts/setup-peers \
                 and export what it prints (scripts/test does both)"
            );
            eprintln!(
                "\n*** SKIPPED: {what}\n*** (XRAY_TEST_PYTHON is not set; run scripts/test, or \
                 scripts/setup-peers and export what it prints)\n"
            );
            None
        }
    }
}

/// A running receiver; killed when dropped.
pub struct Receiver {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

impl Receiver {
    /// Starts the receiver with extra arguments (`--responses 503,503`, `--delay-ms 500`, ...).
    pub fn start(python: &str, args: &[&str]) -> Receiver {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/peers/otlp_receiver.py"
        );
        let out = std::env::temp_dir().join(format!(
            "xray-otlp-{}-{}.jsonl",
            std::process::id(),
            fastrand_name()
        ));
        let _ = std::fs::remove_file(&out);
        let mut child = Command::new(python)
            .arg(script)
            .arg("--out")
            .arg(&out)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Python OTLP receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver did not start: {line:?}"));
        Receiver { child, port, out }
    }

    /// `http://127.0.0.1:PORT/v1/traces`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    /// Every line written so far.
    pub fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The requests received.
    pub fn requests(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["type"] == "request")
            .collect()
    }

    /// The spans of requests answered 200.
    pub fn accepted_spans(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["type"] == "span" && l["status"] == 200)
            .collect()
    }

    /// Waits until `n` spans were accepted.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let end = Instant::now() + timeout;
        loop {
            let spans = self.accepted_spans();
            if spans.len() >= n || Instant::now() > end {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}

fn fastrand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{t}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// An attribute as the receiver wrote it, integers and doubles unwrapped.
pub fn plain(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && (m.contains_key("int") || m.contains_key("double")) => {
            m.values().next().cloned().unwrap_or_default()
        }
        Value::Array(items) => Value::Array(items.iter().map(plain).collect()),
        other => other.clone(),
    }
}

/// Attribute `key` of a span (or event, or resource) line.
pub fn attr(line: &Value, key: &str) -> Value {
    plain(&line["attributes"][key])
}
