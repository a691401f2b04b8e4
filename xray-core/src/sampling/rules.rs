//! The local sampling rules document (JSON, versions 1 and 2).
//!
//! Version 2, the current one:
//!
//! ```json
//! {
//!   "version": 2,
//!   "rules": [
//!     {
//!       "description": "Player moves.",
//!       "host": "*",
//!       "http_method": "*",
//!       "url_path": "/api/move/*",
//!       "fixed_target": 0,
//!       "rate": 0.05
//!     }
//!   ],
//!   "default": { "fixed_target": 1, "rate": 0.1 }
//! }
//! ```
//!
//! Version 1 is the same with `service_name` in place of `host` (it is matched against the
//! request's host, as the other X-Ray SDKs do). `rules` may be left out; `default` may not.
//! Every rule needs all of its fields except `description`; the default rule takes only
//! `fixed_target` and `rate` (and an optional `description`).
//!
//! Validation is strict: an unknown field, a missing field, a value of the wrong type, a
//! negative or fractional `fixed_target`, a `rate` outside `0..=1` or an empty pattern refuses
//! the whole document, with a [`RulesError`] naming the field (`rules[2].rate`) and the
//! problem. A sampler never runs with half a rules file.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::local::LocalRule;

/// A validated local rules document.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LocalRules {
    /// The document's format version (1 or 2).
    pub version: u8,
    /// The rules, in the order they are tried.
    pub rules: Vec<LocalRule>,
    /// The rule applied when no other matches: `fixed_target` per second, then `rate`.
    pub default: DefaultRule,
}

/// The catch-all rule of a local rules document.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DefaultRule {
    /// Requests sampled each second before the rate applies.
    pub fixed_target: u32,
    /// The share (0 to 1) of further requests that are sampled.
    pub rate: f64,
}

impl Default for DefaultRule {
    /// The X-Ray default: 1 request per second, then 5 %.
    fn default() -> Self {
        Self {
            fixed_target: 1,
            rate: 0.05,
        }
    }
}

/// Why a rules document was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read sampling rules file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The text is not JSON.
    #[error("sampling rules are not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The JSON does not describe valid rules.
    #[error("invalid sampling rules: `{field}` {problem}")]
    Invalid {
        /// Where the problem is, e.g. `rules[2].rate`, or `(document)` for the whole.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A file's content was refused.
    #[error("in sampling rules file {}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// Why its content was refused.
        #[source]
        error: Box<RulesError>,
    },
}

impl RulesError {
    /// The field the problem is in, for content errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            RulesError::Invalid { field, .. } => Some(field),
            RulesError::InFile { error, .. } => error.field(),
            _ => None,
        }
    }

    fn invalid(field: impl fmt::Display, problem: impl Into<String>) -> Self {
        RulesError::Invalid {
            field: field.to_string(),
            problem: problem.into(),
        }
    }
}

impl LocalRules {
    /// Parses and validates a rules document.
    ///
    /// ```
    /// use xray_core::sampling::LocalRules;
    ///
    /// let rules = LocalRules::from_json(
    ///     r#"{"version": 2, "rules": [], "default": {"fixed_target": 1, "rate": 1.5}}"#,
    /// );
    /// let err = rules.unwrap_err();
    /// assert_eq!(err.field(), Some("default.rate"));
    /// assert!(err.to_string().contains("from 0 to 1"), "{err}");
    /// ```
    pub fn from_json(text: &str) -> Result<Self, RulesError> {
        let value: Value = serde_json::from_str(text).map_err(RulesError::Json)?;
        Self::from_value(&value)
    }

    /// Reads, parses and validates a rules file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, RulesError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| RulesError::InFile {
            path: path.to_path_buf(),
            error: Box::new(e),
        })
    }

    /// Validates an already parsed document.
    pub fn from_value(value: &Value) -> Result<Self, RulesError> {
        let doc = value
            .as_object()
            .ok_or_else(|| RulesError::invalid("(document)", "must be a JSON object"))?;
        only_known(doc, "", &["version", "rules", "default"])?;
        let version = match doc.get("version") {
            None => {
                return Err(RulesError::invalid(
                    "version",
                    "is missing; expected 1 or 2",
                ))
            }
            Some(v) => match v.as_u64() {
                Some(1) => 1,
                Some(2) => 2,
                _ => {
                    return Err(RulesError::invalid(
                        "version",
                        format!("must be 1 or 2, got {}", shown(v)),
                    ))
                }
            },
        };
        let host_key = if version == 1 { "service_name" } else { "host" };
        let default = match doc.get("default") {
            None => {
                return Err(RulesError::invalid(
                    "default",
                    "is missing; every rules document needs a default rule",
                ))
            }
            Some(v) => {
                let obj = v
                    .as_object()
                    .ok_or_else(|| RulesError::invalid("default", "must be a JSON object"))?;
                for key in ["host", "service_name", "http_method", "url_path"] {
                    if obj.contains_key(key) {
                        return Err(RulesError::invalid(
                            format!("default.{key}"),
                            "is not allowed: the default rule matches every request",
                        ));
                    }
                }
                only_known(obj, "default.", &["description", "fixed_target", "rate"])?;
                optional_string(obj, "default.", "description")?;
                DefaultRule {
                    fixed_target: fixed_target(obj, "default.")?,
                    rate: rate(obj, "default.")?,
                }
            }
        };
        let rules = match doc.get("rules") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_rule(item, &format!("rules[{i}]."), version, host_key))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(RulesError::invalid(
                    "rules",
                    format!("must be an array, got {}", kind(other)),
                ))
            }
        };
        Ok(Self {
            version,
            rules,
            default,
        })
    }
}

fn parse_rule(
    item: &Value,
    prefix: &str,
    version: u8,
    host_key: &str,
) -> Result<LocalRule, RulesError> {
    let here = prefix.trim_end_matches('.');
    let obj = item
        .as_object()
        .ok_or_else(|| RulesError::invalid(here, "must be a JSON object"))?;
    let other_host_key = if version == 1 { "host" } else { "service_name" };
    if obj.contains_key(other_host_key) {
        return Err(RulesError::invalid(
            format!("{prefix}{other_host_key}"),
            format!("is not a field of version {version} documents; use `{host_key}`"),
        ));
    }
    only_known(
        obj,
        prefix,
        &[
            "description",
            host_key,
            "http_method",
            "url_path",
            "fixed_target",
            "rate",
        ],
    )?;
    let mut rule = LocalRule::new(fixed_target(obj, prefix)?, rate(obj, prefix)?)
        .host(pattern(obj, prefix, host_key)?)
        .http_method(pattern(obj, prefix, "http_method")?)
        .url_path(pattern(obj, prefix, "url_path")?);
    if let Some(d) = optional_string(obj, prefix, "description")? {
        rule = rule.description(d);
    }
    Ok(rule)
}

fn only_known(obj: &Map<String, Value>, prefix: &str, known: &[&str]) -> Result<(), RulesError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(RulesError::invalid(
            format!("{prefix}{k}"),
            format!(
                "is not a known field (expected one of: {})",
                known.join(", ")
            ),
        )),
    }
}

fn pattern(obj: &Map<String, Value>, prefix: &str, key: &str) -> Result<String, RulesError> {
    match obj.get(key) {
        None => Err(RulesError::invalid(
            format!("{prefix}{key}"),
            "is missing (use \"*\" to match anything)",
        )),
        Some(Value::String(s)) if s.is_empty() => Err(RulesError::invalid(
            format!("{prefix}{key}"),
            "must not be empty (use \"*\" to match anything)",
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(RulesError::invalid(
            format!("{prefix}{key}"),
            format!("must be a string, got {}", kind(other)),
        )),
    }
}

fn optional_string(
    obj: &Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<Option<String>, RulesError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(RulesError::invalid(
            format!("{prefix}{key}"),
            format!("must be a string, got {}", kind(other)),
        )),
    }
}

fn fixed_target(obj: &Map<String, Value>, prefix: &str) -> Result<u32, RulesError> {
    let field = format!("{prefix}fixed_target");
    let v = obj
        .get("fixed_target")
        .ok_or_else(|| RulesError::invalid(&field, "is missing"))?;
    let n = v
        .as_f64()
        .ok_or_else(|| RulesError::invalid(&field, format!("must be a number, got {}", kind(v))))?;
    if n < 0.0 {
        return Err(RulesError::invalid(
            &field,
            format!("must not be negative, got {}", shown(v)),
        ));
    }
    if n.fract() != 0.0 {
        return Err(RulesError::invalid(
            &field,
            format!("must be a whole number, got {}", shown(v)),
        ));
    }
    if n > f64::from(u32::MAX) {
        return Err(RulesError::invalid(
            &field,
            format!("is too large ({}), at most {}", shown(v), u32::MAX),
        ));
    }
    Ok(n as u32)
}

fn rate(obj: &Map<String, Value>, prefix: &str) -> Result<f64, RulesError> {
    let field = format!("{prefix}rate");
    let v = obj
        .get("rate")
        .ok_or_else(|| RulesError::invalid(&field, "is missing"))?;
    let r = v
        .as_f64()
        .ok_or_else(|| RulesError::invalid(&field, format!("must be a number, got {}", kind(v))))?;
    if !(0.0..=1.0).contains(&r) {
        return Err(RulesError::invalid(
            &field,
            format!("must be a number from 0 to 1, got {}", shown(v)),
        ));
    }
    Ok(r)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(40).collect();
        format!("{cut}…")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"{
        "version": 2,
        "rules": [
            {"description": "moves", "host": "*.example.com", "http_method": "POST",
             "url_path": "/api/move/*", "fixed_target": 0, "rate": 0.05},
            {"host": "*", "http_method": "GET", "url_path": "/health", "fixed_target": 0, "rate": 0}
        ],
        "default": {"fixed_target": 1, "rate": 0.1}
    }"#;

    #[test]
    fn version_2_document_is_read_in_order() {
        let r = LocalRules::from_json(V2).unwrap();
        assert_eq!(r.version, 2);
        assert_eq!(r.rules.len(), 2);
        assert_eq!(r.rules[0].description.as_deref(), Some("moves"));
        assert_eq!(r.rules[0].host, "*.example.com");
        assert_eq!(r.rules[0].http_method, "POST");
        assert_eq!(r.rules[0].url_path, "/api/move/*");
        assert_eq!(r.rules[0].fixed_target, 0);
        assert_eq!(r.rules[0].rate, 0.05);
        assert_eq!(r.rules[1].url_path, "/health");
        assert_eq!(
            r.default,
            DefaultRule {
                fixed_target: 1,
                rate: 0.1
            }
        );
    }

    #[test]
    fn version_1_service_name_is_matched_as_host() {
        let r = LocalRules::from_json(
            r#"{"version": 1, "rules": [{"service_name": "api.*", "http_method": "*",
                "url_path": "*", "fixed_target": 2, "rate": 0.5}],
                "default": {"fixed_target": 1, "rate": 0.05}}"#,
        )
        .unwrap();
        assert_eq!(r.version, 1);
        assert_eq!(r.rules[0].host, "api.*");
        assert_eq!(r.rules[0].fixed_target, 2);
    }

    #[test]
    fn rules_may_be_left_out_and_whole_floats_count_as_targets() {
        let r =
            LocalRules::from_json(r#"{"version": 2, "default": {"fixed_target": 3.0, "rate": 1}}"#)
                .unwrap();
        assert!(r.rules.is_empty());
        assert_eq!(r.default.fixed_target, 3);
        assert_eq!(r.default.rate, 1.0);
    }

    fn refused(doc: &str) -> (String, String) {
        match LocalRules::from_json(doc) {
            Ok(r) => panic!("accepted {doc}: {r:?}"),
            Err(e) => (e.field().unwrap_or("").to_string(), e.to_string()),
        }
    }

    const RULE: &str =
        r#""host": "*", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 0.5"#;
    const DEFAULT: &str = r#""default": {"fixed_target": 1, "rate": 0.05}"#;

    #[test]
    fn every_kind_of_malformed_document_is_refused_naming_the_field() {
        let cases: Vec<(String, &str, &str)> = vec![
            ("[]".into(), "(document)", "JSON object"),
            (format!(r#"{{{DEFAULT}}}"#), "version", "missing"),
            (
                format!(r#"{{"version": 3, {DEFAULT}}}"#),
                "version",
                "1 or 2",
            ),
            (
                format!(r#"{{"version": "2", {DEFAULT}}}"#),
                "version",
                "1 or 2",
            ),
            (r#"{"version": 2}"#.into(), "default", "missing"),
            (
                r#"{"version": 2, "default": 5}"#.into(),
                "default",
                "JSON object",
            ),
            (
                r#"{"version": 2, "default": {"rate": 0.1}}"#.into(),
                "default.fixed_target",
                "missing",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1}}"#.into(),
                "default.rate",
                "missing",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": -1, "rate": 0.1}}"#.into(),
                "default.fixed_target",
                "negative",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1.5, "rate": 0.1}}"#.into(),
                "default.fixed_target",
                "whole number",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1e12, "rate": 0.1}}"#.into(),
                "default.fixed_target",
                "too large",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": "1", "rate": 0.1}}"#.into(),
                "default.fixed_target",
                "got a string",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": 1.01}}"#.into(),
                "default.rate",
                "from 0 to 1",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": -0.1}}"#.into(),
                "default.rate",
                "from 0 to 1",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": null}}"#.into(),
                "default.rate",
                "got null",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.1, "host": "*"}}"#
                    .into(),
                "default.host",
                "not allowed",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.1, "extra": 1}}"#.into(),
                "default.extra",
                "not a known field",
            ),
            (
                format!(r#"{{"version": 2, "rules": {{}}, {DEFAULT}}}"#),
                "rules",
                "must be an array",
            ),
            (
                format!(r#"{{"version": 2, "rules": [1], {DEFAULT}}}"#),
                "rules[0]",
                "JSON object",
            ),
            (
                format!(
                    r#"{{"version": 2, "rules": [{{{RULE}}}, {{"http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 0.5}}], {DEFAULT}}}"#
                ),
                "rules[1].host",
                "missing",
            ),
            (
                format!(
                    r#"{{"version": 2, "rules": [{{"host": "", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 0.5}}], {DEFAULT}}}"#
                ),
                "rules[0].host",
                "empty",
            ),
            (
                format!(
                    r#"{{"version": 2, "rules": [{{"host": 7, "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 0.5}}], {DEFAULT}}}"#
                ),
                "rules[0].host",
                "must be a string",
            ),
            (
                format!(
                    r#"{{"version": 2, "rules": [{{"host": "*", "url_path": "*", "fixed_target": 1, "rate": 0.5}}], {DEFAULT}}}"#
                ),
                "rules[0].http_method",
                "missing",
            ),
            (
                format!(
                    r#"{{"version": 2, "rules": [{{"host": "*", "http_method": "*", "fixed_target": 1, "rate": 0.5}}], {DEFAULT}}}"#
                ),
                "rules[0].url_path",
                "missing",
            ),
            (
                format!(
                    r#"{{"version": 2, "rules": [{{"host": "*", "http_method": "*", "url_path": "*", "rate": 0.5}}], {DEFAULT}}}"#
                ),
                "rules[0].fixed_target",
                "missing",
            ),
            (
                format!(
                    r#"{{"version": 2, "rules": [{{"host": "*", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 2}}], {DEFAULT}}}"#
                ),
                "rules[0].rate",
                "from 0 to 1",
            ),
            (
                format!(r#"{{"version": 2, "rules": [{{{RULE}, "description": 5}}], {DEFAULT}}}"#),
                "rules[0].description",
                "must be a string",
            ),
            (
                format!(r#"{{"version": 2, "rules": [{{{RULE}, "hots": "x"}}], {DEFAULT}}}"#),
                "rules[0].hots",
                "not a known field",
            ),
            (
                format!(
                    r#"{{"version": 2, "rules": [{{{RULE}, "service_name": "x"}}], {DEFAULT}}}"#
                ),
                "rules[0].service_name",
                "use `host`",
            ),
            (
                format!(r#"{{"version": 1, "rules": [{{{RULE}}}], {DEFAULT}}}"#),
                "rules[0].host",
                "use `service_name`",
            ),
            (
                format!(r#"{{"version": 2, "extra": true, {DEFAULT}}}"#),
                "extra",
                "not a known field",
            ),
        ];
        for (doc, field, problem) in cases {
            let (f, msg) = refused(&doc);
            assert_eq!(f, field, "{doc} -> {msg}");
            assert!(msg.contains(problem), "{doc}: {msg:?} lacks {problem:?}");
            assert!(msg.contains(field), "{msg} does not name {field}");
        }
    }

    #[test]
    fn text_that_is_not_json_is_refused() {
        for bad in ["", "{", "version: 2", "{\"version\": 2,}"] {
            let e = LocalRules::from_json(bad).unwrap_err();
            assert!(matches!(e, RulesError::Json(_)), "{bad}: {e}");
            assert!(e.to_string().contains("not valid JSON"));
        }
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let e = LocalRules::from_file("/nonexistent/xray-rules.json").unwrap_err();
        assert!(matches!(e, RulesError::Io { .. }));
        assert!(
            e.to_string().contains("/nonexistent/xray-rules.json"),
            "{e}"
        );
    }
}
