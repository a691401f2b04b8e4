//! A direct JSON writer for documents: the fixed structure written by hand, free-form maps
//! (annotations, metadata, `aws`, `service`) through serde. It produces the same JSON values as
//! the derived `Serialize` impl (checked by tests) in less time, since segments are serialized
//! once per sampled request.

use std::io::Write;

use serde_json::{Map, Value};

use crate::document::{Cause, Document, Exception, Http, Sql};
use crate::id::EntityId;
use crate::time::Timestamp;

/// Appends `doc` as compact JSON to `out`.
pub(crate) fn write_document(out: &mut Vec<u8>, doc: &Document) {
    out.push(b'{');
    let mut w = Obj { out, first: true };
    if let Some(kind) = &doc.kind {
        w.str_field("type", kind);
    }
    w.str_field("name", &doc.name);
    // The fields after `name` each start with a comma: key and value go out as one
    // fixed-size piece.
    put(w.out, b",\"id\":\"", &doc.id.to_bytes());
    if let Some(t) = &doc.trace_id {
        put(w.out, b",\"trace_id\":\"", &t.to_bytes());
    }
    if let Some(p) = doc.parent_id {
        put(w.out, b",\"parent_id\":\"", &p.to_bytes());
    }
    w.out.extend_from_slice(b",\"start_time\":");
    write_time(w.out, doc.start_time);
    if let Some(t) = doc.end_time {
        w.out.extend_from_slice(b",\"end_time\":");
        write_time(w.out, t);
    }
    w.bool_field("in_progress", doc.in_progress);
    // The recorder's shared blocks are written straight from the shared decoration, under the
    // document's own fields, without copying them into the document.
    let deco = doc.decoration.as_deref();
    w.opt_str_field("namespace", &doc.namespace);
    w.opt_str_field("user", &doc.user);
    match (&doc.origin, deco.and_then(|d| d.origin.as_ref())) {
        (Some(o), _) | (None, Some(o)) => w.str_field("origin", o),
        (None, None) => {}
    }
    match (&doc.service, deco.and_then(|d| d.service_json.as_deref())) {
        (Some(s), _) => w.map_field("service", s),
        (None, Some(rendered)) => {
            w.key("service");
            w.out.extend_from_slice(rendered);
        }
        (None, None) => {}
    }
    if !doc.http.is_empty() {
        w.key("http");
        write_http(w.out, &doc.http);
    }
    let extra_aws = deco.map(|d| &d.aws).filter(|a| !a.is_empty());
    match extra_aws {
        None if doc.aws.is_empty() => {}
        None => w.map_field("aws", &doc.aws),
        // The usual case: nothing of the document's own, the shared block as rendered.
        Some(_) if doc.aws.is_empty() => {
            let rendered = deco.map_or(&[][..], |d| &d.aws_json);
            w.key("aws");
            w.out.push(b'{');
            w.out.extend_from_slice(rendered);
            w.out.push(b'}');
        }
        Some(extra) => {
            w.key("aws");
            w.out.push(b'{');
            let mut first = true;
            let own = doc.aws.iter();
            let shared = extra.iter().filter(|(k, _)| !doc.aws.contains_key(*k));
            for (k, v) in own.chain(shared) {
                if !std::mem::take(&mut first) {
                    w.out.push(b',');
                }
                write_str(w.out, k);
                w.out.push(b':');
                let _ = serde_json::to_writer(&mut *w.out, v);
            }
            w.out.push(b'}');
        }
    }
    if let Some(sql) = &doc.sql {
        w.key("sql");
        write_sql(w.out, sql);
    }
    w.bool_field("error", doc.error);
    w.bool_field("throttle", doc.throttle);
    w.bool_field("fault", doc.fault);
    if let Some(c) = &doc.cause {
        w.key("cause");
        write_cause(w.out, c);
    }
    if !doc.annotations.is_empty() {
        w.map_field("annotations", &doc.annotations);
    }
    if !doc.metadata.is_empty() {
        w.map_field("metadata", &doc.metadata);
    }
    if !doc.precursor_ids.is_empty() {
        w.key("precursor_ids");
        write_array(w.out, &doc.precursor_ids, |out, id| {
            write_entity_id(out, *id)
        });
    }
    if !doc.subsegments.is_empty() {
        w.key("subsegments");
        write_array(w.out, &doc.subsegments, write_document);
    }
    w.close();
}

/// An object being written: remembers whether a comma is due.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Obj<'_> {
    fn close(self) {
        self.out.push(b'}');
    }
    fn key(&mut self, k: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        // Keys are fixed ASCII field names: nothing to escape.
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }
    fn str_field(&mut self, k: &str, v: &str) {
        self.key(k);
        write_str(self.out, v);
    }
    fn opt_str_field<S: AsRef<str>>(&mut self, k: &str, v: &Option<S>) {
        if let Some(v) = v {
            self.str_field(k, v.as_ref());
        }
    }
    fn bool_field(&mut self, k: &str, v: bool) {
        if v {
            self.key(k);
            self.out.extend_from_slice(b"true");
        }
    }
    fn u64_field(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.key(k);
            write_u64(self.out, v);
        }
    }
    fn map_field(&mut self, k: &str, m: &Map<String, Value>) {
        self.key(k);
        // Writing into a Vec cannot fail, and map keys are strings.
        let _ = serde_json::to_writer(&mut *self.out, m);
    }
    fn nested(&mut self, k: &str) -> Obj<'_> {
        self.key(k);
        self.out.push(b'{');
        Obj {
            out: self.out,
            first: true,
        }
    }
}

fn write_http(out: &mut Vec<u8>, http: &Http) {
    out.push(b'{');
    let mut w = Obj { out, first: true };
    if let Some(r) = &http.request {
        let mut o = w.nested("request");
        o.opt_str_field("method", &r.method);
        o.opt_str_field("url", &r.url);
        o.opt_str_field("user_agent", &r.user_agent);
        o.opt_str_field("client_ip", &r.client_ip);
        o.bool_field("x_forwarded_for", r.x_forwarded_for);
        o.bool_field("traced", r.traced);
        o.close();
    }
    if let Some(r) = &http.response {
        let mut o = w.nested("response");
        o.u64_field("status", r.status.map(u64::from));
        o.u64_field("content_length", r.content_length);
        o.close();
    }
    w.close();
}

fn write_sql(out: &mut Vec<u8>, sql: &Sql) {
    out.push(b'{');
    let mut o = Obj { out, first: true };
    o.opt_str_field("url", &sql.url);
    o.opt_str_field("sanitized_query", &sql.sanitized_query);
    o.opt_str_field("database_type", &sql.database_type);
    o.opt_str_field("database_version", &sql.database_version);
    o.opt_str_field("driver_version", &sql.driver_version);
    o.opt_str_field("user", &sql.user);
    o.opt_str_field("preparation", &sql.preparation);
    o.close();
}

fn write_cause(out: &mut Vec<u8>, cause: &Cause) {
    match cause {
        Cause::Reference(id) => write_str(out, id),
        Cause::Exceptions(data) => {
            out.push(b'{');
            let mut o = Obj { out, first: true };
            o.opt_str_field("working_directory", &data.working_directory);
            if !data.paths.is_empty() {
                o.key("paths");
                write_array(o.out, &data.paths, |out, p| write_str(out, p));
            }
            o.key("exceptions");
            write_array(o.out, &data.exceptions, write_exception);
            o.close();
        }
    }
}

fn write_exception(out: &mut Vec<u8>, e: &Exception) {
    out.push(b'{');
    let mut o = Obj { out, first: true };
    o.key("id");
    write_entity_id(o.out, e.id);
    o.opt_str_field("message", &e.message);
    o.opt_str_field("type", &e.kind);
    o.bool_field("remote", e.remote);
    o.u64_field("truncated", e.truncated.map(u64::from));
    o.u64_field("skipped", e.skipped.map(u64::from));
    if let Some(c) = e.cause {
        o.key("cause");
        write_entity_id(o.out, c);
    }
    if !e.stack.is_empty() {
        o.key("stack");
        write_array(o.out, &e.stack, |out, f| {
            out.push(b'{');
            let mut fo = Obj { out, first: true };
            fo.opt_str_field("path", &f.path);
            fo.u64_field("line", f.line.map(u64::from));
            fo.opt_str_field("label", &f.label);
            fo.close();
        });
    }
    o.close();
}

/// `[a,b,...]`, each item written by `write`.
fn write_array<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// `key` (which opens the value's quote), the id's characters and the closing quote: copies
/// of lengths known when compiling, without a call to `memcpy`.
#[inline]
fn put<const K: usize, const V: usize>(out: &mut Vec<u8>, key: &[u8; K], value: &[u8; V]) {
    out.reserve(K + V + 1);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out.push(b'"');
}

fn write_entity_id(out: &mut Vec<u8>, id: EntityId) {
    out.push(b'"');
    out.extend_from_slice(&id.to_bytes());
    out.push(b'"');
}

/// Seconds with exactly six decimals: `1480615200.010123`.
fn write_time(out: &mut Vec<u8>, t: Timestamp) {
    let micros = t.as_micros();
    let secs = micros / 1_000_000;
    let f = (micros % 1_000_000) as usize;
    if (1_000_000_000..10_000_000_000).contains(&secs) {
        // Every date from 2001 to 2286: ten digits, written as one fixed-size piece.
        let mut digits = [b'.'; 17];
        let (hi, lo) = ((secs / 100_000_000) as usize, (secs % 100_000_000) as usize);
        digits[..2].copy_from_slice(&DEC_PAIRS[hi]);
        digits[2..4].copy_from_slice(&DEC_PAIRS[lo / 1_000_000]);
        digits[4..6].copy_from_slice(&DEC_PAIRS[lo / 10_000 % 100]);
        digits[6..8].copy_from_slice(&DEC_PAIRS[lo / 100 % 100]);
        digits[8..10].copy_from_slice(&DEC_PAIRS[lo % 100]);
        digits[11..13].copy_from_slice(&DEC_PAIRS[f / 10_000]);
        digits[13..15].copy_from_slice(&DEC_PAIRS[f / 100 % 100]);
        digits[15..].copy_from_slice(&DEC_PAIRS[f % 100]);
        out.extend_from_slice(&digits);
        return;
    }
    write_u64(out, secs);
    out.push(b'.');
    let mut digits = [0u8; 6];
    digits[..2].copy_from_slice(&DEC_PAIRS[f / 10_000]);
    digits[2..4].copy_from_slice(&DEC_PAIRS[f / 100 % 100]);
    digits[4..].copy_from_slice(&DEC_PAIRS[f % 100]);
    out.extend_from_slice(&digits);
}

/// `00` to `99`.
const DEC_PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    if (100..1000).contains(&v) {
        // HTTP statuses and most short lengths: three digits, one fixed-size piece.
        let mut digits = [b'0' + (v / 100) as u8, 0, 0];
        digits[1..].copy_from_slice(&DEC_PAIRS[(v % 100) as usize]);
        out.extend_from_slice(&digits);
        return;
    }
    // Two digits per division, from the right.
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while v >= 100 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DEC_PAIRS[(v % 100) as usize]);
        v /= 100;
    }
    if v >= 10 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DEC_PAIRS[v as usize]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    out.extend_from_slice(&buf[i..]);
}

/// A JSON string with the escapes JSON requires (quote, backslash, control characters).
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip eight bytes at a time while none of them needs escaping: most strings in a
        // document (names, URLs, user agents) need none at all.
        // The last few bytes are padded with spaces, which need no escape.
        let n = (bytes.len() - i).min(8);
        let word = match bytes[i..].first_chunk::<8>() {
            // A fixed-size load: a copy of a variable length would call `memcpy`.
            Some(chunk) => u64::from_le_bytes(*chunk),
            None => {
                let mut chunk = [b' '; 8];
                chunk[..n].copy_from_slice(&bytes[i..]);
                u64::from_le_bytes(chunk)
            }
        };
        if !needs_escape(word) {
            i += n;
            continue;
        }
        // Somewhere in these bytes is one to escape.
        let end = i + n;
        for (j, &b) in bytes.iter().enumerate().take(end).skip(i) {
            let esc: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x00..=0x1f => b"",
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..j]);
            if esc.is_empty() {
                let _ = write!(out, "\\u{b:04x}");
            } else {
                out.extend_from_slice(esc);
            }
            start = j + 1;
        }
        i = end;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// True when one of the eight bytes of `word` is a control character, a quote or a backslash.
/// (Bytes of multi-byte UTF-8 sequences are all >= 0x80 and never match.)
#[inline]
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte b < n (n <= 0x80) sets its high bit in (b - n) while b itself has it clear.
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v;
    (below_space | zero_in(quote) | zero_in(backslash)) & HIGH != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{CauseData, HttpRequest, HttpResponse, StackFrame};

    fn full() -> Document {
        let mut d = Document::new("svc \"quoted\" \\ \u{1}\n é");
        d.kind = Some("subsegment".into());
        d.trace_id = Some(crate::id::TraceId::new());
        d.parent_id = Some(EntityId::new());
        d.start_time = Timestamp::from_micros(1_480_615_200_000_000);
        d.end_time = Some(Timestamp::from_micros(1_480_615_200_000_001));
        d.in_progress = true;
        d.namespace = Some("remote".into());
        d.user = Some("alice".into());
        d.origin = Some("AWS::EC2::Instance".into());
        d.service = Some(serde_json::from_str(r#"{"version":"1.2","runtime":"rust"}"#).unwrap());
        d.http.request = Some(HttpRequest {
            method: Some("GET".into()),
            url: Some("http://h/p?q=\"x\"".into()),
            user_agent: Some("ua".into()),
            client_ip: Some("1.2.3.4".into()),
            x_forwarded_for: true,
            traced: true,
        });
        d.http.response = Some(HttpResponse {
            status: Some(503),
            content_length: Some(0),
        });
        d.aws = serde_json::from_str(
            r#"{"xray":{"sdk":"X-Ray for Rust"},"operation":"GetItem","retries":2}"#,
        )
        .unwrap();
        d.sql = Some(Sql {
            url: Some("postgresql://h/db".into()),
            sanitized_query: Some("SELECT ?".into()),
            ..Sql::default()
        });
        d.error = true;
        d.throttle = true;
        d.fault = true;
        let mut e = Exception::new("boom\ttab", "Kind");
        e.remote = true;
        e.truncated = Some(3);
        e.skipped = Some(1);
        e.cause = Some(EntityId::new());
        e.stack = vec![StackFrame::new(
            Some("src/a.rs".into()),
            Some(7),
            Some("f".into()),
        )];
        d.cause = Some(Cause::Exceptions(CauseData {
            working_directory: Some("/w".into()),
            paths: vec!["src/a.rs".into()],
            exceptions: vec![e],
        }));
        d.annotations = serde_json::from_str(r#"{"a":1,"b":"x","c":true,"d":1.5}"#).unwrap();
        d.metadata = serde_json::from_str(r#"{"default":{"k":[1,{"z":null}]}}"#).unwrap();
        d.precursor_ids = vec![EntityId::new(), EntityId::new()];
        let mut child = Document::new("child");
        child.end_time = Some(Timestamp::from_micros(2_000_000));
        child.cause = Some(Cause::Reference("0123456789abcdef".into()));
        d.subsegments = vec![child, Document::new("second")];
        d
    }

    fn same_as_serde(d: &Document) {
        let mut fast = Vec::new();
        write_document(&mut fast, d);
        let fast: Value = serde_json::from_slice(&fast).expect("valid JSON");
        let slow = serde_json::to_value(d).unwrap();
        assert_eq!(fast, slow);
    }

    #[test]
    fn writes_the_same_json_as_serde_for_every_field() {
        same_as_serde(&full());
        same_as_serde(&Document::new("minimal"));
    }

    #[test]
    fn decoration_is_written_under_the_documents_own_fields() {
        let mut aws = Map::new();
        aws.insert("xray".into(), serde_json::json!({"sdk": "X-Ray for Rust"}));
        aws.insert("operation".into(), Value::from("shared-loses"));
        let deco = crate::document::Decoration::new(
            aws,
            Some(serde_json::from_str(r#"{"runtime":"rust"}"#).unwrap()),
            Some("AWS::EC2::Instance".into()),
        );
        let mut d = Document::new("svc");
        d.aws.insert("operation".into(), Value::from("own-wins"));
        d.decoration = Some(std::sync::Arc::new(deco));
        let mut fast = Vec::new();
        write_document(&mut fast, &d);
        let fast: Value = serde_json::from_slice(&fast).unwrap();
        let mut applied = d.clone();
        applied.apply_decoration();
        assert_eq!(fast, serde_json::to_value(&applied).unwrap());
        assert_eq!(fast["aws"]["operation"], "own-wins");
        assert_eq!(fast["aws"]["xray"]["sdk"], "X-Ray for Rust");
        assert_eq!(fast["origin"], "AWS::EC2::Instance");
        assert_eq!(fast["service"]["runtime"], "rust");
    }

    #[test]
    fn prerendered_decoration_matches_applying_it() {
        let mut aws = Map::new();
        aws.insert(
            "xray".into(),
            serde_json::json!({"sdk": "X-Ray for Rust", "v": [1, "\"q\""]}),
        );
        aws.insert("ec2".into(), serde_json::json!({"instance_id": "i-1"}));
        let deco = std::sync::Arc::new(crate::document::Decoration::new(
            aws,
            Some(serde_json::from_str(r#"{"version":"1.2"}"#).unwrap()),
            None,
        ));
        for own_service in [false, true] {
            let mut d = Document::new("svc");
            if own_service {
                d.service = Some(serde_json::from_str(r#"{"version":"own"}"#).unwrap());
            }
            d.decoration = Some(deco.clone());
            let mut fast = Vec::new();
            write_document(&mut fast, &d);
            let fast: Value = serde_json::from_slice(&fast).unwrap();
            let mut applied = d.clone();
            applied.apply_decoration();
            assert_eq!(fast, serde_json::to_value(&applied).unwrap());
            assert_eq!(fast["aws"]["ec2"]["instance_id"], "i-1");
        }
    }

    #[test]
    fn integers_are_written_like_display() {
        let mut edges = vec![0u64, 9, 10, 11, 99, 100, 101, 999, 1000, 12_345, u64::MAX];
        edges.extend((0..20).map(|p| 10u64.pow(p)));
        edges.extend((1..20).map(|p| 10u64.pow(p) - 1));
        for v in edges {
            let mut out = Vec::new();
            write_u64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }

    #[test]
    fn times_have_six_decimals_and_parse_back_exactly() {
        let edges = [
            0u64,
            1,
            999_999,
            1_000_000,
            1_480_615_200_010_123,
            // Either side of the ten-digit seconds written in one piece.
            999_999_999_999_999,
            1_000_000_000_000_000,
            1_000_000_000_000_001,
            9_999_999_999_999_999,
            10_000_000_000_000_000,
            4_102_444_800_000_009,
        ];
        for micros in edges {
            let mut out = Vec::new();
            write_time(&mut out, Timestamp::from_micros(micros));
            let text = std::str::from_utf8(&out).unwrap();
            assert_eq!(text.split('.').nth(1).unwrap().len(), 6);
            let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);
            assert_eq!(text, format!("{secs}.{frac:06}"));
            if micros < 1 << 53 {
                // Beyond 2^53 microseconds an f64 no longer holds every value.
                let back: Timestamp = serde_json::from_str(text).unwrap();
                assert_eq!(back.as_micros(), micros, "{text}");
            }
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut out = Vec::new();
        write_str(&mut out, "a\u{0}b\u{1f}c\"\\");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#""a\u0000b\u001fc\"\\""#
        );
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\u{0}b\u{1f}c\"\\");
    }

    #[test]
    fn strings_match_serde_whatever_sits_where() {
        // Every ASCII byte, and a few multi-byte characters, at every offset of strings up
        // to 19 bytes: the eight-byte skip must never pass over a byte that needs escaping.
        let specials: Vec<char> = (0u8..0x80)
            .map(char::from)
            .chain(['é', '€', '𝄞', '\u{7f}', '\u{a0}'])
            .collect();
        let mut out = Vec::new();
        for len in 0..20 {
            for pos in 0..len {
                for &c in &specials {
                    let s: String = (0..len).map(|i| if i == pos { c } else { 'x' }).collect();
                    out.clear();
                    write_str(&mut out, &s);
                    assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
                }
            }
        }
        let mixed = "a\"b\\c\nd\u{1}eé€𝄞 plain run of text \t tail";
        out.clear();
        write_str(&mut out, mixed);
        assert_eq!(out, serde_json::to_vec(mixed).unwrap());
    }
}
