//! The `xray-local` binary, run for real.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use xray_core::emitter::DATAGRAM_HEADER;
use xray_core::time::Timestamp;
use xray_core::{EntityId, TraceId};

/// Kills the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the binary and returns it with channels of its stdout and stderr lines, once it
/// says it listens.
fn start(args: &[&str]) -> (Running, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xray-local"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out_tx, out_rx) = mpsc::channel();
    let (err_tx, err_rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(l);
        }
    });
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(l);
        }
    });
    let running = Running(child);
    let first = err_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the binary starts");
    assert!(first.contains("listening"), "{first}");
    (running, out_rx, err_rx)
}

fn send(port: u16, doc: &Value) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bytes = format!("{DATAGRAM_HEADER}{doc}");
    s.send_to(bytes.as_bytes(), ("127.0.0.1", port)).unwrap();
}

fn two_documents(trace: &str) -> (Value, Value) {
    let t = Timestamp::now().as_secs_f64();
    let seg = EntityId::new().to_string();
    (
        json!({"type":"subsegment","name":"db","id":EntityId::new().to_string(),"trace_id":trace,
               "parent_id":seg,"start_time":t+0.001,"end_time":t+0.002}),
        json!({"name":"web","id":seg,"trace_id":trace,"start_time":t,"end_time":t+0.003,
               "annotations":{"user-id":"x"}}),
    )
}

#[test]
fn json_mode_prints_one_assembled_trace_per_line_and_reports_violations() {
    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let (_child, out, err) = start(&["--listen", &listen, "--json", "--quiet-period", "50"]);
    let trace = TraceId::new().to_string();
    let (sub, seg) = two_documents(&trace);
    send(port, &sub);
    send(port, &seg);
    let line = out
        .recv_timeout(Duration::from_secs(10))
        .expect("a trace line");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["trace_id"], trace.as_str());
    assert_eq!(v["complete"], true);
    assert_eq!(v["segments"].as_array().unwrap().len(), 1);
    assert_eq!(v["segments"][0]["name"], "web");
    assert_eq!(v["segments"][0]["subsegments"][0]["name"], "db");
    let warning = err
        .recv_timeout(Duration::from_secs(5))
        .expect("a violation");
    assert!(
        warning.contains("INVALID") && warning.contains("annotations.user-id"),
        "{warning}"
    );
}

#[test]
fn tree_mode_prints_the_tree_without_colours_when_not_a_terminal() {
    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let (_child, out, _err) = start(&["--listen", &listen, "--quiet-period", "50"]);
    let trace = TraceId::new().to_string();
    let (sub, seg) = two_documents(&trace);
    send(port, &seg);
    send(port, &sub);
    let mut lines = Vec::new();
    while let Ok(l) = out.recv_timeout(Duration::from_secs(10)) {
        if l.is_empty() {
            break;
        }
        lines.push(l);
    }
    assert!(lines[0].starts_with(&format!("trace {trace}")), "{lines:?}");
    assert!(lines[1].starts_with("web "), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("└─ db ")), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains('\x1b')));
}

#[test]
fn bad_rules_file_is_refused_with_the_field_named() {
    let dir = std::env::temp_dir().join(format!("xray-local-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.json");
    std::fs::write(
        &file,
        r#"{"version":2,"default":{"fixed_target":1,"rate":7}}"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xray-local"))
        .args(["--listen", "127.0.0.1:0", "--sampling-rules"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("default.rate"), "{stderr}");
}

mod common;

/// Sends a chain of 20 000 subsegments (400 datagrams linked by `parent_id`).
fn send_deep_chain(port: u16, trace: TraceId) {
    let datagrams: Vec<Vec<u8>> = common::chain_documents(trace, 20_000)
        .iter()
        .map(common::datagram)
        .collect();
    common::send_all(([127, 0, 0, 1], port).into(), &datagrams);
}

#[test]
fn a_chain_of_20000_subsegments_is_printed_as_a_tree_and_the_process_lives_on() {
    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let (mut child, out, _err) = start(&["--listen", &listen, "--quiet-period", "200"]);
    let trace = TraceId::new();
    send_deep_chain(port, trace);
    let header = out
        .recv_timeout(Duration::from_secs(60))
        .expect("the trace is printed");
    assert!(
        header.starts_with(&format!("trace {trace}")) && header.contains("19999 subsegments"),
        "{header}"
    );
    let mut lines = 0;
    while let Ok(l) = out.recv_timeout(Duration::from_secs(10)) {
        if l.is_empty() {
            break;
        }
        assert!(l.chars().count() <= 80, "{l}");
        lines += 1;
    }
    assert_eq!(lines, 20_000, "one line per entity");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the process is still running"
    );
}

#[test]
fn a_chain_of_20000_subsegments_is_written_as_json_that_reads_back() {
    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let (mut child, out, _err) = start(&["--listen", &listen, "--json", "--quiet-period", "200"]);
    let trace = TraceId::new();
    send_deep_chain(port, trace);
    let line = out
        .recv_timeout(Duration::from_secs(60))
        .expect("the trace is printed");
    let v: Value = serde_json::from_str(&line).expect("serde_json reads the line back");
    assert_eq!(v["trace_id"], trace.to_string().as_str());
    let (count, deepest) = common::count_entities(v["segments"].as_array().unwrap());
    assert_eq!(count, 20_000);
    assert!(deepest <= 33, "nesting is capped: {deepest}");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the process is still running"
    );
}

/// Waits for the process to exit, at most `timeout`; kills it and fails otherwise.
fn exits_within(mut child: Child, timeout: Duration) -> (std::process::ExitStatus, String) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status, err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {timeout:?}: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn forward_from_a_non_loopback_listener_is_refused_without_allow_remote_forward() {
    let child = Command::new(env!("CARGO_BIN_EXE_xray-local"))
        .args(["--listen", "0.0.0.0:0", "--forward", "127.0.0.1:2000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, stderr) = exits_within(child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("--allow-remote-forward"), "{stderr}");
    assert!(stderr.contains("0.0.0.0"), "names the address: {stderr}");
}

#[test]
fn allow_remote_forward_lets_a_non_loopback_listener_forward() {
    let (_child, _out, err) = start(&[
        "--listen",
        "0.0.0.0:0",
        "--forward",
        "127.0.0.1:2000",
        "--allow-remote-forward",
    ]);
    let line = err
        .recv_timeout(Duration::from_secs(5))
        .expect("says it forwards");
    assert!(line.contains("forwarding"), "{line}");
}

#[test]
fn forward_from_a_loopback_listener_needs_no_flag() {
    let port = free_udp_port();
    let (_child, _out, err) = start(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--forward",
        "127.0.0.1:2000",
    ]);
    let line = err
        .recv_timeout(Duration::from_secs(5))
        .expect("says it forwards");
    assert!(line.contains("forwarding"), "{line}");
}

#[test]
fn control_characters_in_trace_data_are_printed_escaped() {
    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let (_child, out, err) = start(&["--listen", &listen, "--quiet-period", "50"]);
    let trace = TraceId::new().to_string();
    let t = Timestamp::now().as_secs_f64();
    let esc = "\u{1b}]0;owned\u{7}\u{1b}[2J";
    send(
        port,
        &json!({"name": format!("web{esc}"), "id": EntityId::new().to_string(), "trace_id": trace,
                "start_time": t, "end_time": t + 0.01, "fault": true,
                "http": {"request": {"method": format!("GET{esc}"), "url": format!("http://h/{esc}")}},
                "annotations": {format!("k{esc}"): format!("v{esc}")},
                "cause": {"exceptions": [{"id": "c000000000000001", "type": format!("E{esc}"),
                                          "message": format!("boom{esc}")}]},
                "subsegments": [{"name": "db", "id": EntityId::new().to_string(),
                                 "start_time": t, "end_time": t + 0.001,
                                 "sql": {"url": "pg://h/db", "sanitized_query": format!("SELECT{esc}")}}]}),
    );
    let mut lines = Vec::new();
    while let Ok(l) = out.recv_timeout(Duration::from_secs(10)) {
        if l.is_empty() {
            break;
        }
        lines.push(l);
    }
    let text = lines.join("\n");
    assert!(text.contains(r"web\u{1b}]0;owned\u{7}"), "{text}");
    assert!(text.contains(r"boom\u{1b}"), "{text}");
    assert!(text.contains(r"SELECT\u{1b}"), "{text}");
    for l in &lines {
        assert!(
            !l.chars().any(|c| c.is_control()),
            "a control character reached the terminal: {l:?}"
        );
    }
    // Violations on stderr (the name, the annotation key) are escaped too.
    let mut warnings = Vec::new();
    while let Ok(l) = err.recv_timeout(Duration::from_millis(500)) {
        warnings.push(l);
    }
    assert!(!warnings.is_empty());
    for w in &warnings {
        assert!(!w.chars().any(|c| c.is_control()), "{w:?}");
    }
}
