//! A whole chain: the Python SDK client → our service → the Node or Flask callee, all
//! sending to one collector.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use xray_core::sampling::Sampler;
use xray_core::{Document, Recorder, TraceId};
use xray_local::Collector;

use crate::env;
use crate::middle::{Framework, MiddleService};
use crate::peer::PeerProcess;
use crate::WAIT;

/// How long a peer may take to start and print its port (Python and Node start slowly on a
/// busy machine).
const PEER_START: Duration = Duration::from_secs(30);

/// The segment name of the Python SDK client.
pub const PYTHON_CLIENT: &str = "python-client";

/// The last hop of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callee {
    /// express with `aws-xray-sdk-express` (Node SDK).
    Node,
    /// Flask with the Python SDK's `XRayMiddleware`.
    Flask,
}

impl Callee {
    /// The segment name the callee records under.
    pub fn service_name(self) -> &'static str {
        match self {
            Callee::Node => "node-callee",
            Callee::Flask => "flask-callee",
        }
    }
}

/// What the Python client does (see `peers/python_client.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A sampled segment; the patched `requests` call sends `Sampled=1`.
    Sampled,
    /// An unsampled segment; the call sends `Sampled=0`.
    Unsampled,
    /// No segment; the call carries a hand-written `Root=<new>;Sampled=?`.
    Ask,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Sampled => "sampled",
            Mode::Unsampled => "unsampled",
            Mode::Ask => "ask",
        }
    }
}

/// What the Python client printed.
#[derive(Clone, Debug)]
pub struct ClientOutput {
    /// The trace id of its segment (or of the header it wrote, in [`Mode::Ask`]).
    pub trace_id: TraceId,
    /// The status our service answered.
    pub status: u16,
    /// The `X-Amzn-Trace-Id` header of our service's response.
    pub response_trace_header: Option<String>,
    /// Our service's response body: `{"status": .., "body": <the callee's answer>}`.
    pub body: Value,
}

impl ClientOutput {
    /// The status the callee answered our service.
    pub fn callee_status(&self) -> Option<u64> {
        self.body.get("status").and_then(Value::as_u64)
    }

    /// The `X-Amzn-Trace-Id` header the callee received, as it echoed it.
    pub fn callee_received_header(&self) -> Option<&str> {
        self.body
            .get("body")?
            .get("received_trace_header")?
            .as_str()
    }
}

/// The chain's processes and the collector all of them send to.
#[derive(Debug)]
pub struct Chain {
    /// The single daemon stand-in of the three processes.
    pub collector: Collector,
    /// The framework of our service in the middle.
    pub framework: Framework,
    /// The last hop.
    pub callee: Callee,
    python: String,
    callee_process: PeerProcess,
    // Dropped before the callee (fields drop in order): our service stops calling it first.
    middle: Option<MiddleService>,
}

impl Chain {
    /// Starts the callee and our service, the latter recording with a recorder that samples
    /// everything. `None` (after a loud message) when the peers are not installed.
    pub fn start(framework: Framework, callee: Callee) -> Option<Chain> {
        Self::start_with(framework, callee, |c| c.recorder(framework.service_name()))
    }

    /// The same with our service deciding with `sampler` when the caller does not.
    pub fn start_with_sampler(
        framework: Framework,
        callee: Callee,
        sampler: impl Sampler,
    ) -> Option<Chain> {
        Self::start_with(framework, callee, move |c| {
            Recorder::builder()
                .service_name(framework.service_name())
                .daemon_address(c.daemon_address())
                .sampler(sampler)
                .ignore_env()
                .build()
                .expect("a collector's address is valid")
        })
    }

    fn start_with(
        framework: Framework,
        callee: Callee,
        recorder: impl FnOnce(&Collector) -> Recorder,
    ) -> Option<Chain> {
        let what = format!(
            "interop chain Python SDK -> {framework:?} -> {}",
            callee.service_name()
        );
        let python = env::python(&what)?;
        let collector = Collector::start().expect("the collector binds");
        let daemon = collector.daemon_address();
        let callee_process = match callee {
            Callee::Node => {
                let modules = env::node_modules(&what)?;
                let mut cmd = Command::new(env::node());
                cmd.arg(env::peer_script("node_callee.js"))
                    .arg(&daemon)
                    .env("NODE_PATH", modules);
                PeerProcess::start("node-callee", peer_env(cmd), PEER_START)
            }
            Callee::Flask => {
                let mut cmd = Command::new(&python);
                cmd.arg(env::peer_script("flask_callee.py")).arg(&daemon);
                PeerProcess::start("flask-callee", peer_env(cmd), PEER_START)
            }
        };
        let recorder = recorder(&collector);
        let middle = MiddleService::start(framework, recorder, callee_process.url("/echo"));
        Some(Chain {
            collector,
            framework,
            callee,
            python,
            callee_process,
            middle: Some(middle),
        })
    }

    /// Runs the Python client once against our service's `/hop`; `lineage` is sent as the
    /// header's `Lineage` pair.
    pub fn call(&self, mode: Mode, lineage: Option<&str>) -> ClientOutput {
        let url = self.middle.as_ref().expect("running").url("/hop");
        let mut cmd = Command::new(&self.python);
        cmd.arg(env::peer_script("python_client.py"))
            .arg(self.collector.daemon_address())
            .arg(&url)
            .arg(mode.arg());
        if let Some(l) = lineage {
            cmd.arg(l);
        }
        let out = peer_env(cmd)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the Python client: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let context = || {
            format!(
                "python client ({mode:?}) exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
                out.status.code(),
                self.callee_process.log()
            )
        };
        assert!(out.status.success(), "{}", context());
        let line = stdout.lines().last().unwrap_or_default();
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("unreadable client output ({e}): {}", context()));
        ClientOutput {
            trace_id: v["trace_id"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("no trace id: {}", context())),
            status: v["status"].as_u64().unwrap_or(0) as u16,
            response_trace_header: v["response_trace_header"].as_str().map(str::to_string),
            body: v["body"].clone(),
        }
    }

    /// Waits until a segment of each of `names` arrived for `trace`; returns them in that
    /// order. Panics, showing what did arrive and the peers' output, when one is missing.
    pub fn wait_for_segments(&self, trace: TraceId, names: &[&str]) -> Vec<Document> {
        let docs = self.collector.wait_until(WAIT, |docs| {
            names.iter().all(|n| segment(docs, trace, n).is_some())
        });
        names
            .iter()
            .map(|n| {
                segment(&docs, trace, n).cloned().unwrap_or_else(|| {
                    panic!(
                        "no segment {n:?} for trace {trace}; received:\n{docs:#?}\n{}",
                        self.callee_process.log()
                    )
                })
            })
            .collect()
    }

    /// Every document received for `trace`.
    pub fn documents_of(&self, trace: TraceId) -> Vec<Document> {
        self.collector
            .documents()
            .into_iter()
            .filter(|d| d.trace_id == Some(trace))
            .collect()
    }

    /// Proves that whatever was sent for `unsampled` has arrived, then returns it: runs a
    /// sampled call through the same processes and waits for all its segments. Each process
    /// sends its documents in order over loopback, so anything sent for the earlier call
    /// arrived before them.
    pub fn documents_after_a_sampled_call(&self, unsampled: TraceId) -> Vec<Document> {
        let out = self.call(Mode::Sampled, None);
        assert_eq!(out.status, 200, "the sampled call after went through");
        self.wait_for_segments(
            out.trace_id,
            &[
                PYTHON_CLIENT,
                self.framework.service_name(),
                self.callee.service_name(),
            ],
        );
        // The collector's worker stores datagrams in arrival order; a short pause covers a
        // peer that sends from another socket.
        std::thread::sleep(Duration::from_millis(200));
        self.documents_of(unsampled)
    }

    /// The callee's output, for failure messages.
    pub fn callee_log(&self) -> String {
        self.callee_process.log()
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.middle.take();
    }
}

/// The segment (not an independent subsegment) named `name` of `trace`.
pub fn segment<'a>(docs: &'a [Document], trace: TraceId, name: &str) -> Option<&'a Document> {
    docs.iter()
        .find(|d| d.kind.is_none() && d.trace_id == Some(trace) && d.name == name)
}

/// The only `remote` subsegment of `doc` (an outbound HTTP call). Panics when there is not
/// exactly one.
pub fn remote_call(doc: &Document) -> &Document {
    let calls: Vec<&Document> = doc
        .subsegments
        .iter()
        .filter(|s| s.namespace.as_deref() == Some("remote"))
        .collect();
    assert_eq!(
        calls.len(),
        1,
        "one remote subsegment expected in {}: {doc:#?}",
        doc.name
    );
    calls[0]
}

/// Clears the variables that would redirect or rename what the peers record.
fn peer_env(mut cmd: Command) -> Command {
    for var in [
        "AWS_XRAY_DAEMON_ADDRESS",
        "AWS_XRAY_TRACING_NAME",
        "AWS_XRAY_SDK_ENABLED",
        "AWS_XRAY_NOOP_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_XRAY_CONTEXT_MISSING", "IGNORE_ERROR");
    cmd
}
