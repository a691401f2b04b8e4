//! Stack frames for causes: from a panic's location and from captured backtraces.
//!
//! `std::backtrace::Backtrace` has no stable way to walk its frames, so frames are read from
//! its text (`N: label` lines, each followed by `at path:line:column` when symbols are
//! available). Frames of the standard library, the panic machinery and this crate are left
//! out: the first frame kept is where the user's code failed.

use std::backtrace::{Backtrace, BacktraceStatus};

use crate::document::{Exception, StackFrame};

/// Python's `max_trace_back`: frames kept per exception unless configured otherwise.
pub const DEFAULT_MAX_FRAMES: usize = 10;

/// Frames whose function is one of these are runtime plumbing, not the user's code.
const SKIPPED_PREFIXES: &[&str] = &[
    "std::",
    "core::",
    "alloc::",
    "<std::",
    "<core::",
    "<alloc::",
    "__rust",
    "rust_begin_unwind",
    "rust_panic",
    "xray_core::",
    "<xray_core::",
    "___rust_try",
    "__libc_start",
    "_start",
    "start_thread",
    "clone3",
];

/// The frames of `backtrace`, user code only, at most `max` (and how many more there were).
/// Nothing when the backtrace was not captured (backtraces are off unless `RUST_BACKTRACE` or
/// `RUST_LIB_BACKTRACE` enables them).
pub fn frames_from_backtrace(backtrace: &Backtrace, max: usize) -> (Vec<StackFrame>, u32) {
    if backtrace.status() != BacktraceStatus::Captured || max == 0 {
        return (Vec::new(), 0);
    }
    parse_text(&backtrace.to_string(), max)
}

/// Reads frames from a backtrace's text; see [`frames_from_backtrace`].
fn parse_text(text: &str, max: usize) -> (Vec<StackFrame>, u32) {
    let mut frames = Vec::new();
    let mut more = 0u32;
    let mut current: Option<StackFrame> = None;
    let mut keep = |frame: StackFrame, frames: &mut Vec<StackFrame>| {
        let label = frame.label.as_deref().unwrap_or("");
        if SKIPPED_PREFIXES.iter().any(|p| label.starts_with(p)) {
            return;
        }
        if frames.len() < max {
            frames.push(frame);
        } else {
            more = more.saturating_add(1);
        }
    };
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(location) = trimmed.strip_prefix("at ") {
            if let Some(frame) = current.as_mut() {
                let (path, line) = split_location(location);
                frame.path = Some(path.to_string());
                frame.line = line;
            }
            continue;
        }
        let Some((index, label)) = trimmed.split_once(": ") else {
            continue;
        };
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some(done) = current.take() {
            keep(done, &mut frames);
        }
        current = Some(StackFrame::new(None, None, Some(label.trim().to_string())));
    }
    if let Some(done) = current.take() {
        keep(done, &mut frames);
    }
    (frames, more)
}

/// `path:line:column` → (`path`, `line`); the path may itself hold colons.
fn split_location(location: &str) -> (&str, Option<u32>) {
    let mut parts = location.rsplitn(3, ':');
    let (Some(col), Some(line), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return (location, None);
    };
    match (line.parse::<u32>(), col.parse::<u32>()) {
        (Ok(line), Ok(_)) => (path, Some(line)),
        _ => (location, None),
    }
}

impl Exception {
    /// Adds the frames of `backtrace` (user code only, at most `max`; the rest counted in
    /// `truncated`). A backtrace that was not captured adds nothing.
    pub fn with_backtrace(mut self, backtrace: &Backtrace, max: usize) -> Self {
        let room = max.saturating_sub(self.stack.len());
        let (frames, more) = frames_from_backtrace(backtrace, room);
        for frame in frames {
            // The panic's own location may already be the first frame.
            let same_place = self.stack.first().is_some_and(|first| {
                first.line == frame.line
                    && matches!((&first.path, &frame.path), (Some(a), Some(b)) if b.ends_with(a.as_str()) || a.ends_with(b.as_str()))
            });
            if !same_place {
                self.stack.push(frame);
            }
        }
        if more > 0 {
            self.truncated = Some(self.truncated.unwrap_or(0).saturating_add(more));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "   0: std::backtrace_rs::backtrace::libunwind::trace
             at /rustc/abc/library/std/src/../../backtrace/src/backtrace/libunwind.rs:117:9
   1: std::backtrace::Backtrace::create
             at /rustc/abc/library/std/src/backtrace.rs:331:13
   2: checkout::price::total
             at ./src/price.rs:42:17
   3: checkout::handler::{{closure}}
             at C:\\work\\src\\handler.rs:7:5
   4: <core::pin::Pin<P> as core::future::future::Future>::poll
   5: main
";

    #[test]
    fn frames_are_read_from_the_text_without_runtime_plumbing() {
        let (frames, more) = parse_text(TEXT, 10);
        let labels: Vec<_> = frames.iter().map(|f| f.label.clone().unwrap()).collect();
        assert_eq!(
            labels,
            [
                "checkout::price::total",
                "checkout::handler::{{closure}}",
                "main"
            ]
        );
        assert_eq!(frames[0].path.as_deref(), Some("./src/price.rs"));
        assert_eq!(frames[0].line, Some(42));
        assert_eq!(frames[1].path.as_deref(), Some("C:\\work\\src\\handler.rs"));
        assert_eq!(frames[2].path, None);
        assert_eq!(more, 0);
        let (two, left) = parse_text(TEXT, 2);
        assert_eq!((two.len(), left), (2, 1));
    }

    #[test]
    fn a_backtrace_that_was_not_captured_adds_nothing() {
        let e = Exception::new("m", "t").with_backtrace(&Backtrace::disabled(), 10);
        assert!(e.stack.is_empty() && e.truncated.is_none());
    }

    #[test]
    fn a_captured_backtrace_adds_at_most_max_frames() {
        let e = Exception::new("m", "t").with_backtrace(&Backtrace::force_capture(), 3);
        assert!(e.stack.len() <= 3);
        assert!(e
            .stack
            .iter()
            .all(|f| !f.label.as_deref().unwrap_or("").starts_with("std::")));
    }
}
