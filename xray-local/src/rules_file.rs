//! Local sampling rules files (SPEC §5), versions 1 and 2.
//!
//! ```
//! use xray_local::rules_file::LocalRules;
//!
//! let rules = LocalRules::parse(r#"{
//!   "version": 2,
//!   "rules": [{"description": "health checks", "host": "*", "http_method": "GET",
//!              "url_path": "/health", "fixed_target": 0, "rate": 0.0}],
//!   "default": {"fixed_target": 1, "rate": 0.1}
//! }"#).unwrap();
//! assert_eq!(rules.rules[0].url_path, "/health");
//! assert_eq!(rules.default.rate, 0.1);
//!
//! let err = LocalRules::parse(r#"{"version": 2, "rules": [], "default": {"fixed_target": 1}}"#).unwrap_err();
//! assert!(err.to_string().contains("default.rate"));
//! ```

use std::path::Path;

use serde_json::{Map, Value};

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesFileError {
    /// The file could not be read.
    #[error("cannot read sampling rules file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not JSON.
    #[error("sampling rules are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A field is missing or has the wrong type or value.
    #[error("sampling rules: {field}: {problem}")]
    Field {
        /// Where, e.g. `rules[1].rate`.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

/// One rule of a local file.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalRule {
    /// Free text.
    pub description: Option<String>,
    /// Host pattern (version 2); `*` in version 1 files.
    pub host: String,
    /// Service name pattern (version 1); `*` in version 2 files.
    pub service_name: String,
    /// Method pattern.
    pub http_method: String,
    /// URL path pattern.
    pub url_path: String,
    /// Requests per second sampled before `rate` applies.
    pub fixed_target: u64,
    /// Fraction of the remaining requests sampled, 0 to 1.
    pub rate: f64,
}

/// The `default` rule.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalDefault {
    /// Requests per second sampled before `rate` applies.
    pub fixed_target: u64,
    /// Fraction of the remaining requests sampled, 0 to 1.
    pub rate: f64,
}

/// A parsed local rules file.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalRules {
    /// 1 or 2.
    pub version: u64,
    /// The rules, in file order (first match wins).
    pub rules: Vec<LocalRule>,
    /// The catch-all.
    pub default: LocalDefault,
}

fn field_err(field: impl Into<String>, problem: impl Into<String>) -> RulesFileError {
    RulesFileError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

fn target_and_rate(o: &Map<String, Value>, at: &str) -> Result<(u64, f64), RulesFileError> {
    let fixed_target = match o.get("fixed_target") {
        None => return Err(field_err(format!("{at}.fixed_target"), "missing")),
        Some(v) => v.as_u64().ok_or_else(|| {
            field_err(
                format!("{at}.fixed_target"),
                format!("must be a non-negative integer, found {v}"),
            )
        })?,
    };
    let rate = match o.get("rate") {
        None => return Err(field_err(format!("{at}.rate"), "missing")),
        Some(v) => v
            .as_f64()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| {
                field_err(
                    format!("{at}.rate"),
                    format!("must be a number from 0 to 1, found {v}"),
                )
            })?,
    };
    Ok((fixed_target, rate))
}

fn pattern(o: &Map<String, Value>, key: &str, at: &str) -> Result<String, RulesFileError> {
    match o.get(key) {
        None => Err(field_err(format!("{at}.{key}"), "missing")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(field_err(
            format!("{at}.{key}"),
            format!("must be a string, found {v}"),
        )),
    }
}

impl LocalRules {
    /// Parses the JSON text of a rules file.
    pub fn parse(text: &str) -> Result<Self, RulesFileError> {
        let v: Value = serde_json::from_str(text)?;
        let o = v
            .as_object()
            .ok_or_else(|| field_err("(file)", "must be a JSON object"))?;
        let version = match o.get("version") {
            Some(v) if v.as_u64() == Some(1) || v.as_u64() == Some(2) => v.as_u64().unwrap_or(2),
            Some(v) => return Err(field_err("version", format!("must be 1 or 2, found {v}"))),
            None => return Err(field_err("version", "missing")),
        };
        let default = match o.get("default") {
            Some(Value::Object(d)) => {
                let (fixed_target, rate) = target_and_rate(d, "default")?;
                LocalDefault { fixed_target, rate }
            }
            Some(_) => return Err(field_err("default", "must be an object")),
            None => return Err(field_err("default", "missing")),
        };
        let mut rules = Vec::new();
        match o.get("rules") {
            None => {}
            Some(Value::Array(list)) => {
                for (i, r) in list.iter().enumerate() {
                    let at = format!("rules[{i}]");
                    let r = r
                        .as_object()
                        .ok_or_else(|| field_err(at.clone(), "must be an object"))?;
                    let (fixed_target, rate) = target_and_rate(r, &at)?;
                    let (host, service_name) = if version == 1 {
                        ("*".to_string(), pattern(r, "service_name", &at)?)
                    } else {
                        (pattern(r, "host", &at)?, "*".to_string())
                    };
                    rules.push(LocalRule {
                        description: r
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        host,
                        service_name,
                        http_method: pattern(r, "http_method", &at)?,
                        url_path: pattern(r, "url_path", &at)?,
                        fixed_target,
                        rate,
                    });
                }
            }
            Some(_) => return Err(field_err("rules", "must be an array")),
        }
        Ok(Self {
            version,
            rules,
            default,
        })
    }

    /// Reads and parses a rules file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, RulesFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RulesFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }
}
