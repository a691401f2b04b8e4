//! Which span fields become annotations, which become metadata.

use std::fmt;

use serde_json::Value;
use tracing::field::{Field, Visit};
use xray_core::{AnnotationValue, Entity};

/// How the fields of a `tracing` span are recorded on its subsegment.
///
/// A field becomes, in this order of precedence:
///
/// 1. an **annotation** (indexed, searchable with filter expressions) when its name starts
///    with the annotation prefix (`xray.` by default; the prefix is removed:
///    `xray.order_id` gives the annotation `order_id`), or when it is listed with
///    [`annotate`](Self::annotate). Annotation keys may only hold letters, digits and
///    underscores: other characters (the dots of `user.id`) become `_`;
/// 2. **metadata** (not indexed, any JSON) under the namespace `tracing`, keyed by the field
///    name, unless metadata is turned off with [`metadata_namespace(None)`](Self::metadata_namespace).
///
/// Numbers and booleans keep their type; `?value` and `%value` fields are recorded as the
/// formatted string. Fields recorded later with `Span::record` are mapped the same way.
///
/// ```
/// use xray_tracing::FieldMapping;
///
/// // `tenant` and `xray.*` fields become annotations, nothing else is recorded.
/// let mapping = FieldMapping::new().annotate("tenant").metadata_namespace(None);
/// # drop(mapping);
/// ```
///
/// `#[instrument]` records every argument of the function as a field: with metadata on,
/// they are sent to X-Ray. Leave out what must not leave the process with
/// `#[instrument(skip(password))]`, as you would for logs.
#[derive(Clone, Debug)]
#[must_use]
pub struct FieldMapping {
    prefix: Option<String>,
    annotated: Vec<String>,
    namespace: Option<String>,
}

impl Default for FieldMapping {
    fn default() -> Self {
        Self::new()
    }
}

impl FieldMapping {
    /// `xray.`-prefixed fields become annotations, every other field metadata in the
    /// `tracing` namespace.
    pub fn new() -> Self {
        Self {
            prefix: Some("xray.".to_string()),
            annotated: Vec::new(),
            namespace: Some("tracing".to_string()),
        }
    }

    /// Records no field at all.
    pub fn none() -> Self {
        Self {
            prefix: None,
            annotated: Vec::new(),
            namespace: None,
        }
    }

    /// Fields whose names start with `prefix` become annotations (`None`: no prefix rule).
    pub fn annotation_prefix(mut self, prefix: Option<&str>) -> Self {
        self.prefix = prefix.filter(|p| !p.is_empty()).map(str::to_string);
        self
    }

    /// The field named `name` becomes an annotation.
    pub fn annotate(mut self, name: impl Into<String>) -> Self {
        self.annotated.push(name.into());
        self
    }

    /// The metadata namespace for the other fields; `None` leaves them out. Namespaces
    /// starting with `AWS.` are reserved by X-Ray and refused when recorded.
    pub fn metadata_namespace(mut self, namespace: Option<&str>) -> Self {
        self.namespace = namespace.map(str::to_string);
        self
    }

    /// True when no field can be recorded, so visiting them can be skipped.
    pub(crate) fn is_off(&self) -> bool {
        self.prefix.is_none() && self.annotated.is_empty() && self.namespace.is_none()
    }

    /// Where a field goes.
    fn target(&self, name: &str) -> Target {
        if let Some(key) = self.prefix.as_deref().and_then(|p| name.strip_prefix(p)) {
            return Target::Annotation(annotation_key(key));
        }
        if self.annotated.iter().any(|a| a == name) {
            return Target::Annotation(annotation_key(name));
        }
        Target::Metadata
    }

    /// Records the fields `values` visits on `entity`.
    pub(crate) fn record(&self, entity: &Entity, values: &dyn Recordable) {
        if self.is_off() || !entity.is_sampled() {
            return;
        }
        let mut visitor = Recorder {
            mapping: self,
            entity,
        };
        values.record(&mut visitor);
    }
}

/// `span::Attributes` and `span::Record` both hand their values to a visitor.
pub(crate) trait Recordable {
    fn record(&self, visitor: &mut dyn Visit);
}

impl Recordable for tracing::span::Attributes<'_> {
    fn record(&self, visitor: &mut dyn Visit) {
        tracing::span::Attributes::record(self, visitor)
    }
}

impl Recordable for tracing::span::Record<'_> {
    fn record(&self, visitor: &mut dyn Visit) {
        tracing::span::Record::record(self, visitor)
    }
}

enum Target {
    Annotation(String),
    Metadata,
}

/// X-Ray annotation keys allow `[A-Za-z0-9_]` only.
fn annotation_key(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

struct Recorder<'a> {
    mapping: &'a FieldMapping,
    entity: &'a Entity,
}

impl Recorder<'_> {
    fn put(&self, field: &Field, annotation: AnnotationValue, metadata: Value) {
        match self.mapping.target(field.name()) {
            Target::Annotation(key) => self.entity.put_annotation(&key, annotation),
            Target::Metadata => {
                if let Some(ns) = &self.mapping.namespace {
                    self.entity.put_metadata_in(ns, field.name(), metadata);
                }
            }
        }
    }
}

impl Visit for Recorder<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.put(field, text.as_str().into(), text.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_and_listed_fields_are_annotations() {
        let m = FieldMapping::new().annotate("user.id");
        assert!(matches!(m.target("xray.order_id"), Target::Annotation(k) if k == "order_id"));
        assert!(matches!(m.target("user.id"), Target::Annotation(k) if k == "user_id"));
        assert!(matches!(m.target("order_id"), Target::Metadata));
        let m = FieldMapping::new().annotation_prefix(None);
        assert!(matches!(m.target("xray.order_id"), Target::Metadata));
    }

    #[test]
    fn none_records_nothing() {
        assert!(FieldMapping::none().is_off());
        assert!(!FieldMapping::new().is_off());
    }
}
