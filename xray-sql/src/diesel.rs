//! diesel 2.2+: queries recorded through diesel's own `Instrumentation` hook.
//!
//! diesel tells an instrumentation when each query starts and finishes (and when a
//! connection is established), on the thread that runs the query: [`XRayInstrumentation`]
//! begins a subsegment at the start and ends it at the finish. Set it on one connection, or
//! as the default of every connection established afterwards:
//!
//! ```no_run
//! use diesel::connection::{set_default_instrumentation, Instrumentation};
//! use xray_sql::diesel::XRayInstrumentation;
//!
//! set_default_instrumentation(|| {
//!     Some(Box::new(XRayInstrumentation::new()) as Box<dyn Instrumentation>)
//! })
//! .expect("the default instrumentation is set");
//! ```
//!
//! The instrumentation learns the database's name, host and user from the URL of the
//! connection it sees established (the password and secret parameters removed); set on a
//! connection that is already open, give it the URL with [`XRayInstrumentation::for_url`].
//!
//! diesel prints a query's bound values after its text (` -- binds: [...]`): that part is cut
//! off before the text is sanitized, so bound values never reach the trace.
//!
//! Synchronous diesel runs queries on the calling thread: the segment must be current there
//! (inside a request served by a framework adapter, `xray_core::capture`, or, for a
//! connection pool's blocking task, `xray_core::context::sync_scope` around the closure).
//! `diesel-async` calls the hook inside the query's future, where the request's segment is
//! current. Row counts are not part of diesel's events and are not recorded.

use std::fmt;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error};

use crate::facts::{ConnectionFacts, SqlOptions};
use crate::sanitize::Dialect;
use crate::span::{sampled_parent, Failure, FailureKind, QuerySpan};

/// What the `sql` block says for the driver.
pub const DRIVER_VERSION: &str = "diesel-2";

/// Records every query of a diesel connection as a subsegment.
pub struct XRayInstrumentation {
    facts: Option<ConnectionFacts>,
    options: SqlOptions,
    span: Option<QuerySpan>,
}

impl fmt::Debug for XRayInstrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRayInstrumentation")
            .field("name", &self.facts.as_ref().map(|f| f.name()))
            .finish_non_exhaustive()
    }
}

impl Default for XRayInstrumentation {
    fn default() -> Self {
        Self::new()
    }
}

/// The facts for a diesel connection URL: `postgres://…`, `mysql://…`, or a SQLite path.
pub fn connection_facts(url: &str, options: SqlOptions) -> ConnectionFacts {
    let (dialect, database_type) = if url.starts_with("postgres") {
        (Dialect::Postgres, "PostgreSQL")
    } else if url.starts_with("mysql") || url.starts_with("mariadb") {
        (Dialect::MySql, "MySQL")
    } else {
        (Dialect::Sqlite, "SQLite")
    };
    if dialect == Dialect::Sqlite {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("file:");
        let path = path.split('?').next().unwrap_or("");
        let name = if path.is_empty() || path.contains(":memory:") || path.contains("mode=memory") {
            "memory".to_string()
        } else {
            std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "database".to_string())
        };
        return ConnectionFacts::new(
            crate::facts::ConnectionParts {
                dialect,
                database_type,
                driver_version: DRIVER_VERSION,
                database: Some(&name),
                ..Default::default()
            },
            options,
        );
    }
    ConnectionFacts::from_url(url, dialect, database_type, DRIVER_VERSION, options)
}

impl XRayInstrumentation {
    /// An instrumentation that learns the connection's URL when the connection is
    /// established (use it as the default instrumentation).
    pub fn new() -> Self {
        Self::with_options(SqlOptions::default())
    }

    /// Like [`new`](Self::new), with options.
    pub fn with_options(options: SqlOptions) -> Self {
        Self {
            facts: None,
            options,
            span: None,
        }
    }

    /// An instrumentation for a connection already established to `url` (its password is
    /// never recorded).
    pub fn for_url(url: &str) -> Self {
        let mut i = Self::new();
        i.facts = Some(connection_facts(url, i.options.clone()));
        i
    }

    /// Records `version` as the server's version.
    pub fn set_database_version(&self, version: &str) {
        if let Some(f) = &self.facts {
            f.set_database_version(version);
        }
    }

    fn facts(&mut self) -> &ConnectionFacts {
        let options = &self.options;
        // Set on an open connection without its URL: a generic name.
        self.facts.get_or_insert_with(|| {
            ConnectionFacts::from_url("", Dialect::Generic, "SQL", DRIVER_VERSION, options.clone())
        })
    }
}

/// The statement text of diesel's debug output, without its bound values.
pub fn statement_text(debug_query: &str) -> &str {
    match debug_query.rfind(" -- binds: ") {
        Some(i) => &debug_query[..i],
        None => debug_query,
    }
}

/// How a failed diesel query is recorded.
pub fn failure(error: &Error) -> Failure {
    match error {
        Error::DatabaseError(kind, info) => {
            let fault = matches!(
                kind,
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand
            );
            let code = xray_core::document::type_name_from_debug(kind)
                .unwrap_or_else(|| "DatabaseError".to_string());
            Failure::new(
                if fault {
                    FailureKind::Fault
                } else {
                    FailureKind::Error
                },
                code,
                info.message(),
            )
        }
        Error::BrokenTransactionManager => Failure::new(
            FailureKind::Fault,
            "BrokenTransactionManager",
            error.to_string(),
        ),
        other => Failure::new(
            FailureKind::Error,
            xray_core::document::type_name_from_debug(other).unwrap_or_else(|| "Error".to_string()),
            other.to_string(),
        ),
    }
}

impl Instrumentation for XRayInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartEstablishConnection { url, .. } => {
                self.facts = Some(connection_facts(url, self.options.clone()));
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                // A query still open (its finish never came) ends now, as cancelled.
                self.span = None;
                let Some(parent) = sampled_parent() else {
                    return;
                };
                let text = query.to_string();
                let facts = self.facts();
                let span = QuerySpan::begin_under(&parent, facts, statement_text(&text))
                    .without_row_counts();
                self.span = Some(span);
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let Some(span) = self.span.take() {
                    match error {
                        None => span.succeed(),
                        Some(e) => span.fail(failure(e)),
                    }
                }
            }
            _ => {}
        }
    }
}
