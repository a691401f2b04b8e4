//! Fuzz harness for `xray-sql`: the statement sanitizer and the connection URL redaction.
//!
//! Compiled into the fuzz crate and, through `#[path]`, into `xray-sql/tests/fuzz_corpus.rs`,
//! which replays the corpus on stable Rust.

use xray_sql::{redact_url, sanitize_query, Dialect};

const DIALECTS: [Dialect; 4] = [
    Dialect::Postgres,
    Dialect::MySql,
    Dialect::Sqlite,
    Dialect::Generic,
];

/// `sanitize_query` on any text, in every dialect, with a cap taken from the first byte (and
/// the default one): no panic, never longer than the cap; a string and a number written at the
/// start of the statement never survive, whatever the text after them. Then
/// `redact_url` on the same text: no panic, and a URL with a password comes back without it.
pub fn sql_sanitize(data: &[u8]) {
    let cap = data.first().map_or(0, |&b| usize::from(b) * 8);
    let text = String::from_utf8_lossy(data.get(1..).unwrap_or(&[]));
    for dialect in DIALECTS {
        for max in [cap, 2048] {
            let out = sanitize_query(&text, dialect, max);
            assert!(out.len() <= max, "{} > {max} for {text:?}", out.len());
        }
    }
    // A literal at the start of a statement, made of a marker the rest does not hold, never
    // survives, whatever follows it.
    let marker = "Zq9'x7";
    let with_literal = format!("SELECT 'Zq9''x7', 0x7Zq9 {text}");
    if !text.contains("Zq9") {
        for dialect in DIALECTS {
            let out = sanitize_query(&with_literal, dialect, usize::MAX);
            assert!(
                !out.contains(marker) && !out.contains("Zq9"),
                "{dialect:?}: {with_literal:?} -> {out:?}"
            );
        }
    }
    if let Some(redacted) = redact_url(&text) {
        if let Ok(parsed) = url::Url::parse(&redacted) {
            assert_eq!(parsed.password(), None, "{text:?} -> {redacted:?}");
        }
    }
}
