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
//! `diesel-async` calls the hook where the query's future is built, where the request's
//! segment is current. Row counts are not part of diesel's events and are not recorded.
//!
//! The hook has no connection to ask the server's version with: `establish_pg`
//! (feature `diesel-postgres`), `establish_mysql` (feature `diesel-mysql`) and
//! `crate::diesel_async::establish` (feature `diesel-async`) connect, ask it once per server
//! and set the instrumentation; elsewhere [`XRayInstrumentation::set_database_version`]
//! gives it.
//!
//! A query diesel never reports finished (a diesel-async future dropped before its answer,
//! a bound value that failed to serialize) ends as cancelled when a query started after it
//! on the same connection finishes, or when the connection is dropped.

use std::fmt;
use std::sync::Mutex;

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
    driver_version: &'static str,
    /// Queries started and not yet finished, oldest first: one on a connection used by one
    /// query at a time, several when diesel-async pipelines queries on a shared connection.
    open: Vec<OpenQuery>,
}

/// A query in progress: its statement text's hash (to match diesel's finish event, which
/// repeats the text without the bound values) and its subsegment.
#[derive(Debug)]
struct OpenQuery {
    text: u64,
    span: QuerySpan,
}

/// Most queries kept open at once on one connection; older ones end as cancelled.
const MAX_OPEN: usize = 64;

fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Server versions learned so far, by connection URL (without its password): a connection
/// established later to the same server records the version without asking again.
static VERSIONS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn version_key(facts: &ConnectionFacts) -> String {
    facts
        .sql_url()
        .map(str::to_string)
        .unwrap_or_else(|| facts.name().to_string())
}

/// Remembers `version` for every connection to the server `facts` describe.
pub(crate) fn remember_version(facts: &ConnectionFacts, version: &str) {
    facts.set_database_version(version);
    let key = version_key(facts);
    let mut known = VERSIONS.lock().unwrap_or_else(|p| p.into_inner());
    if !known.iter().any(|(k, _)| *k == key) && known.len() < 256 {
        known.push((key, version.to_string()));
    }
}

fn known_version(facts: &ConnectionFacts) {
    let key = version_key(facts);
    let known = VERSIONS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, v)) = known.iter().find(|(k, _)| *k == key) {
        facts.set_database_version(v.as_str());
    }
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

/// The facts for a diesel connection URL: `postgres://…`, `mysql://…`, or a SQLite path
/// (with the server's version when a connection to the same server has learned it).
pub fn connection_facts(url: &str, options: SqlOptions) -> ConnectionFacts {
    facts_for(url, options, DRIVER_VERSION)
}

pub(crate) fn facts_for(url: &str, options: SqlOptions, driver: &str) -> ConnectionFacts {
    let facts = url_facts(url, options, driver);
    known_version(&facts);
    facts
}

fn url_facts(url: &str, options: SqlOptions, driver: &str) -> ConnectionFacts {
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
                driver_version: driver,
                database: Some(&name),
                ..Default::default()
            },
            options,
        );
    }
    ConnectionFacts::from_url(url, dialect, database_type, driver, options)
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
            driver_version: DRIVER_VERSION,
            open: Vec::new(),
        }
    }

    /// An instrumentation for a connection already established to `url` (its password is
    /// never recorded).
    pub fn for_url(url: &str) -> Self {
        Self::for_url_with_options(url, SqlOptions::default())
    }

    /// Like [`for_url`](Self::for_url), with options.
    pub fn for_url_with_options(url: &str, options: SqlOptions) -> Self {
        let mut i = Self::with_options(options);
        i.facts = Some(facts_for(url, i.options.clone(), i.driver_version));
        i
    }

    /// Sets what `sql.driver_version` says (`diesel-2` by default).
    pub fn driver_version(mut self, driver_version: &'static str) -> Self {
        self.driver_version = driver_version;
        if let Some(f) = &mut self.facts {
            f.set_driver_version(driver_version);
        }
        self
    }

    /// Records `version` as the server's version, for this connection and for connections
    /// established later to the same server.
    pub fn set_database_version(&self, version: &str) {
        if let Some(f) = &self.facts {
            remember_version(f, version);
        }
    }

    /// The server's version, once known.
    pub fn database_version(&self) -> Option<&str> {
        self.facts
            .as_ref()
            .and_then(ConnectionFacts::database_version)
    }

    fn facts(&mut self) -> &ConnectionFacts {
        let options = &self.options;
        let driver = self.driver_version;
        // Set on an open connection without its URL: a generic name.
        self.facts.get_or_insert_with(|| {
            ConnectionFacts::from_url("", Dialect::Generic, "SQL", driver, options.clone())
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
            let state = info.sqlstate();
            // SQLSTATE classes of a server that failed or went away: connection exception,
            // insufficient resources, operator intervention, system error, internal error.
            let server_fault = state
                .as_ref()
                .is_some_and(|s| matches!(s.class().as_str(), "08" | "53" | "57" | "58" | "XX"));
            let fault = server_fault
                || matches!(
                    kind,
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand
                );
            let code = match &state {
                Some(s) => s.as_str().to_string(),
                None => xray_core::document::type_name_from_debug(kind)
                    .unwrap_or_else(|| "DatabaseError".to_string()),
            };
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
                self.facts = Some(facts_for(url, self.options.clone(), self.driver_version));
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                let Some(parent) = sampled_parent() else {
                    return;
                };
                let text = query.to_string();
                let statement = statement_text(&text);
                let hash = text_hash(statement);
                let facts = self.facts();
                let span = QuerySpan::begin_under(&parent, facts, statement).without_row_counts();
                if self.open.len() >= MAX_OPEN {
                    // Dropped as cancelled.
                    self.open.remove(0);
                }
                self.open.push(OpenQuery { text: hash, span });
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                if self.open.is_empty() {
                    return;
                }
                let hash = text_hash(statement_text(&query.to_string()));
                let Some(i) = self.open.iter().position(|q| q.text == hash) else {
                    return;
                };
                let finished = self.open.remove(i);
                // Queries started before this one and still open were dropped by their
                // caller (diesel has no event for a dropped query): they end as cancelled.
                self.open.drain(..i);
                match error {
                    None => finished.span.succeed(),
                    Some(e) => finished.span.fail(failure(e)),
                }
            }
            _ => {}
        }
    }
}

/// Sets [`XRayInstrumentation`] on a connection just established to `url`, with the server's
/// version from `fetch` when no connection to this server has learned it yet.
#[cfg(any(feature = "diesel-postgres", feature = "diesel-mysql"))]
fn instrument<C: diesel::connection::Connection>(
    mut conn: C,
    url: &str,
    options: SqlOptions,
    fetch: impl FnOnce(&mut C) -> diesel::QueryResult<String>,
) -> C {
    let instrumentation = XRayInstrumentation::for_url_with_options(url, options);
    if instrumentation.database_version().is_none() {
        // Not recorded: whatever instrumentation the connection had is silenced meanwhile.
        conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
        if let Ok(version) = fetch(&mut conn) {
            instrumentation.set_database_version(&version);
        }
    }
    conn.set_instrumentation(instrumentation);
    conn
}

/// Connects to the PostgreSQL server at `url` with synchronous diesel (libpq) and sets
/// [`XRayInstrumentation`] on the connection, with the server's version: asked on the first
/// connection to this server (outside any subsegment), remembered for every later one.
///
/// ```no_run
/// let mut conn = xray_sql::diesel::establish_pg("postgres://app:pw@db/shop")?;
/// # Ok::<(), diesel::ConnectionError>(())
/// ```
///
/// With r2d2, the same happens in a `CustomizeConnection` that calls
/// `conn.set_instrumentation(XRayInstrumentation::for_url(url))`.
#[cfg(feature = "diesel-postgres")]
pub fn establish_pg(url: &str) -> diesel::ConnectionResult<diesel::PgConnection> {
    establish_pg_with_options(url, SqlOptions::default())
}

/// Like [`establish_pg`], with options.
#[cfg(feature = "diesel-postgres")]
pub fn establish_pg_with_options(
    url: &str,
    options: SqlOptions,
) -> diesel::ConnectionResult<diesel::PgConnection> {
    use diesel::connection::Connection;
    use diesel::RunQueryDsl;

    let conn = diesel::PgConnection::establish(url)?;
    Ok(instrument(conn, url, options, |conn| {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "current_setting('server_version')",
        ))
        .get_result::<String>(conn)
    }))
}

/// Connects to the MySQL or MariaDB server at `url` with synchronous diesel
/// (libmysqlclient or libmariadb) and sets [`XRayInstrumentation`] on the connection, with
/// the server's version, as [`establish_pg`] does.
#[cfg(feature = "diesel-mysql")]
pub fn establish_mysql(url: &str) -> diesel::ConnectionResult<diesel::MysqlConnection> {
    establish_mysql_with_options(url, SqlOptions::default())
}

/// Like [`establish_mysql`], with options.
#[cfg(feature = "diesel-mysql")]
pub fn establish_mysql_with_options(
    url: &str,
    options: SqlOptions,
) -> diesel::ConnectionResult<diesel::MysqlConnection> {
    use diesel::connection::Connection;
    use diesel::RunQueryDsl;

    let conn = diesel::MysqlConnection::establish(url)?;
    Ok(instrument(conn, url, options, |conn| {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("VERSION()"))
            .get_result::<String>(conn)
    }))
}
