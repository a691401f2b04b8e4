//! Tree rendering, checked on a fixed trace against golden text.

use serde_json::json;
use xray_core::Document;
use xray_local::render::{render_trace, RenderOptions};
use xray_local::Trace;

const TRACE: &str = "1-5759e988-bd862e3fe1be46a994272793";
const T0: f64 = 1_465_510_280.0;

fn doc(v: serde_json::Value) -> Document {
    serde_json::from_value(v).unwrap()
}

/// A checkout trace: frontend calls auth (local) and backend (remote); backend reads
/// DynamoDB twice (a 400, then a throttled 429) and fails with an exception. The backend's
/// subsegments arrive as an independent subsegment, before the frontend's segment.
fn checkout() -> Trace {
    let backend = doc(json!({
        "name": "backend", "id": "b000000000000001", "trace_id": TRACE,
        "parent_id": "a000000000000003",
        "start_time": T0 + 0.022, "end_time": T0 + 0.107, "fault": true,
        "http": {"request": {"method": "GET", "url": "/price"}, "response": {"status": 500}},
        "cause": {"exceptions": [{"id": "c000000000000001", "type": "Error", "message": "boom"}]},
        "subsegments": [{
            "name": "DynamoDB", "id": "b000000000000003", "namespace": "aws",
            "start_time": T0 + 0.062, "end_time": T0 + 0.070, "error": true, "throttle": true,
            "aws": {"operation": "GetItem", "table_name": "prices", "retries": 2},
            "http": {"response": {"status": 429}}
        }]
    }));
    let dynamo = doc(json!({
        "type": "subsegment", "name": "DynamoDB", "id": "b000000000000002", "trace_id": TRACE,
        "parent_id": "b000000000000001", "namespace": "aws",
        "start_time": T0 + 0.030, "end_time": T0 + 0.060, "error": true,
        "aws": {"operation": "GetItem", "table_name": "prices"},
        "http": {"response": {"status": 400}}
    }));
    let frontend = doc(json!({
        "name": "frontend", "id": "a000000000000001", "trace_id": TRACE,
        "start_time": T0, "end_time": T0 + 0.120, "fault": true,
        "http": {"request": {"method": "GET", "url": "http://shop.example/checkout"},
                 "response": {"status": 500}},
        "annotations": {"tier": "gold", "customer": 42},
        "subsegments": [
            {"name": "auth", "id": "a000000000000002", "start_time": T0 + 0.002, "end_time": T0 + 0.010},
            {"name": "backend", "id": "a000000000000003", "namespace": "remote",
             "start_time": T0 + 0.020, "end_time": T0 + 0.110, "fault": true,
             "http": {"request": {"method": "GET", "url": "http://backend:8080/price", "traced": true},
                      "response": {"status": 500}},
             "cause": "c000000000000001"}
        ]
    }));
    Trace::assemble(&[dynamo, backend, frontend])
}

#[test]
fn tree_rendering_matches_the_golden_text() {
    let text = render_trace(&checkout(), &RenderOptions::default());
    if std::env::var_os("XRAY_LOCAL_BLESS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/checkout.txt");
        std::fs::write(path, &text).unwrap();
    }
    let golden = include_str!("golden/checkout.txt");
    assert_eq!(text, golden, "rendered:\n{text}");
}

#[test]
fn every_line_fits_in_80_columns() {
    let text = render_trace(&checkout(), &RenderOptions::default());
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    // Long names and deep nesting are cut, not wrapped.
    let mut deep = doc(json!({
        "name": "n".repeat(150), "id": "d000000000000001", "trace_id": TRACE,
        "start_time": T0, "end_time": T0 + 1.0,
        "annotations": {"long": "v".repeat(300)}
    }));
    let mut parent = &mut deep;
    for i in 0..20 {
        parent.subsegments.push(doc(json!({
            "name": format!("level{i}-{}", "x".repeat(60)), "id": format!("e{:015x}", i + 1),
            "start_time": T0 + 0.01 * i as f64, "end_time": T0 + 0.5,
            "http": {"request": {"method": "GET", "url": format!("http://h/{}", "p".repeat(200))}}
        })));
        parent = &mut parent.subsegments[0];
    }
    let text = render_trace(&Trace::assemble(&[deep]), &RenderOptions::default());
    assert_eq!(text.lines().filter(|l| l.contains("level")).count(), 20);
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
}

#[test]
fn colours_are_written_only_when_asked() {
    let plain = render_trace(&checkout(), &RenderOptions::default());
    assert!(!plain.contains('\x1b'));
    let coloured = render_trace(&checkout(), &RenderOptions::default().color(true));
    assert!(coloured.contains("\x1b[31m"), "faults in red");
    let stripped = strip_ansi(&coloured);
    assert_eq!(stripped.lines().count(), plain.lines().count());
    for (a, b) in stripped.lines().zip(plain.lines()) {
        assert_eq!(a.trim_end(), b.trim_end());
    }
}

#[test]
fn in_progress_entities_show_an_open_bar_and_no_duration() {
    let t = Trace::assemble(&[doc(json!({
        "name": "web", "id": "f000000000000001", "trace_id": TRACE,
        "start_time": T0, "end_time": T0 + 0.1,
        "subsegments": [{"name": "slow", "id": "f000000000000002", "start_time": T0 + 0.05, "in_progress": true}]
    }))]);
    let text = render_trace(&t, &RenderOptions::default());
    let slow = text.lines().find(|l| l.contains("slow")).unwrap();
    assert!(slow.contains('…') && slow.contains('░'), "{slow}");
    assert!(text.lines().next().unwrap().contains(" · incomplete · "));
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Trace data is attacker-controlled text: nothing in it may move the cursor, retitle the
/// window or clear the screen.
#[test]
fn control_characters_in_names_causes_urls_sql_and_annotations_are_escaped() {
    let esc = "\u{1b}[2J\u{1b}]0;owned\u{7}\r\n\t\u{9b}31m\u{7f}\u{202e}";
    let t = Trace::assemble(&[doc(json!({
        "name": format!("web{esc}"), "id": "f000000000000001", "trace_id": TRACE,
        "start_time": T0, "end_time": T0 + 0.1, "fault": true,
        "http": {"request": {"method": format!("GET{esc}"), "url": format!("http://h/{esc}")},
                 "response": {"status": 500}},
        "annotations": {format!("key{esc}"): format!("value{esc}")},
        "cause": {"exceptions": [{"id": "c000000000000001", "type": format!("Err{esc}"),
                                  "message": format!("boom{esc}")}]},
        "subsegments": [
            {"name": "DynamoDB", "id": "f000000000000002", "namespace": "aws",
             "start_time": T0, "end_time": T0 + 0.01,
             "aws": {"operation": format!("GetItem{esc}"), "table_name": format!("t{esc}")}},
            {"name": "db", "id": "f000000000000003", "start_time": T0, "end_time": T0 + 0.01,
             "sql": {"url": "pg://h/db", "sanitized_query": format!("SELECT{esc}")},
             "cause": "c000000000000001"}
        ]
    }))]);
    for opts in [
        RenderOptions::default(),
        RenderOptions::default().color(true),
    ] {
        let text = render_trace(&t, &opts);
        let text = if opts.color { strip_ansi(&text) } else { text };
        for line in text.lines() {
            assert!(
                !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "unescaped control character in {line:?}"
            );
        }
        // The name is cut to its column, after escaping.
        assert!(
            text.contains(r"web\u{1b}[2J\u{1b}]0;owned\u{7}\r\n\t"),
            "{text}"
        );
        let full = render_trace(&t, &opts.clone().width(200));
        assert!(full.contains(r"\u{9b}31m\u{7f}\u{202e}"), "{full}");
        // Annotation values are written as JSON, which escapes C0 controls its own way.
        for part in [
            "GET\\u{1b}",
            "http://h/\\u{1b}",
            "key\\u{1b}",
            "value\\u001b",
            "Err\\u{1b}",
            "boom\\u{1b}",
            "GetItem\\u{1b}",
            "t\\u{1b}",
            "SELECT\\u{1b}",
        ] {
            assert!(full.contains(part), "{part} missing from\n{full}");
        }
        assert!(!full
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\x1b'));
    }
}

#[test]
fn violations_are_printed_with_control_characters_escaped() {
    let v = xray_local::Violation {
        document_id: Some("\u{1b}[31mid".into()),
        path: "annotations.k\u{1b}]0;x\u{7}".into(),
        message: "bad \u{1b}[2J".into(),
    };
    let line = xray_local::render::render_violation(&v, &RenderOptions::default());
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    assert!(line.contains(r"annotations.k\u{1b}]0;x\u{7}"), "{line}");
}

/// Found by the `trace_assembly` fuzz target: a 51-year span was written `1616400000.50s`,
/// pushing the line past 80 columns.
#[test]
fn durations_always_fit_their_eight_columns() {
    use std::time::Duration;
    use xray_local::render::format_duration;
    for micros in [
        0,
        999,
        999_999,
        1_000_000,
        599_999_999,
        600_000_000,
        35_999_999_999,
        36_000_000_000,
        8_639_999_999_999,
        8_640_000_000_000,
        8_639_913_599_999_999,
        u64::MAX,
    ] {
        let text = format_duration(Duration::from_micros(micros));
        assert!(text.chars().count() <= 8, "{micros} µs: {text}");
    }
    assert_eq!(format_duration(Duration::from_secs(90 * 60)), "90.0min");
    assert_eq!(format_duration(Duration::from_secs(36 * 3600)), "36.0h");
    assert_eq!(format_duration(Duration::from_secs(400 * 86_400)), "400d");
    let t = Trace::assemble(&[doc(json!({
        "name": "web", "id": "f000000000000001", "trace_id": TRACE,
        "start_time": 1.0, "end_time": 1_616_400_001.5
    }))]);
    for line in render_trace(&t, &RenderOptions::default()).lines() {
        assert!(line.chars().count() <= 80, "{line}");
    }
}
