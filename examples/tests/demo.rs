//! The demo, run as a new user would: it must print a first trace that crosses both services.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::ChildGuard;

#[test]
fn demo_prints_a_first_trace_naming_both_services() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    for var in [
        "AWS_XRAY_TRACING_NAME",
        "AWS_XRAY_SDK_ENABLED",
        "AWS_XRAY_DAEMON_ADDRESS",
    ] {
        cmd.env_remove(var);
    }
    let demo = ChildGuard::spawn(cmd);

    // Skip the banner up to the first trace tree, then read the tree up to its blank line.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut tree = Vec::new();
    while Instant::now() < deadline {
        let Some(line) = demo.next_line(Duration::from_secs(1)) else {
            continue;
        };
        seen.push(line.clone());
        if tree.is_empty() && !line.starts_with("trace 1-") {
            continue;
        }
        if line.trim().is_empty() {
            break;
        }
        tree.push(line);
    }
    assert!(
        !tree.is_empty(),
        "no trace printed; output was:\n{}",
        seen.join("\n")
    );
    let tree = tree.join("\n");
    assert!(tree.contains("frontend"), "{tree}");
    assert!(tree.contains("backend"), "{tree}");
    assert!(
        tree.lines().all(|l| l.chars().count() <= 80),
        "lines wider than 80 columns:\n{tree}"
    );
}
