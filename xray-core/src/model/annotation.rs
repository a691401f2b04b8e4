//! Annotation values and key validation.

use serde_json::Value;

/// A value X-Ray indexes: a string, a number or a boolean.
#[derive(Clone, Debug, PartialEq)]
pub enum AnnotationValue {
    /// A string.
    String(String),
    /// An integer.
    Int(i64),
    /// A floating-point number; NaN and infinities are refused when recorded.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl AnnotationValue {
    /// The JSON value, or `None` for a non-finite number (which JSON cannot carry).
    pub fn to_json(&self) -> Option<Value> {
        Some(match self {
            AnnotationValue::String(s) => Value::String(s.clone()),
            AnnotationValue::Int(i) => Value::from(*i),
            AnnotationValue::Float(f) => Value::from(serde_json::Number::from_f64(*f)?),
            AnnotationValue::Bool(b) => Value::Bool(*b),
        })
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for AnnotationValue {
            fn from(v: $t) -> Self { AnnotationValue::Int(v as i64) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32, isize);

impl From<u64> for AnnotationValue {
    fn from(v: u64) -> Self {
        i64::try_from(v)
            .map(AnnotationValue::Int)
            .unwrap_or(AnnotationValue::Float(v as f64))
    }
}
impl From<usize> for AnnotationValue {
    fn from(v: usize) -> Self {
        AnnotationValue::from(v as u64)
    }
}
impl From<f64> for AnnotationValue {
    fn from(v: f64) -> Self {
        AnnotationValue::Float(v)
    }
}
impl From<f32> for AnnotationValue {
    fn from(v: f32) -> Self {
        AnnotationValue::Float(v as f64)
    }
}
impl From<bool> for AnnotationValue {
    fn from(v: bool) -> Self {
        AnnotationValue::Bool(v)
    }
}
impl From<&str> for AnnotationValue {
    fn from(v: &str) -> Self {
        AnnotationValue::String(v.to_string())
    }
}
impl From<String> for AnnotationValue {
    fn from(v: String) -> Self {
        AnnotationValue::String(v)
    }
}
impl From<&String> for AnnotationValue {
    fn from(v: &String) -> Self {
        AnnotationValue::String(v.clone())
    }
}

/// The longest string value X-Ray indexes, in characters; longer values are cut to it.
pub const MAX_STRING_VALUE_CHARS: usize = 1000;

/// Cuts a string value to [`MAX_STRING_VALUE_CHARS`]; `true` when it was cut.
pub(crate) fn fit_string_value(value: &mut AnnotationValue) -> bool {
    if let AnnotationValue::String(s) = value {
        if let Some((i, _)) = s.char_indices().nth(MAX_STRING_VALUE_CHARS) {
            s.truncate(i);
            return true;
        }
    }
    false
}

/// True for keys X-Ray accepts: 1 to 500 ASCII letters, digits and underscores.
pub fn is_valid_annotation_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 500
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_keys_follow_the_documented_grammar() {
        assert!(is_valid_annotation_key("user_id"));
        assert!(is_valid_annotation_key("A1"));
        assert!(is_valid_annotation_key(&"k".repeat(500)));
        assert!(!is_valid_annotation_key(""));
        assert!(!is_valid_annotation_key(&"k".repeat(501)));
        assert!(!is_valid_annotation_key("user-id"));
        assert!(!is_valid_annotation_key("user.id"));
        assert!(!is_valid_annotation_key("clé"));
    }

    #[test]
    fn long_string_values_are_cut_on_a_character_boundary() {
        let mut v = AnnotationValue::from("é".repeat(1500));
        assert!(fit_string_value(&mut v));
        assert_eq!(v, AnnotationValue::from("é".repeat(1000)));
        let mut short = AnnotationValue::from("ok");
        assert!(!fit_string_value(&mut short));
    }

    #[test]
    fn non_finite_numbers_have_no_json() {
        assert_eq!(AnnotationValue::from(f64::NAN).to_json(), None);
        assert_eq!(AnnotationValue::from(f64::INFINITY).to_json(), None);
        assert_eq!(AnnotationValue::from(1.5).to_json(), Some(Value::from(1.5)));
        assert_eq!(
            AnnotationValue::from(u64::MAX).to_json(),
            Some(Value::from(u64::MAX as f64))
        );
    }
}
