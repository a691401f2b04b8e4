//! Checks datagrams and documents against the rules the X-Ray service applies.
//!
//! The daemon forwards whatever it receives; the X-Ray service validates later and silently
//! drops a document it does not accept. These checks run on the raw JSON (not on the typed
//! [`Document`]), so a document that would not even deserialize is still
//! explained field by field. They are written independently of the code in `xray-core` that
//! produces documents, so that they can catch its mistakes.
//!
//! ```
//! use xray_local::validate::validate_datagram;
//!
//! let datagram = br#"{"format":"json","version":1}
//! {"name":"web","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1478293361.271,"end_time":1478293361.449,"annotations":{"user-id":"x"}}"#;
//! let violations = validate_datagram(datagram);
//! assert_eq!(violations.len(), 2); // an old trace id, and a key with a dash
//! assert_eq!(violations[1].path, "annotations.user-id");
//! ```

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};
use xray_core::emitter::MAX_DATAGRAM_BYTES;
use xray_core::time::Timestamp;
use xray_core::Document;

use crate::limits::{
    MAX_VIOLATIONS_PER_DOCUMENT, MAX_VIOLATION_MESSAGE_BYTES, MAX_VIOLATION_PATH_BYTES,
};

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The `id` of the top-level document, when it has a readable one.
    pub document_id: Option<String>,
    /// Where in the document: `name`, `subsegments[2].annotations.user-id`; `(datagram)` for
    /// problems with the datagram itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.document_id {
            Some(id) => write!(f, "document {id}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// The path used for problems with the datagram as a whole.
pub const DATAGRAM_PATH: &str = "(datagram)";

/// Trace ids older than this are refused by the X-Ray service.
const MAX_TRACE_AGE_SECS: u64 = 30 * 24 * 3600;
/// Clock skew tolerated for trace ids from the future.
const MAX_FUTURE_SKEW_SECS: u64 = 5 * 60;
const TRACE_ID_TOO_OLD: &str = "started more than 30 days ago";
const TRACE_ID_IN_FUTURE: &str = "starts in the future";

const SEGMENT_NAME_MAX: usize = 200;
const SUBSEGMENT_NAME_MAX: usize = 250;
const USER_MAX: usize = 250;
const ANNOTATION_KEY_MAX: usize = 500;
const ANNOTATION_STRING_MAX: usize = 1000;

/// Checks a whole datagram: size, header line, then the document.
///
/// A body that breaks none of the rules but that `xray-core`'s [`Document`] cannot read
/// (a number too large for its field, say) gets a violation saying so: the collector could
/// not assemble it, and it must not vanish silently.
pub fn validate_datagram(bytes: &[u8]) -> Vec<Violation> {
    check_datagram(bytes).violations
}

/// What [`check_datagram`] found.
pub(crate) struct DatagramCheck {
    pub(crate) violations: Vec<Violation>,
    /// The header line is right.
    pub(crate) framed: bool,
    /// The body, when it is JSON.
    pub(crate) body: Option<Value>,
    /// The body read as a document, when it is one.
    pub(crate) document: Option<Document>,
}

/// True when `header` (the first line of a datagram) is a JSON object with `"format":"json"`
/// and `"version":1`, read as JSON as the X-Ray daemon reads it (so white space and other
/// fields are allowed).
pub(crate) fn header_ok(header: &[u8]) -> bool {
    serde_json::from_slice::<Value>(header).is_ok_and(|h| {
        h.get("format") == Some(&Value::from("json")) && h.get("version") == Some(&Value::from(1))
    })
}

/// True for the violations about a trace id's age (the only ones that depend on the clock).
fn about_age(v: &Violation) -> bool {
    v.path == "trace_id"
        && (v.message.starts_with(TRACE_ID_TOO_OLD) || v.message.starts_with(TRACE_ID_IN_FUTURE))
}

/// [`validate_datagram`], also returning the body and the document read from it.
pub(crate) fn check_datagram(bytes: &[u8]) -> DatagramCheck {
    let mut out = Vec::new();
    let datagram = |message: String| Violation {
        document_id: None,
        path: DATAGRAM_PATH.to_string(),
        // The header line is quoted escaped, which can make it six times longer.
        message: cap(message, MAX_VIOLATION_MESSAGE_BYTES),
    };
    if bytes.len() > MAX_DATAGRAM_BYTES {
        out.push(datagram(format!(
            "{} bytes, over the {MAX_DATAGRAM_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
        out.push(datagram(
            "no header line: a datagram starts with {\"format\":\"json\",\"version\":1} and a newline"
                .to_string(),
        ));
        return DatagramCheck {
            violations: out,
            framed: false,
            body: None,
            document: None,
        };
    };
    let (header, body) = (&bytes[..newline], &bytes[newline + 1..]);
    let framed = header_ok(header);
    if !framed {
        out.push(datagram(format!(
            "bad header line {:?}: expected {{\"format\":\"json\",\"version\":1}}",
            String::from_utf8_lossy(&header[..header.len().min(80)])
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(doc) => {
            let found = validate_document(&doc);
            let explained = found.iter().any(|v| !about_age(v));
            let document = match Document::deserialize(&doc) {
                Ok(d) => Some(d),
                Err(e) => {
                    if !explained {
                        out.push(Violation {
                            document_id: doc
                                .get("id")
                                .and_then(Value::as_str)
                                .map(|s| s.chars().take(40).collect()),
                            path: "(document)".to_string(),
                            message: cap(
                                format!(
                                    "xray-local cannot read this document ({e}), so it is not \
                                     assembled; the X-Ray service may accept it"
                                ),
                                MAX_VIOLATION_MESSAGE_BYTES,
                            ),
                        });
                    }
                    None
                }
            };
            out.extend(found);
            DatagramCheck {
                violations: out,
                framed,
                body: Some(doc),
                document,
            }
        }
        Err(e) => {
            out.push(datagram(format!("the body is not JSON: {e}")));
            DatagramCheck {
                violations: out,
                framed,
                body: None,
                document: None,
            }
        }
    }
}

/// Checks one top-level document (a segment, or an independent subsegment when `type` is
/// `"subsegment"`).
///
/// At most [`MAX_VIOLATIONS_PER_DOCUMENT`] violations are listed, then one that says how many
/// more were found; paths and messages are cut to [`MAX_VIOLATION_PATH_BYTES`] and
/// [`MAX_VIOLATION_MESSAGE_BYTES`].
pub fn validate_document(doc: &Value) -> Vec<Violation> {
    let mut c = Checker {
        document_id: doc
            .get("id")
            .and_then(Value::as_str)
            .map(|s| s.chars().take(40).collect()),
        out: Vec::new(),
        omitted: 0,
        now_secs: Timestamp::now().as_secs(),
    };
    c.document(doc);
    if c.omitted > 0 {
        c.out.push(Violation {
            document_id: c.document_id.clone(),
            path: "(document)".to_string(),
            message: format!(
                "{} more violations not listed (at most {MAX_VIOLATIONS_PER_DOCUMENT} per document)",
                c.omitted
            ),
        });
    }
    c.out
}

/// Cuts `s` to at most `max` bytes, on a character boundary, marking the cut with `…`.
fn cap(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Segment,
    Independent,
    Embedded,
}

struct Checker {
    document_id: Option<String>,
    out: Vec<Violation>,
    /// Violations found beyond [`MAX_VIOLATIONS_PER_DOCUMENT`].
    omitted: usize,
    now_secs: u64,
}

fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else if field.starts_with('[') {
        format!("{base}{field}")
    } else {
        format!("{base}.{field}")
    }
}

fn name_char_allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c)
}

fn is_entity_id(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

impl Checker {
    fn document(&mut self, doc: &Value) {
        let c = self;
        let Some(obj) = doc.as_object() else {
            c.push("", "a document must be a JSON object");
            return;
        };
        match obj.get("type") {
            None => c.entity(obj, "", Kind::Segment),
            Some(Value::String(t)) if t == "subsegment" => c.entity(obj, "", Kind::Independent),
            Some(other) => {
                c.push(
                    "type",
                    format!("must be \"subsegment\" or absent, found {other}"),
                );
                // Checked as a segment, so the one mistake is reported once.
                c.entity(obj, "", Kind::Segment)
            }
        }
    }

    fn push(&mut self, path: &str, message: impl Into<String>) {
        if self.out.len() >= MAX_VIOLATIONS_PER_DOCUMENT {
            self.omitted += 1;
            return;
        }
        self.out.push(Violation {
            document_id: self.document_id.clone(),
            path: if path.is_empty() {
                "(document)".to_string()
            } else {
                cap(path.to_string(), MAX_VIOLATION_PATH_BYTES)
            },
            message: cap(message.into(), MAX_VIOLATION_MESSAGE_BYTES),
        });
    }

    fn entity(&mut self, obj: &Map<String, Value>, base: &str, kind: Kind) {
        let p = |f: &str| join(base, f);

        // name
        let max = if kind == Kind::Segment {
            SEGMENT_NAME_MAX
        } else {
            SUBSEGMENT_NAME_MAX
        };
        match obj.get("name") {
            None => self.push(&p("name"), "required"),
            Some(Value::String(n)) => {
                let len = n.chars().count();
                if len == 0 {
                    self.push(&p("name"), "must not be empty");
                } else if len > max {
                    self.push(&p("name"), format!("{len} characters, over {max}"));
                }
                if let Some(bad) = n.chars().find(|&c| !name_char_allowed(c)) {
                    self.push(
                        &p("name"),
                        format!("character {bad:?} is not allowed (letters, digits, white space and _ . : / % & # = + \\ - @)"),
                    );
                }
            }
            Some(v) => self.push(&p("name"), format!("must be a string, found {}", short(v))),
        }

        // id
        self.required_id(obj, "id", base);

        // trace_id and parent_id
        match kind {
            Kind::Segment => {
                self.trace_id(obj, base);
                if obj.contains_key("parent_id") {
                    self.required_id(obj, "parent_id", base);
                }
            }
            Kind::Independent => {
                self.trace_id(obj, base);
                self.required_id(obj, "parent_id", base);
                if obj.get("type").is_none() {
                    self.push(
                        &p("type"),
                        "an independent subsegment needs \"type\":\"subsegment\"",
                    );
                }
            }
            Kind::Embedded => {
                if let Some(t) = obj.get("type") {
                    if t != "subsegment" {
                        self.push(
                            &p("type"),
                            format!("must be \"subsegment\" or absent, found {}", short(t)),
                        );
                    }
                }
            }
        }

        // times
        let start = match obj.get("start_time") {
            None => {
                self.push(&p("start_time"), "required");
                None
            }
            Some(v) => self.time(v, &p("start_time")),
        };
        let in_progress = match obj.get("in_progress") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                self.push(
                    &p("in_progress"),
                    format!("must be a boolean, found {}", short(v)),
                );
                false
            }
        };
        let end = obj
            .get("end_time")
            .and_then(|v| self.time(v, &p("end_time")));
        match (obj.get("end_time").is_some(), in_progress) {
            (false, false) => self.push(&p("end_time"), "required unless \"in_progress\":true"),
            (true, true) => self.push(&p("in_progress"), "true although end_time is set"),
            _ => {}
        }
        if let (Some(s), Some(e)) = (start, end) {
            if e < s {
                self.push(&p("end_time"), format!("{e} is before start_time {s}"));
            }
        }

        for flag in ["fault", "error", "throttle"] {
            if let Some(v) = obj.get(flag) {
                if !v.is_boolean() {
                    self.push(&p(flag), format!("must be a boolean, found {}", short(v)));
                }
            }
        }

        if let Some(ns) = obj.get("namespace") {
            match ns.as_str() {
                Some("aws") | Some("remote") => {}
                _ => self.push(
                    &p("namespace"),
                    format!(
                        "must be \"aws\" or \"remote\" (or absent), found {}",
                        short(ns)
                    ),
                ),
            }
        }

        if let Some(u) = obj.get("user") {
            match u.as_str() {
                Some(s) if s.chars().count() > USER_MAX => {
                    self.push(&p("user"), format!("over {USER_MAX} characters"))
                }
                Some(_) => {}
                None => self.push(&p("user"), format!("must be a string, found {}", short(u))),
            }
        }
        if let Some(o) = obj.get("origin") {
            let ok = o.as_str().is_some_and(|s| {
                let parts: Vec<&str> = s.split("::").collect();
                parts.len() == 3 && parts[0] == "AWS" && parts.iter().all(|p| !p.is_empty())
            });
            if !ok {
                self.push(
                    &p("origin"),
                    format!("must look like AWS::Service::Resource, found {}", short(o)),
                );
            }
        }

        for obj_field in ["aws", "service"] {
            if let Some(v) = obj.get(obj_field) {
                if !v.is_object() {
                    self.push(
                        &p(obj_field),
                        format!("must be an object, found {}", short(v)),
                    );
                }
            }
        }

        if let Some(h) = obj.get("http") {
            self.http(h, &p("http"));
        }
        if let Some(s) = obj.get("sql") {
            self.sql(s, &p("sql"));
        }
        if let Some(c) = obj.get("cause") {
            self.cause(c, &p("cause"));
        }
        if let Some(a) = obj.get("annotations") {
            self.annotations(a, &p("annotations"));
        }
        if let Some(m) = obj.get("metadata") {
            self.metadata(m, &p("metadata"));
        }
        if let Some(ids) = obj.get("precursor_ids") {
            match ids.as_array() {
                Some(a) => {
                    for (i, id) in a.iter().enumerate() {
                        if !id.as_str().is_some_and(is_entity_id) {
                            self.push(
                                &p(&format!("precursor_ids[{i}]")),
                                format!("not a 16-hex id: {}", short(id)),
                            );
                        }
                    }
                }
                None => self.push(&p("precursor_ids"), "must be an array"),
            }
        }
        match obj.get("subsegments") {
            None => {}
            Some(Value::Array(subs)) => {
                for (i, s) in subs.iter().enumerate() {
                    let sp = p(&format!("subsegments[{i}]"));
                    match s.as_object() {
                        Some(o) => self.entity(o, &sp, Kind::Embedded),
                        None => self.push(&sp, "a subsegment must be an object"),
                    }
                }
            }
            Some(v) => self.push(
                &p("subsegments"),
                format!("must be an array, found {}", short(v)),
            ),
        }
    }

    fn required_id(&mut self, obj: &Map<String, Value>, field: &str, base: &str) {
        let path = join(base, field);
        match obj.get(field) {
            None => self.push(&path, "required"),
            Some(Value::String(s)) if is_entity_id(s) => {}
            Some(Value::String(s)) if s.len() == 16 && s.bytes().all(|b| b == b'0') => {
                self.push(&path, "an id of all zeros is not valid")
            }
            Some(v) => self.push(
                &path,
                format!("must be 16 lower-case hex digits, found {}", short(v)),
            ),
        }
    }

    fn trace_id(&mut self, obj: &Map<String, Value>, base: &str) {
        let path = join(base, "trace_id");
        let Some(v) = obj.get("trace_id") else {
            self.push(&path, "required");
            return;
        };
        let Some(s) = v.as_str() else {
            self.push(&path, format!("must be a string, found {}", short(v)));
            return;
        };
        let b = s.as_bytes();
        let shaped = b.len() == 35
            && b[0] == b'1'
            && b[1] == b'-'
            && b[10] == b'-'
            && is_lower_hex(&s[2..10])
            && is_lower_hex(&s[11..]);
        if !shaped {
            self.push(
                &path,
                format!(
                    "must look like 1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx (lower-case hex), found {}",
                    short(v)
                ),
            );
            return;
        }
        let epoch = u64::from_str_radix(&s[2..10], 16).unwrap_or(0);
        if epoch + MAX_TRACE_AGE_SECS < self.now_secs {
            self.push(
                &path,
                format!("{TRACE_ID_TOO_OLD}: the X-Ray service refuses it"),
            );
        } else if epoch > self.now_secs + MAX_FUTURE_SKEW_SECS {
            self.push(
                &path,
                format!("{TRACE_ID_IN_FUTURE}: the X-Ray service refuses it"),
            );
        }
    }

    fn time(&mut self, v: &Value, path: &str) -> Option<f64> {
        match v.as_f64() {
            Some(t) if t > 0.0 => Some(t),
            _ => {
                self.push(
                    path,
                    format!(
                        "must be a positive number of epoch seconds, found {}",
                        short(v)
                    ),
                );
                None
            }
        }
    }

    fn http(&mut self, h: &Value, path: &str) {
        let Some(h) = h.as_object() else {
            self.push(path, "must be an object");
            return;
        };
        if let Some(req) = h.get("request") {
            let rp = join(path, "request");
            match req.as_object() {
                None => self.push(&rp, "must be an object"),
                Some(r) => {
                    for f in ["method", "url", "user_agent", "client_ip"] {
                        if let Some(v) = r.get(f) {
                            if !v.is_string() {
                                self.push(
                                    &join(&rp, f),
                                    format!("must be a string, found {}", short(v)),
                                );
                            }
                        }
                    }
                    for f in ["x_forwarded_for", "traced"] {
                        if let Some(v) = r.get(f) {
                            if !v.is_boolean() {
                                self.push(
                                    &join(&rp, f),
                                    format!("must be a boolean, found {}", short(v)),
                                );
                            }
                        }
                    }
                }
            }
        }
        if let Some(resp) = h.get("response") {
            let rp = join(path, "response");
            match resp.as_object() {
                None => self.push(&rp, "must be an object"),
                Some(r) => {
                    if let Some(s) = r.get("status") {
                        if !s.as_u64().is_some_and(|s| (100..=599).contains(&s)) {
                            self.push(
                                &join(&rp, "status"),
                                format!("must be a number from 100 to 599, found {}", short(s)),
                            );
                        }
                    }
                    if let Some(l) = r.get("content_length") {
                        if l.as_u64().is_none() {
                            self.push(
                                &join(&rp, "content_length"),
                                format!("must be a non-negative integer, found {}", short(l)),
                            );
                        }
                    }
                }
            }
        }
    }

    fn sql(&mut self, s: &Value, path: &str) {
        let Some(s) = s.as_object() else {
            self.push(path, "must be an object");
            return;
        };
        for (k, v) in s {
            if !v.is_string() {
                self.push(
                    &join(path, k),
                    format!("must be a string, found {}", short(v)),
                );
            }
        }
        if let Some(url) = s.get("url").and_then(Value::as_str) {
            let ok = url.split_once("://").is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
                    && !rest.is_empty()
            });
            if !ok {
                self.push(
                    &join(path, "url"),
                    format!("must look like scheme://host/database, found {url:?}"),
                );
            }
        }
    }

    fn cause(&mut self, c: &Value, path: &str) {
        match c {
            Value::String(s) => {
                if !is_entity_id(s) {
                    self.push(
                        path,
                        format!(
                            "a cause reference must be a 16-hex exception id, found {}",
                            short(c)
                        ),
                    );
                }
            }
            Value::Object(o) => {
                if let Some(w) = o.get("working_directory") {
                    if !w.is_string() {
                        self.push(&join(path, "working_directory"), "must be a string");
                    }
                }
                if let Some(paths) = o.get("paths") {
                    if !paths
                        .as_array()
                        .is_some_and(|a| a.iter().all(Value::is_string))
                    {
                        self.push(&join(path, "paths"), "must be an array of strings");
                    }
                }
                match o.get("exceptions") {
                    None => {}
                    Some(Value::Array(ex)) => {
                        for (i, e) in ex.iter().enumerate() {
                            self.exception(e, &join(path, &format!("exceptions[{i}]")));
                        }
                    }
                    Some(_) => self.push(&join(path, "exceptions"), "must be an array"),
                }
            }
            other => self.push(
                path,
                format!(
                    "must be an exception id or an object, found {}",
                    short(other)
                ),
            ),
        }
    }

    fn exception(&mut self, e: &Value, path: &str) {
        let Some(o) = e.as_object() else {
            self.push(path, "an exception must be an object");
            return;
        };
        match o.get("id") {
            Some(Value::String(s)) if is_entity_id(s) => {}
            Some(v) => self.push(
                &join(path, "id"),
                format!("must be 16 lower-case hex digits, found {}", short(v)),
            ),
            None => self.push(&join(path, "id"), "required"),
        }
        for f in ["message", "type"] {
            if let Some(v) = o.get(f) {
                if !v.is_string() {
                    self.push(
                        &join(path, f),
                        format!("must be a string, found {}", short(v)),
                    );
                }
            }
        }
        if let Some(v) = o.get("remote") {
            if !v.is_boolean() {
                self.push(&join(path, "remote"), "must be a boolean");
            }
        }
        for f in ["truncated", "skipped"] {
            if let Some(v) = o.get(f) {
                if v.as_u64().is_none() {
                    self.push(
                        &join(path, f),
                        format!("must be a non-negative integer, found {}", short(v)),
                    );
                }
            }
        }
        if let Some(v) = o.get("cause") {
            if !v.as_str().is_some_and(is_entity_id) {
                self.push(
                    &join(path, "cause"),
                    format!(
                        "must be the 16-hex id of another exception, found {}",
                        short(v)
                    ),
                );
            }
        }
        match o.get("stack") {
            None => {}
            Some(Value::Array(frames)) => {
                for (i, f) in frames.iter().enumerate() {
                    let fp = join(path, &format!("stack[{i}]"));
                    let Some(f) = f.as_object() else {
                        self.push(&fp, "a stack frame must be an object");
                        continue;
                    };
                    for k in ["path", "label"] {
                        if f.get(k).is_some_and(|v| !v.is_string()) {
                            self.push(&join(&fp, k), "must be a string");
                        }
                    }
                    if f.get("line").is_some_and(|v| v.as_u64().is_none()) {
                        self.push(&join(&fp, "line"), "must be a non-negative integer");
                    }
                }
            }
            Some(_) => self.push(&join(path, "stack"), "must be an array"),
        }
    }

    fn annotations(&mut self, a: &Value, path: &str) {
        let Some(a) = a.as_object() else {
            self.push(path, format!("must be an object, found {}", short(a)));
            return;
        };
        for (k, v) in a {
            let kp = join(path, k);
            let key_ok = !k.is_empty()
                && k.len() <= ANNOTATION_KEY_MAX
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !key_ok {
                self.push(
                    &kp,
                    "an annotation key is 1 to 500 ASCII letters, digits or underscores",
                );
            }
            match v {
                Value::Bool(_) | Value::Number(_) => {}
                Value::String(s) if s.chars().count() <= ANNOTATION_STRING_MAX => {}
                Value::String(_) => self.push(
                    &kp,
                    format!("string value over {ANNOTATION_STRING_MAX} characters"),
                ),
                other => self.push(
                    &kp,
                    format!(
                        "a value must be a string, number or boolean, found {}",
                        short(other)
                    ),
                ),
            }
        }
    }

    fn metadata(&mut self, m: &Value, path: &str) {
        let Some(m) = m.as_object() else {
            self.push(path, format!("must be an object, found {}", short(m)));
            return;
        };
        for (ns, v) in m {
            let np = join(path, ns);
            if ns.starts_with("AWS.") {
                self.push(&np, "the AWS. namespace prefix is reserved");
            }
            if !v.is_object() {
                self.push(
                    &np,
                    format!(
                        "a metadata namespace must hold an object, found {}",
                        short(v)
                    ),
                );
            }
        }
    }
}
