//! `AWS_XRAY_CONTEXT_MISSING=RUNTIME_ERROR` with no current segment: the call must still go
//! through (a tracing lookup never fails an HTTP call), and the problem is logged.
//!
//! Its own test binary, because the process-wide recorder reads the environment once.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use xray_reqwest::XRayMiddleware;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn runtime_error_strategy_logs_and_never_fails_the_call() {
    // Set before anything touches the process-wide recorder (the only test in this binary).
    std::env::set_var("AWS_XRAY_CONTEXT_MISSING", "RUNTIME_ERROR");
    assert_eq!(
        xray_core::Recorder::global().context_missing(),
        xray_core::ContextMissing::RuntimeError
    );
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let server = start_server().await;
    let client = client(XRayMiddleware::new());

    let res = client.get(server.url("/echo")).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(echoed_trace_header(res).await, None);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("ERROR") && logs.contains("no X-Ray segment is current"),
        "{logs}"
    );
}
