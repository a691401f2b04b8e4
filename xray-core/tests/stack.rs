//! Causes carry stack frames: a panic's file and line, and a captured backtrace's frames.

use std::backtrace::Backtrace;
use std::panic::{catch_unwind, AssertUnwindSafe};

use xray_core::document::{Cause, Exception};
use xray_core::emitter::MemoryEmitter;
use xray_core::lifecycle::Exchange;
use xray_core::sampling::AlwaysSample;
use xray_core::{Document, Recorder};

fn recorder(max_frames: Option<usize>) -> (Recorder, MemoryEmitter) {
    let emitter = MemoryEmitter::new();
    let mut b = Recorder::builder()
        .sampler(AlwaysSample)
        .emitter(emitter.clone())
        .ignore_env();
    if let Some(n) = max_frames {
        b = b.max_stack_frames(n);
    }
    (b.build().unwrap(), emitter)
}

fn first_exception(doc: &Document) -> &Exception {
    match &doc.cause {
        Some(Cause::Exceptions(c)) => &c.exceptions[0],
        other => panic!("no exceptions: {other:?}"),
    }
}

#[test]
fn a_panic_caught_by_the_lifecycle_records_its_file_and_line() {
    let (recorder, emitter) = recorder(None);
    let mut exchange = Exchange::server(recorder.begin_segment("svc", None));
    let line = line!() + 2;
    let result = catch_unwind(AssertUnwindSafe(|| {
        exchange.catch_panic(|| panic!("out of stock"))
    }));
    assert!(result.is_err());
    let docs = emitter.documents();
    let e = first_exception(&docs[0]);
    assert_eq!(e.message.as_deref(), Some("panicked: out of stock"));
    let top = &e.stack[0];
    assert!(
        top.path.as_deref().unwrap().ends_with("tests/stack.rs"),
        "{top:?}"
    );
    assert_eq!(top.line, Some(line));
    assert!(e.stack.len() <= 10);
}

#[test]
fn a_panic_in_a_capture_records_where_it_happened() {
    let (recorder, emitter) = recorder(None);
    let segment = recorder.begin_segment("svc", None);
    let line = line!() + 3;
    let result = catch_unwind(AssertUnwindSafe(|| {
        xray_core::context::sync_scope(segment.clone(), || {
            xray_core::capture("work", || panic!("bad input {}", 7))
        })
    }));
    assert!(result.is_err());
    segment.end();
    let docs = emitter.documents();
    let e = first_exception(&docs[0].subsegments[0]);
    assert_eq!(e.stack[0].line, Some(line));
}

#[test]
fn no_frames_when_configured_to_keep_none() {
    let (recorder, emitter) = recorder(Some(0));
    let mut exchange = Exchange::server(recorder.begin_segment("svc", None));
    let _ = catch_unwind(AssertUnwindSafe(|| exchange.catch_panic(|| panic!("x"))));
    let docs = emitter.documents();
    assert!(first_exception(&docs[0]).stack.is_empty());
}

#[derive(Debug)]
struct Declined;
impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}
impl std::error::Error for Declined {}

#[test]
fn an_error_with_a_captured_backtrace_records_its_frames_up_to_the_limit() {
    let (recorder, emitter) = recorder(Some(3));
    let segment = recorder.begin_segment("svc", None);
    let backtrace = Backtrace::force_capture();
    segment.add_error_with_backtrace(&Declined, &backtrace);
    segment.end();
    let docs = emitter.documents();
    let e = first_exception(&docs[0]);
    assert_eq!(e.message.as_deref(), Some("card declined"));
    assert!(!e.stack.is_empty() && e.stack.len() <= 3, "{:?}", e.stack);
    assert!(
        e.stack[0]
            .path
            .as_deref()
            .unwrap_or("")
            .ends_with("stack.rs"),
        "the first frame is this test, not the runtime: {:?}",
        e.stack
    );
    assert!(e.stack.iter().all(|f| f.line.is_some() || f.path.is_none()));
}

#[test]
fn an_error_whose_backtrace_was_not_captured_records_no_frames() {
    let (recorder, emitter) = recorder(None);
    let segment = recorder.begin_segment("svc", None);
    segment.add_error_with_backtrace(&Declined, &Backtrace::disabled());
    segment.end();
    let docs = emitter.documents();
    let e = first_exception(&docs[0]);
    assert!(e.stack.is_empty() && e.truncated.is_none());
    assert!(docs[0].fault);
}
