//! An optional log of every document received, for checks that run after a whole test suite.
//!
//! When `XRAY_TEST_DOCUMENT_LOG` names a file, every well-formed document any [`Collector`]
//! in the process receives is appended to it as one JSON line
//! `{"valid":BOOL,"document":{...}}`, where `valid` is this crate's own verdict (no
//! violations). `scripts/test` then sends every logged document to an X-Ray API (moto's) and
//! checks that the valid ones are all accepted and read back.
//!
//! [`Collector`]: crate::Collector

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// The environment variable naming the log file.
pub const DOCUMENT_LOG_ENV: &str = "XRAY_TEST_DOCUMENT_LOG";

fn file() -> Option<&'static Mutex<File>> {
    static FILE: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::var_os(DOCUMENT_LOG_ENV)?;
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => Some(Mutex::new(f)),
            Err(e) => {
                tracing::warn!(error = %e, "xray-local: cannot open {DOCUMENT_LOG_ENV}");
                None
            }
        }
    })
    .as_ref()
}

/// Appends one received datagram's document, when the log is enabled.
pub(crate) fn record(datagram: &[u8], valid: bool) {
    let Some(file) = file() else { return };
    let Some(newline) = datagram.iter().position(|&b| b == b'\n') else {
        return;
    };
    let body = &datagram[newline + 1..];
    let body = body.trim_ascii();
    if body.is_empty() || body.contains(&b'\n') {
        return;
    }
    let mut line = Vec::with_capacity(body.len() + 32);
    line.extend_from_slice(if valid {
        b"{\"valid\":true,\"document\":"
    } else {
        b"{\"valid\":false,\"document\":"
    });
    line.extend_from_slice(body);
    line.extend_from_slice(b"}\n");
    let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
    // One write per line with O_APPEND: lines from concurrent test processes do not interleave.
    let _ = f.write_all(&line);
}
