//! Terminal rendering: a trace as a tree with a timeline.
//!
//! Each entity takes one line: the tree and its name, its duration, its marks (`F` fault,
//! `E` error, `T` throttle) and a bar placed on the trace's time axis (`█` complete, `░` still
//! in progress). Below it, indented under the tree, come what it did (`GET url → 200`, the
//! AWS operation, the SQL query), its exception (`! Type: message`) and its annotations
//! (`@ key=value`). Lines fit in [`RenderOptions::width`] columns (80 by default); colours
//! are ANSI escapes, written only when [`RenderOptions::color`] is set.
//!
//! ```
//! use xray_core::Document;
//! use xray_local::render::{render_trace, RenderOptions};
//! use xray_local::Trace;
//!
//! let doc: Document = serde_json::from_str(
//!     r#"{"name":"web","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979",
//!         "start_time":1478293361.0,"end_time":1478293361.5,
//!         "http":{"request":{"method":"GET","url":"http://localhost/"},"response":{"status":200}}}"#,
//! ).unwrap();
//! let text = render_trace(&Trace::assemble(&[doc]), &RenderOptions::default());
//! assert!(text.contains("GET http://localhost/ → 200"));
//! assert!(text.lines().all(|l| l.chars().count() <= 80));
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use xray_core::document::Cause;

use crate::escape::escape_control;
use crate::trace::{Trace, TraceEntity};
use crate::validate::Violation;

/// How to render.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenderOptions {
    /// Write ANSI colour escapes.
    pub color: bool,
    /// Line width in columns; at least 60 is used.
    pub width: usize,
}

impl Default for RenderOptions {
    /// 80 columns, no colour.
    fn default() -> Self {
        Self {
            color: false,
            width: 80,
        }
    }
}

impl RenderOptions {
    /// Sets colour on or off.
    pub fn color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    /// Sets the line width.
    pub fn width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }
}

const DUR_W: usize = 8;
const MARK_W: usize = 3;
const BAR_W: usize = 20;
/// Columns always left for a name, however deep the tree.
const MIN_NAME_W: usize = 12;
/// Columns right of the name: space, duration, space, marks, space, `[`, bar, `]`.
const RIGHT_W: usize = 1 + DUR_W + 1 + MARK_W + 1 + 1 + BAR_W + 1;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[35m";
const CYAN: &str = "\x1b[36m";

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, style: &str, text: &str) -> String {
        if self.color && !style.is_empty() && !text.is_empty() {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

/// Cuts `s` to `w` columns (ending with `…` when cut) and pads it with spaces to `w`.
fn fit(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        format!("{s}{}", " ".repeat(w - n))
    } else if w == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(w - 1).collect();
        out.push('…');
        out
    }
}

/// Keeps the last `w` columns of a tree prefix, marking the cut with `…`.
fn squeeze(prefix: &str, w: usize) -> String {
    let n = prefix.chars().count();
    if n <= w {
        return prefix.to_string();
    }
    let tail: String = prefix.chars().skip(n - w + 1).collect();
    format!("…{tail}")
}

/// Cuts `s` to `w` columns without padding.
fn cut(s: &str, w: usize) -> String {
    fit(s, w).trim_end().to_string()
}

/// `0.42ms`, `120.5ms`, `2.35s`, `12.5min`, `3.2h`, `45d`: always at most 8 characters, so it
/// fits its column whatever a document claims.
pub fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    let secs = micros as f64 / 1_000_000.0;
    if micros < 1_000 {
        format!("{:.2}ms", micros as f64 / 1000.0)
    } else if micros < 1_000_000 {
        format!("{:.1}ms", micros as f64 / 1000.0)
    } else if secs < 600.0 {
        format!("{secs:.2}s")
    } else if secs < 600.0 * 60.0 {
        format!("{:.1}min", secs / 60.0)
    } else if secs < 2400.0 * 3600.0 {
        format!("{:.1}h", secs / 3600.0)
    } else if secs < 99_999.0 * 86_400.0 {
        format!("{:.0}d", secs / 86_400.0)
    } else {
        ">99999d".to_string()
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What the entity did, on one line: AWS operation, HTTP method and URL, status.
fn activity(e: &TraceEntity) -> Option<String> {
    let d = e.document();
    let mut parts: Vec<String> = Vec::new();
    if let Some(op) = e.aws_operation() {
        parts.push(op.to_string());
        for key in [
            "table_name",
            "queue_url",
            "bucket_name",
            "topic_arn",
            "function_name",
        ] {
            if let Some(v) = d.aws.get(key) {
                parts.push(format!("{key}={}", scalar(v)));
            }
        }
        if let Some(r) = d
            .aws
            .get("retries")
            .and_then(Value::as_u64)
            .filter(|&r| r > 0)
        {
            parts.push(format!("retries={r}"));
        }
    }
    if let Some(m) = e.http_method() {
        parts.push(m.to_string());
    }
    if let Some(u) = e.http_url() {
        parts.push(u.to_string());
    }
    if let Some(s) = e.http_status() {
        parts.push(format!("→ {s}"));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn cause_line(e: &TraceEntity) -> Option<String> {
    match e.document().cause.as_ref()? {
        Cause::Reference(id) => Some(format!("! see exception {id}")),
        Cause::Exceptions(data) => {
            let first = data.exceptions.first()?;
            let mut s = String::from("! ");
            if let Some(k) = &first.kind {
                s.push_str(k);
                s.push_str(": ");
            }
            s.push_str(first.message.as_deref().unwrap_or("(no message)"));
            if data.exceptions.len() > 1 {
                let _ = write!(s, " (+{} more)", data.exceptions.len() - 1);
            }
            Some(s)
        }
    }
}

fn annotations_line(e: &TraceEntity) -> Option<String> {
    let a = &e.document().annotations;
    if a.is_empty() {
        return None;
    }
    let mut pairs: Vec<(&String, &Value)> = a.iter().collect();
    pairs.sort_by(|x, y| x.0.cmp(y.0));
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Some(format!("@ {}", body.join(" ")))
}

struct Axis {
    start: u64,
    span: u64,
}

impl Axis {
    fn col(&self, t: u64, round_up: bool) -> usize {
        if self.span == 0 {
            return if round_up { BAR_W } else { 0 };
        }
        let off = t.saturating_sub(self.start).min(self.span) as u128 * BAR_W as u128;
        let span = self.span as u128;
        let c = if round_up {
            off.div_ceil(span)
        } else {
            off / span
        };
        c as usize
    }

    fn bar(&self, e: &TraceEntity) -> (String, bool) {
        let s = self.col(e.start_time().as_micros(), false).min(BAR_W - 1);
        let (end, glyph) = match e.end_time() {
            Some(t) => (self.col(t.as_micros(), true), '█'),
            None => (BAR_W, '░'),
        };
        let end = end.clamp(s + 1, BAR_W);
        let mut bar = String::with_capacity(BAR_W * 3);
        for i in 0..BAR_W {
            bar.push(if i >= s && i < end { glyph } else { ' ' });
        }
        (bar, e.end_time().is_none())
    }
}

/// The tree guides for the given ancestors (`true`: the ancestor is its parent's last child),
/// keeping only the last `keep` of them: a deep line shows only its innermost guides anyway.
fn guides(lasts: &[bool], keep: usize) -> String {
    let from = lasts.len().saturating_sub(keep);
    lasts[from..]
        .iter()
        .map(|&last| if last { "   " } else { "│  " })
        .collect()
}

/// Renders one trace as text, every line at most `opts.width` columns. Every piece of trace
/// data is escaped ([`escape_control`]) and the tree is walked without recursion, so a trace
/// thousands of levels deep renders in time linear in its size.
pub fn render_trace(trace: &Trace, opts: &RenderOptions) -> String {
    let width = opts.width.max(60);
    let p = Painter { color: opts.color };
    let mut out = String::new();

    let segments = trace.segments().len();
    let subsegments = trace.len() - segments;
    let header = format!(
        "trace {} · {}{} · {}, {}",
        trace
            .trace_id()
            .map(|t| t.to_string())
            .unwrap_or_else(|| "(no trace id)".into()),
        if trace.is_complete() {
            ""
        } else {
            "incomplete · "
        },
        format_duration(trace.duration()),
        plural(segments, "segment"),
        plural(subsegments, "subsegment"),
    );
    let _ = writeln!(
        out,
        "{}",
        p.paint(&format!("{BOLD}{CYAN}"), &cut(&header, width))
    );

    let axis = Axis {
        start: trace.start_time().map_or(0, |t| t.as_micros()),
        span: trace.duration().as_micros() as u64,
    };
    let left_w = width - RIGHT_W;
    let guide_w = left_w - MIN_NAME_W;
    // Guides wider than `guide_w` are cut from the left: only the last levels are needed.
    let keep = guide_w / 3 + 2;
    // For each ancestor below the root, whether it is its parent's last child.
    let mut lasts: Vec<bool> = Vec::new();
    for step in trace.walk() {
        let prefix = if step.depth == 0 {
            lasts.clear();
            String::new()
        } else {
            lasts.truncate(step.depth - 1);
            let branch = if step.last { "└─ " } else { "├─ " };
            let prefix = format!("{}{branch}", guides(&lasts, keep));
            lasts.push(step.last);
            prefix
        };
        let detail_guide = format!(
            "{}{}",
            guides(&lasts, keep),
            if step.has_children { "│  " } else { "   " }
        );
        render_entity(
            step.entity,
            &squeeze(&prefix, guide_w),
            &squeeze(&detail_guide, guide_w),
            &axis,
            width,
            &p,
            &mut out,
        );
    }
    out
}

fn render_entity(
    e: &TraceEntity,
    prefix: &str,
    detail_guide: &str,
    axis: &Axis,
    width: usize,
    p: &Painter,
    out: &mut String,
) {
    let left_w = width - RIGHT_W;
    let name_w = left_w.saturating_sub(prefix.chars().count());
    let name = fit(&escape_control(e.name()), name_w);
    let name = if e.is_segment() {
        p.paint(BOLD, &name)
    } else {
        name
    };
    let dur = match e.duration() {
        Some(d) => format!("{:>DUR_W$}", format_duration(d)),
        None => format!("{:>DUR_W$}", "…"),
    };
    let d = e.document();
    let mut marks = String::new();
    let mut mark_style = "";
    if d.fault {
        marks.push('F');
        mark_style = RED;
    }
    if d.error {
        marks.push('E');
        if mark_style.is_empty() {
            mark_style = YELLOW;
        }
    }
    if d.throttle {
        marks.push('T');
        if mark_style.is_empty() {
            mark_style = MAGENTA;
        }
    }
    let bar_style = if d.fault {
        RED
    } else if d.error {
        YELLOW
    } else if d.throttle {
        MAGENTA
    } else {
        GREEN
    };
    let (bar, open) = axis.bar(e);
    let _ = writeln!(
        out,
        "{}{} {} {} [{}]",
        p.paint(DIM, prefix),
        name,
        dur,
        p.paint(mark_style, &fit(&marks, MARK_W)),
        p.paint(if open { DIM } else { bar_style }, &bar),
    );

    // Detail lines, under the name.
    let detail_w = width.saturating_sub(detail_guide.chars().count());
    let details: [(Option<String>, &str); 4] = [
        (activity(e), ""),
        (
            d.sql
                .as_ref()
                .and_then(|s| s.sanitized_query.as_ref())
                .map(|q| format!("SQL {q}")),
            "",
        ),
        (cause_line(e), RED),
        (annotations_line(e), CYAN),
    ];
    for (text, style) in details {
        if let Some(t) = text {
            let line = format!(
                "{}{}",
                p.paint(DIM, detail_guide),
                p.paint(style, &cut(&escape_control(&t), detail_w))
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

/// Renders a violation as one loud line, control characters escaped.
pub fn render_violation(v: &Violation, opts: &RenderOptions) -> String {
    let p = Painter { color: opts.color };
    let text = format!(
        "✗ INVALID {}: {}: {}",
        v.document_id
            .as_deref()
            .map(|id| format!("document {id}"))
            .unwrap_or_else(|| "datagram".into()),
        v.path,
        v.message
    );
    // Paths name annotation keys and metadata namespaces, and ids are whatever was sent.
    p.paint(&format!("{BOLD}{RED}"), &escape_control(&text))
}
