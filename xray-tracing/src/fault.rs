//! Error events inside a span: the span's subsegment gets `fault` and a cause.

use std::fmt;

use tracing::field::{Field, Visit};
use xray_core::document::{exceptions_from_error, type_name_from_debug, Exception};

/// The field `#[instrument(err)]` (and most hand-written error logs) put the error in.
pub(crate) const ERROR_FIELD: &str = "error";

/// Collects the exceptions an ERROR event describes through its `error` field.
#[derive(Default)]
pub(crate) struct ErrorVisitor {
    pub(crate) exceptions: Vec<Exception>,
}

impl Visit for ErrorVisitor {
    /// `error = &err as &dyn Error`: the whole `source()` chain, the first type taken from
    /// the error's `Debug` output.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if field.name() == ERROR_FIELD {
            let kind = type_name_from_debug(value).unwrap_or_else(|| "error".to_string());
            self.exceptions = exceptions_from_error(value, &kind);
        }
    }

    /// `error = %err` (what `#[instrument(err)]` records) or `error = ?err`. Only the text is
    /// known, not the type: the exception's type is `error`.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == ERROR_FIELD {
            self.exceptions = vec![Exception::new(format!("{value:?}"), "error")];
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == ERROR_FIELD {
            self.exceptions = vec![Exception::new(value, "error")];
        }
    }
}
