//! Our client calling a Flask service traced by the official Python X-Ray SDK: the Python
//! service's segment, received over UDP by the same collector, must continue our trace under
//! our subsegment.
//!
//! Needs `XRAY_TEST_PYTHON`, a Python with `aws-xray-sdk` and Flask (`scripts/setup-peers`
//! prints it). Without it the tests say they are skipped, or fail when
//! `XRAY_REQUIRE_PEERS=1`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use xray_core::{context, Document, Sampled, TraceHeader, TraceId};
use xray_local::Collector;
use xray_reqwest::XRayMiddleware;

const PY_SERVICE: &str = "python-peer";

/// The Python interpreter to use, or `None` when the test is skipped.
fn python() -> Option<String> {
    match std::env::var("XRAY_TEST_PYTHON") {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ => {
            if std::env::var("XRAY_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!(
                    "XRAY_REQUIRE_PEERS=1 but XRAY_TEST_PYTHON is not set: run \
                     scripts/setup-peers and export what it prints"
                );
            }
            eprintln!(
                "\n*** skipped: set XRAY_TEST_PYTHON (scripts/setup-peers) to run the \
                 Python X-Ray SDK interoperability test ***\n"
            );
            None
        }
    }
}

/// The Flask app as a child process; killed (by its pid) and reaped when dropped, also when the
/// test fails.
struct FlaskPeer {
    child: Child,
    port: u16,
}

impl FlaskPeer {
    fn start(python: &str, daemon_address: &str) -> FlaskPeer {
        let app = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/flask_app.py");
        let mut child = Command::new(python)
            .arg(app)
            .arg(daemon_address)
            .arg(PY_SERVICE)
            .env_remove("AWS_XRAY_DAEMON_ADDRESS")
            .env_remove("AWS_XRAY_TRACING_NAME")
            .env_remove("AWS_XRAY_SDK_ENABLED")
            .env_remove("AWS_XRAY_CONTEXT_MISSING")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        // The guard exists before the first read, so a failure below still kills the child.
        let mut peer = FlaskPeer { child, port: 0 };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the Flask app's stdout");
        peer.port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the Flask app did not report its port: {line:?}"));
        peer
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for FlaskPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_segment(docs: &[Document], trace: TraceId) -> Option<&Document> {
    docs.iter()
        .find(|d| d.trace_id == Some(trace) && d.name == PY_SERVICE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_segment_continues_our_trace_under_our_subsegment() {
    let Some(python) = python() else { return };
    let collector = Collector::start().unwrap();
    let peer = FlaskPeer::start(&python, &collector.daemon_address());
    let client = client(XRayMiddleware::new());
    let recorder = collector.recorder("rust-caller");
    let segment = recorder.begin_segment("rust-caller", None);

    let res = context::scope(segment.clone(), client.get(peer.url("/echo")).send())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let received = echoed_trace_header(res)
        .await
        .expect("header reached Flask");
    segment.end();
    let trace = segment.trace_id();

    let docs = collector.wait_until(WAIT, |docs| {
        python_segment(docs, trace).is_some() && docs.iter().any(|d| d.name == "rust-caller")
    });
    let ours = docs
        .iter()
        .find(|d| d.name == "rust-caller")
        .expect("our segment arrived");
    let sub = &ours.subsegments[0];
    let py = python_segment(&docs, trace).unwrap_or_else(|| {
        panic!("no segment from the Python SDK with our trace id; received: {docs:?}")
    });

    assert_eq!(py.trace_id, Some(trace));
    assert_eq!(py.parent_id, Some(sub.id));
    assert!(sub.http.request.as_ref().unwrap().traced);
    assert_eq!(sub.namespace.as_deref(), Some("remote"));
    assert_eq!(
        received,
        format!("Root={trace};Parent={};Sampled=1", sub.id)
    );
    let py_response = py
        .http
        .response
        .as_ref()
        .expect("Flask recorded a response");
    assert_eq!(py_response.status, Some(200));
    assert_eq!(collector.garbage_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_0_reaches_python_with_our_root_and_python_emits_nothing() {
    let Some(python) = python() else { return };
    let collector = Collector::start().unwrap();
    let peer = FlaskPeer::start(&python, &collector.daemon_address());
    let client = client(XRayMiddleware::new());
    let recorder = collector.recorder("rust-caller");
    let incoming = TraceHeader::new(TraceId::new(), None, Some(Sampled::No));
    let unsampled = recorder.begin_segment("rust-caller", Some(&incoming));
    let trace = unsampled.trace_id();

    let res = context::scope(unsampled.clone(), client.get(peer.url("/echo")).send())
        .await
        .unwrap();
    let received = echoed_trace_header(res)
        .await
        .expect("header reached Flask");
    unsampled.end();

    let fields = header_fields(&received);
    assert_eq!(fields["Root"], trace.to_string());
    assert_eq!(fields["Sampled"], "0");

    // A sampled call afterwards: once Python's segment for it has arrived, anything Python
    // would have sent for the unsampled call has arrived too.
    let barrier = recorder.begin_segment("rust-caller", None);
    context::scope(barrier.clone(), client.get(peer.url("/echo")).send())
        .await
        .unwrap();
    barrier.end();
    let docs = collector.wait_until(WAIT, |docs| {
        python_segment(docs, barrier.trace_id()).is_some()
    });
    assert!(
        python_segment(&docs, barrier.trace_id()).is_some(),
        "the barrier call was traced by Python: {docs:?}"
    );
    assert!(
        docs.iter().all(|d| d.trace_id != Some(trace)),
        "nothing is sent for an unsampled trace, by us or by Python: {docs:?}"
    );
}
