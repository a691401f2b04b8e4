//! A flood of 60 KB in-progress segments against the real binary: its resident memory stays
//! under 256 MiB while its limits are reached and reported.
//!
//! The flood lasts `XRAY_LOCAL_FLOOD_SECS` seconds (3 by default, to keep CI quick; the
//! hardening issue asks for 10, `XRAY_LOCAL_FLOOD_SECS=10` runs that). Three seconds is enough
//! to show the bound: the test also requires that the binary reported its trace store full
//! (so every store reached its budget and was trimmed) before it looks at the peak.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::*;
use xray_core::TraceId;

const RSS_LIMIT_KIB: u64 = 256 * 1024;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The process's resident set, from /proc/PID/status.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// 60 KB in-progress segments, half holding a long string, half an array of zeros (about
/// 1 MB once parsed). Nine in ten start a trace of their own; the tenth adds a version to one
/// long trace.
/// Each datagram comes with where the random part of its trace id is when it gets a trace of
/// its own.
fn flood_datagrams() -> Vec<(Vec<u8>, Option<usize>)> {
    let long_trace = TraceId::new();
    (0..40)
        .map(|i| {
            let own = i % 10 != 0;
            let trace = if own { TraceId::new() } else { long_trace };
            let d = datagram(&big_in_progress_segment(trace, i, 60_000, i % 2 == 0));
            let at = own.then(|| {
                d.windows(14)
                    .position(|w| w == b"\"trace_id\":\"1-")
                    .expect("a trace id")
                    + 14
                    + 9
            });
            (d, at)
        })
        .collect()
}

/// Gives a datagram a trace id of its own: rewrites the 24 random hex digits of its trace id.
fn retrace(d: &mut [u8], at: usize, n: u64) {
    d[at..at + 24].copy_from_slice(format!("{n:024x}").as_bytes());
}

#[test]
fn a_flood_of_60kb_in_progress_segments_keeps_the_process_under_256_mib() {
    let secs: u64 = std::env::var("XRAY_LOCAL_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xray-local"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let _running = Running(child);
    let (err_tx, err_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(l);
        }
    });
    let first = err_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("starts");
    assert!(first.contains("listening"), "{first}");
    let baseline = rss_kib(pid).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut pool = flood_datagrams();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (d, at) in pool.iter_mut() {
                    n += 1;
                    if let Some(at) = at {
                        retrace(d, *at, n);
                    }
                    let _ = socket.send_to(d, ("127.0.0.1", port));
                }
                sent.fetch_add(pool.len() as u64, Ordering::Relaxed);
            }
        })
    };

    let started = Instant::now();
    let mut peak = baseline;
    let mut reports = Vec::new();
    while started.elapsed() < Duration::from_secs(secs + 2) {
        if started.elapsed() >= Duration::from_secs(secs) {
            stop.store(true, Ordering::Relaxed);
        }
        let rss = rss_kib(pid).expect("the process is alive");
        peak = peak.max(rss);
        assert!(
            rss < RSS_LIMIT_KIB,
            "RSS {} MiB after {:?} of flood",
            rss / 1024,
            started.elapsed()
        );
        reports.extend(err_rx.try_iter());
        std::thread::sleep(Duration::from_millis(50));
    }
    sender.join().unwrap();
    reports.extend(err_rx.try_iter());
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "flood: {secs} s, {sent} datagrams ({} MB) sent; RSS {} MiB at start, peak {} MiB",
        sent * 60 / 1000,
        baseline / 1024,
        peak / 1024
    );
    for r in &reports {
        eprintln!("  xray-local said: {r}");
    }
    assert!(
        reports.iter().any(|r| r.contains("traces forgotten")),
        "the flood filled the trace store (else it did not show the bound): {reports:?}"
    );
}
