//! Fuzz harnesses for the code of `xray-local` that reads outside input: the document
//! validator (hand-written, on arbitrary bytes) and what the receiving path does with the
//! documents it accepts (trace assembly, the terminal rendering, the `--json` line).
//!
//! This file is also compiled into `xray-local`'s `fuzz_corpus` test (through `#[path]`),
//! which replays the stored corpus on stable Rust; keep it free of anything but `xray-local`,
//! `xray-core` and `serde_json`.

use serde_json::Value;
use xray_local::collector::parse_datagram;
use xray_local::escape::{escape_json_controls, is_unsafe_for_terminal};
use xray_local::limits::{
    MAX_NESTING, MAX_VIOLATIONS_PER_DOCUMENT, MAX_VIOLATION_MESSAGE_BYTES, MAX_VIOLATION_PATH_BYTES,
};
use xray_local::render::{render_trace, render_violation, RenderOptions};
use xray_local::validate::validate_datagram;
use xray_local::Trace;

/// Splits a `trace_assembly` input into datagrams (0xFF never occurs in UTF-8 text).
pub const DATAGRAM_SEPARATOR: u8 = 0xff;

/// The validator on arbitrary bytes: never panics; reports a bounded number of violations
/// (at most three about the datagram itself, then the per-document limit and one line saying
/// how many more), each with a bounded, non-empty path and message that render as one line
/// free of control characters; and a datagram it accepts (trace id age aside) is one the
/// collector can read, so nothing valid is counted as garbage.
pub fn datagram_validation(data: &[u8]) {
    let violations = validate_datagram(data);
    assert!(
        violations.len() <= 3 + MAX_VIOLATIONS_PER_DOCUMENT + 1,
        "{} violations",
        violations.len()
    );
    for v in &violations {
        assert!(!v.path.is_empty() && !v.message.is_empty(), "{v:?}");
        assert!(v.path.len() <= MAX_VIOLATION_PATH_BYTES, "{v:?}");
        assert!(v.message.len() <= MAX_VIOLATION_MESSAGE_BYTES, "{v:?}");
        let line = render_violation(v, &RenderOptions::default());
        assert!(!line.chars().any(is_unsafe_for_terminal), "{line:?}");
    }
    // Stored inputs grow old: a trace id's age does not count here.
    let aged = |v: &xray_local::Violation| {
        v.path == "trace_id"
            && (v.message.starts_with("started more than 30 days ago")
                || v.message.starts_with("starts in the future"))
    };
    if violations.iter().all(aged) {
        assert!(
            parse_datagram(data).is_some(),
            "valid but not readable by the collector: {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

/// Datagrams (split on [`DATAGRAM_SEPARATOR`]) through the receiving path: whatever parses is
/// assembled into one trace, rendered and written as JSON. Never panics; every entity is
/// kept; rendered lines fit 80 columns and hold no control character; the JSON line (once
/// escaped as the binary does) holds none either, reads back with serde_json, has every
/// entity and nests at most [`MAX_NESTING`] levels of subsegments per document.
pub fn trace_assembly(data: &[u8]) {
    let documents: Vec<_> = data
        .split(|&b| b == DATAGRAM_SEPARATOR)
        .filter_map(parse_datagram)
        .collect();
    let trace = Trace::assemble(&documents);
    let entities = trace.len();
    assert_eq!(trace.outline().lines().count(), entities);
    let mut in_tree = 0;
    let tree = trace.tree();
    let mut stack: Vec<_> = tree.iter().collect();
    while let Some(node) = stack.pop() {
        in_tree += 1;
        stack.extend(node.children.iter());
    }
    assert_eq!(in_tree, entities, "every entity is in the tree once");

    for color in [false, true] {
        let text = render_trace(&trace, &RenderOptions::default().color(color));
        assert_eq!(text.lines().count(), 1 + entities + details(&trace));
        if !color {
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "{line:?}");
                assert!(!line.chars().any(is_unsafe_for_terminal), "{line:?}");
            }
        }
    }

    let line = trace.to_json().to_string();
    let line = escape_json_controls(&line);
    assert!(!line.chars().any(is_unsafe_for_terminal), "{line:?}");
    let back: Value = serde_json::from_str(&line).expect("the JSON line reads back");
    let segments = back["segments"].as_array().expect("segments");
    let mut count = 0;
    let mut stack: Vec<(&Value, usize)> = segments.iter().map(|s| (s, 0)).collect();
    while let Some((d, level)) = stack.pop() {
        count += 1;
        assert!(level <= MAX_NESTING, "nested {level} levels");
        if let Some(subs) = d.get("subsegments").and_then(Value::as_array) {
            stack.extend(subs.iter().map(|s| (s, level + 1)));
        }
    }
    assert_eq!(count, entities, "every entity is in the JSON once");
}

/// The detail lines the renderer writes (activity, SQL, exception, annotations).
fn details(trace: &Trace) -> usize {
    trace
        .entities()
        .iter()
        .map(|e| {
            let d = e.document();
            let activity = e.aws_operation().is_some()
                || e.http_method().is_some()
                || e.http_url().is_some()
                || e.http_status().is_some();
            let sql = d.sql.as_ref().is_some_and(|s| s.sanitized_query.is_some());
            let cause = match &d.cause {
                Some(xray_core::document::Cause::Exceptions(c)) => !c.exceptions.is_empty(),
                Some(xray_core::document::Cause::Reference(_)) => true,
                None => false,
            };
            let annotations = !d.annotations.is_empty();
            usize::from(activity) + usize::from(sql) + usize::from(cause) + usize::from(annotations)
        })
        .sum()
}
