//! Escaping trace data for a terminal.
//!
//! Names, causes, URLs, SQL, annotations and violation paths come from whoever sends
//! datagrams. Written raw, an escape sequence in them could clear the screen, retitle the
//! window or hide text, so everything `xray-local` prints goes through [`escape_control`]
//! (text) or [`escape_json_controls`] (`--json` lines).
//!
//! ```
//! use xray_local::escape::escape_control;
//!
//! assert_eq!(escape_control("web\u{1b}[2J"), r"web\u{1b}[2J");
//! assert_eq!(escape_control("line\nbreak\ttab"), r"line\nbreak\ttab");
//! assert_eq!(escape_control("plain text, ünïcödé"), "plain text, ünïcödé");
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters a terminal may act on instead of showing: C0 and C1 controls, DEL,
/// and the invisible marks that reorder or separate text (bidirectional overrides and
/// isolates, line and paragraph separators).
pub fn is_unsafe_for_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
                | '\u{2028}' | '\u{2029}'
        )
}

/// Writes every [`is_unsafe_for_terminal`] character of `s` as a visible escape: `\n`, `\r`,
/// `\t`, or `\u{1b}` (Rust's notation). Borrows when there is nothing to escape.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_for_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_for_terminal(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Escapes, in JSON text written by `serde_json`, the characters it leaves raw but a terminal
/// may act on (DEL, C1 controls, bidirectional marks), as JSON `\uXXXX` escapes. serde_json
/// already escapes C0 controls, and such characters only occur inside strings, so the result
/// is the same JSON value.
///
/// ```
/// use xray_local::escape::escape_json_controls;
///
/// let line = serde_json::json!({"name": "a\u{9b}b"}).to_string();
/// let safe = escape_json_controls(&line);
/// assert_eq!(safe, r#"{"name":"a\u009bb"}"#);
/// assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap()["name"], "a\u{9b}b");
/// ```
pub fn escape_json_controls(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_unsafe_for_terminal) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe_for_terminal(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}
