//! One query's subsegment, from the moment the statement is sent until its outcome is known,
//! ended exactly once.
//!
//! | outcome | call | flags | cause |
//! |---|---|---|---|
//! | success | [`QuerySpan::succeed`] | none | none; rows returned and affected in metadata |
//! | the database refused the statement (syntax, constraint, permission, …) | [`QuerySpan::fail`] with [`FailureKind::Error`] | `error` | the database's error code as the type, its message |
//! | connection lost, refused or timed out, pool timed out or closed | [`QuerySpan::fail`] with [`FailureKind::Fault`] | `fault` | the driver's error |
//! | the caller dropped the query before it finished | drop | `error` | type `Cancelled` |
//!
//! A span exists only inside a sampled segment: [`QuerySpan::begin`] returns `None` at once
//! otherwise, without allocating or locking anything.

use serde_json::{Map, Value};
use xray_core::document::Exception;
use xray_core::lifecycle::Exchange;
use xray_core::{Entity, Namespace};

use crate::facts::ConnectionFacts;

/// Metadata key (namespace `default`) for the number of rows a query returned.
pub const ROWS_RETURNED: &str = "db.response.returned_rows";

/// Metadata key (namespace `default`) for the number of rows a statement changed.
pub const ROWS_AFFECTED: &str = "db.response.affected_rows";

/// Longest error message recorded in a cause.
const MAX_MESSAGE_CHARS: usize = 1024;

/// Whose failure a failed query is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The database answered with an error about the statement: `error`.
    Error,
    /// The database could not be reached or stopped answering: `fault`.
    Fault,
}

/// A failed query: its kind, and the exception to record as the cause.
#[derive(Debug)]
pub struct Failure {
    /// `error` or `fault`.
    pub kind: FailureKind,
    /// The cause's type: the database's error code when there is one (`42P01`, `1146`),
    /// else the driver's error kind (`Io`, `PoolTimedOut`).
    pub code: String,
    /// The error's message (cut to 1024 characters).
    pub message: String,
}

impl Failure {
    /// A failure from its parts.
    pub fn new(kind: FailureKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The subsegment of one query in progress. Dropping it before [`succeed`](Self::succeed)
/// or [`fail`](Self::fail) ends it as cancelled.
#[derive(Debug)]
pub struct QuerySpan {
    exchange: Exchange,
    returned: u64,
    affected: u64,
    count_rows: bool,
}

/// The current entity when it is sampled. Outside a segment, or in an unsampled one, this
/// costs a thread-local read and a reference count, nothing more.
#[inline]
pub fn sampled_parent() -> Option<Entity> {
    let parent = xray_core::current()?;
    parent.is_sampled().then_some(parent)
}

impl QuerySpan {
    /// Begins the subsegment of `statement` under the current entity, or returns `None`
    /// when there is no current entity or it is not sampled.
    #[inline]
    pub fn begin(facts: &ConnectionFacts, statement: &str) -> Option<QuerySpan> {
        let parent = sampled_parent()?;
        Some(Self::begin_under(&parent, facts, statement))
    }

    /// Begins the subsegment of `statement` under `parent`.
    pub fn begin_under(parent: &Entity, facts: &ConnectionFacts, statement: &str) -> QuerySpan {
        let sub = parent.begin_subsegment(facts.name());
        if sub.is_sampled() {
            // Built before the segment's lock is taken, written under it once.
            let sql = facts.sql_block(statement);
            sub.with_document(|d| {
                d.namespace = Some(Namespace::Remote.as_str().to_string());
                d.sql = Some(sql);
            });
        }
        QuerySpan {
            exchange: Exchange::client(sub),
            returned: 0,
            affected: 0,
            count_rows: true,
        }
    }

    /// For drivers that do not report rows: no row counts in metadata.
    pub fn without_row_counts(mut self) -> Self {
        self.count_rows = false;
        self
    }

    /// The subsegment, while it is open.
    pub fn entity(&self) -> Option<&Entity> {
        self.exchange.entity()
    }

    /// Counts rows returned.
    #[inline]
    pub fn add_returned(&mut self, n: u64) {
        self.returned = self.returned.saturating_add(n);
    }

    /// Counts rows changed.
    #[inline]
    pub fn add_affected(&mut self, n: u64) {
        self.affected = self.affected.saturating_add(n);
    }

    fn record_rows(&self) {
        let Some(e) = self.exchange.entity().filter(|_| self.count_rows) else {
            return;
        };
        let mut rows = Map::with_capacity(2);
        rows.insert(ROWS_RETURNED.to_string(), Value::from(self.returned));
        rows.insert(ROWS_AFFECTED.to_string(), Value::from(self.affected));
        e.with_document(|d| match d.metadata.get_mut("default") {
            Some(Value::Object(m)) => m.extend(rows),
            _ => {
                d.metadata
                    .insert("default".to_string(), Value::Object(rows));
            }
        });
    }

    /// Ends the subsegment as successful, with the rows counted in metadata.
    pub fn succeed(mut self) {
        self.record_rows();
        self.exchange.complete();
    }

    /// Ends the subsegment as failed: `error` or `fault`, with the failure as its cause.
    pub fn fail(mut self, failure: Failure) {
        self.record_rows();
        if let Some(e) = self.exchange.entity() {
            if failure.kind == FailureKind::Error {
                // Set first: the exchange then keeps the failure an error, not a fault.
                e.set_error();
            }
        }
        let message: String = failure.message.chars().take(MAX_MESSAGE_CHARS).collect();
        let exception = Exception::new(message, failure.code).remote(true);
        self.exchange.fail_with(vec![exception]);
    }
}
