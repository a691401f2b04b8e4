//! sqlx 0.8: a pool, transactions and connections whose queries are recorded.
//!
//! sqlx has no per-query hook, so the integration wraps what runs queries: [`XRayPool`]
//! wraps a [`Pool`], and `&XRayPool` is an [`Executor`] like `&Pool`. Each statement sent
//! through it (`execute`, `fetch`, `fetch_all`, `fetch_one`, `fetch_optional`, `fetch_many`,
//! prepared or not) reads the statement's text with [`Execute::sql`] before handing it to
//! sqlx. Transactions begun with [`XRayPool::begin`] and connections from
//! [`XRayPool::acquire`] are recorded the same way (`&mut *tx` becomes `&mut tx`).
//!
//! ```no_run
//! # async fn run() -> Result<(), sqlx::Error> {
//! use xray_sql::sqlx::XRayPool;
//!
//! let pool = XRayPool::new(sqlx::PgPool::connect("postgres://app@db/shop").await?);
//! let rows = sqlx::query("SELECT id FROM orders WHERE customer = $1")
//!     .bind(7_i64)
//!     .fetch_all(&pool)
//!     .await?;
//! let mut tx = pool.begin().await?;
//! sqlx::query("UPDATE orders SET paid = true WHERE id = $1").bind(1_i64).execute(&mut tx).await?;
//! tx.commit().await?;
//! # drop(rows); Ok(()) }
//! ```
//!
//! What it does not see: statements sqlx runs on its own (connection set-up, `BEGIN`,
//! `COMMIT`, `ROLLBACK`, the statement cache), `prepare`/`describe` calls (they are passed
//! through unrecorded), and queries run on the inner [`Pool`] or on connections taken from it
//! directly.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Describe, Either, Error, Execute, Executor, Pool, Transaction};

use crate::facts::{ConnectionFacts, ConnectionParts, SqlOptions};
use crate::sanitize::Dialect;
use crate::span::{sampled_parent, Failure, FailureKind, QuerySpan};

/// What the `sql` block says for the driver.
pub const DRIVER_VERSION: &str = "sqlx-0.8";

/// Seconds to wait before asking a server for its version again after it failed to answer.
const VERSION_RETRY_SECS: u64 = 30;

/// A database sqlx supports and this crate knows how to describe: implemented for
/// `sqlx::Postgres`, `sqlx::MySql` and `sqlx::Sqlite` (features `sqlx-postgres`, `sqlx-mysql`,
/// `sqlx-sqlite`).
pub trait XRayDatabase: Database {
    /// How statements are read for sanitizing.
    const DIALECT: Dialect;

    /// The name and fixed `sql` fields, from the pool's connect options.
    fn connection_facts(
        options: &<Self::Connection as sqlx::Connection>::Options,
        sql_options: SqlOptions,
    ) -> ConnectionFacts;

    /// Asks the server for its version.
    fn fetch_version(pool: Pool<Self>) -> BoxFuture<'static, Result<String, Error>>;

    /// Rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Whether a database error code means the server failed or went away (`fault`) rather
    /// than refused the statement (`error`).
    fn is_fault_code(code: &str) -> bool;

    /// The code recorded for a database error: the SQLSTATE on PostgreSQL, the error number
    /// on MySQL, the result code on SQLite.
    fn error_code(error: &dyn sqlx::error::DatabaseError) -> Option<String> {
        error.code().map(|c| c.into_owned())
    }
}

/// What every wrapper of one pool shares.
struct Shared<DB: Database> {
    facts: ConnectionFacts,
    pool: Pool<DB>,
    /// Unix seconds before which no version fetch starts; `u64::MAX` once one runs or ran.
    next_version_fetch: AtomicU64,
}

impl<DB: XRayDatabase> Shared<DB> {
    /// Starts fetching the server's version in the background when it is unknown and no
    /// fetch is running or failed recently. Needs a Tokio runtime; without one it waits for
    /// a later query.
    fn ensure_version(self: &Arc<Self>) {
        if self.facts.database_version().is_some() {
            return;
        }
        let now = unix_secs();
        let due = self.next_version_fetch.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self
            .next_version_fetch
            .compare_exchange(due, u64::MAX, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let shared = Arc::clone(self);
        handle.spawn(async move { shared.fetch_version_now().await });
    }

    async fn fetch_version_now(&self) -> Option<String> {
        match DB::fetch_version(self.pool.clone()).await {
            Ok(v) => {
                self.facts.set_database_version(v);
            }
            Err(_) => {
                self.next_version_fetch
                    .store(unix_secs() + VERSION_RETRY_SECS, Ordering::Relaxed);
            }
        }
        self.facts.database_version().map(str::to_string)
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A sqlx [`Pool`] whose queries become X-Ray subsegments. Cheap to clone, like the pool.
///
/// `&XRayPool<DB>` is an [`Executor`]: pass it where `&Pool<DB>` went. It dereferences to
/// the inner pool for everything else (`close`, `size`, …); queries run on that inner pool
/// are not recorded.
pub struct XRayPool<DB: Database> {
    shared: Arc<Shared<DB>>,
}

impl<DB: Database> Clone for XRayPool<DB> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<DB: Database> fmt::Debug for XRayPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRayPool")
            .field("name", &self.shared.facts.name())
            .field("pool", &self.shared.pool)
            .finish()
    }
}

impl<DB: XRayDatabase> XRayPool<DB> {
    /// Wraps `pool` with the default options: subsegments named `dbname@host`, statements
    /// sanitized. The server's version is fetched once, in the background (at once when a
    /// Tokio runtime is running, else with the first recorded query).
    pub fn new(pool: Pool<DB>) -> Self {
        Self::with_options(pool, SqlOptions::default())
    }

    /// Wraps `pool` with `options`.
    pub fn with_options(pool: Pool<DB>, options: SqlOptions) -> Self {
        let facts = DB::connection_facts(&pool.connect_options(), options);
        let shared = Arc::new(Shared {
            facts,
            pool,
            next_version_fetch: AtomicU64::new(0),
        });
        shared.ensure_version();
        Self { shared }
    }

    /// The inner pool.
    pub fn inner(&self) -> &Pool<DB> {
        &self.shared.pool
    }

    /// The facts every subsegment of this pool repeats.
    pub fn facts(&self) -> &ConnectionFacts {
        &self.shared.facts
    }

    /// The server's version: known already, or asked for now. `None` when the server does not
    /// answer.
    pub async fn database_version(&self) -> Option<String> {
        match self.shared.facts.database_version() {
            Some(v) => Some(v.to_string()),
            None => self.shared.fetch_version_now().await,
        }
    }

    /// Begins a transaction whose statements are recorded.
    pub async fn begin(&self) -> Result<XRayTransaction<'static, DB>, Error> {
        let tx = self.shared.pool.begin().await?;
        Ok(XRayTransaction {
            tx,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Takes a connection from the pool whose statements are recorded.
    pub async fn acquire(&self) -> Result<XRayConnection<DB>, Error> {
        let conn = self.shared.pool.acquire().await?;
        Ok(XRayConnection {
            conn,
            shared: Arc::clone(&self.shared),
        })
    }
}

impl<DB: Database> Deref for XRayPool<DB> {
    type Target = Pool<DB>;
    fn deref(&self) -> &Pool<DB> {
        &self.shared.pool
    }
}

/// A transaction begun with [`XRayPool::begin`]: `&mut tx` is an [`Executor`]. Ends with
/// [`commit`](Self::commit) or [`rollback`](Self::rollback); dropped, it rolls back.
pub struct XRayTransaction<'c, DB: Database> {
    tx: Transaction<'c, DB>,
    shared: Arc<Shared<DB>>,
}

impl<DB: Database> fmt::Debug for XRayTransaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRayTransaction")
            .field("name", &self.shared.facts.name())
            .finish_non_exhaustive()
    }
}

impl<'c, DB: Database> XRayTransaction<'c, DB> {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<(), Error> {
        self.tx.rollback().await
    }

    /// The inner transaction; statements run on it directly are not recorded.
    pub fn inner(&mut self) -> &mut Transaction<'c, DB> {
        &mut self.tx
    }
}

/// A connection taken with [`XRayPool::acquire`]: `&mut conn` is an [`Executor`]. Dropped,
/// it goes back to the pool.
pub struct XRayConnection<DB: Database> {
    conn: PoolConnection<DB>,
    shared: Arc<Shared<DB>>,
}

impl<DB: Database> fmt::Debug for XRayConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRayConnection")
            .field("name", &self.shared.facts.name())
            .finish_non_exhaustive()
    }
}

impl<DB: Database> XRayConnection<DB> {
    /// The inner connection; statements run on it directly are not recorded.
    pub fn inner(&mut self) -> &mut PoolConnection<DB> {
        &mut self.conn
    }

    /// Detaches the inner connection.
    pub fn into_inner(self) -> PoolConnection<DB> {
        self.conn
    }
}

type ManyStream<'e, DB> =
    BoxStream<'e, Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, Error>>;

/// How a failed query is recorded.
pub fn failure<DB: XRayDatabase>(error: &Error) -> Failure {
    match error {
        Error::Database(db) => {
            let code = DB::error_code(db.as_ref());
            let kind = match &code {
                Some(c) if DB::is_fault_code(c) => FailureKind::Fault,
                _ => FailureKind::Error,
            };
            Failure::new(
                kind,
                code.unwrap_or_else(|| "DatabaseError".to_string()),
                db.message(),
            )
        }
        Error::Io(e) => Failure::new(FailureKind::Fault, "Io", e.to_string()),
        Error::Tls(e) => Failure::new(FailureKind::Fault, "Tls", e.to_string()),
        Error::Protocol(m) => Failure::new(FailureKind::Fault, "Protocol", m.as_str()),
        Error::PoolTimedOut => Failure::new(FailureKind::Fault, "PoolTimedOut", error.to_string()),
        Error::PoolClosed => Failure::new(FailureKind::Fault, "PoolClosed", error.to_string()),
        Error::WorkerCrashed => {
            Failure::new(FailureKind::Fault, "WorkerCrashed", error.to_string())
        }
        other => {
            let code = xray_core::document::type_name_from_debug(other)
                .unwrap_or_else(|| "Error".to_string());
            Failure::new(FailureKind::Error, code, other.to_string())
        }
    }
}

/// Records the statements that `run` sends, when a sampled segment is current.
fn traced_many<'e, 'q: 'e, DB, E>(
    shared: &Arc<Shared<DB>>,
    query: E,
    run: impl FnOnce(E) -> ManyStream<'e, DB>,
) -> ManyStream<'e, DB>
where
    DB: XRayDatabase,
    E: 'q + Execute<'q, DB>,
{
    let Some(parent) = sampled_parent() else {
        return run(query);
    };
    shared.ensure_version();
    let span = QuerySpan::begin_under(&parent, &shared.facts, query.sql());
    Box::pin(TracedStream::<DB> {
        inner: run(query),
        span: Some(span),
        seen: false,
    })
}

fn traced_optional<'e, 'q: 'e, DB, E>(
    shared: &Arc<Shared<DB>>,
    query: E,
    run: impl FnOnce(E) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>,
) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
where
    DB: XRayDatabase,
    E: 'q + Execute<'q, DB>,
{
    let Some(parent) = sampled_parent() else {
        return run(query);
    };
    shared.ensure_version();
    let mut span = QuerySpan::begin_under(&parent, &shared.facts, query.sql());
    let fut = run(query);
    Box::pin(async move {
        // Dropped while awaiting, `span` ends as cancelled.
        let result = fut.await;
        match &result {
            Ok(row) => {
                span.add_returned(u64::from(row.is_some()));
                span.succeed();
            }
            Err(e) => span.fail(failure::<DB>(e)),
        }
        result
    })
}

/// The stream of one statement's results, ending its subsegment at the stream's end, at its
/// first error, or when dropped (cancelled when nothing had arrived yet; a caller that
/// stops reading after some results ends it as successful).
struct TracedStream<'e, DB: XRayDatabase> {
    inner: ManyStream<'e, DB>,
    span: Option<QuerySpan>,
    seen: bool,
}

impl<DB: XRayDatabase> Stream for TracedStream<'_, DB> {
    type Item = Result<Either<DB::QueryResult, DB::Row>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        match &item {
            Some(Ok(Either::Left(result))) => {
                this.seen = true;
                if let Some(s) = this.span.as_mut() {
                    s.add_affected(DB::rows_affected(result));
                }
            }
            Some(Ok(Either::Right(_))) => {
                this.seen = true;
                if let Some(s) = this.span.as_mut() {
                    s.add_returned(1);
                }
            }
            Some(Err(e)) => {
                if let Some(s) = this.span.take() {
                    s.fail(failure::<DB>(e));
                }
            }
            None => {
                if let Some(s) = this.span.take() {
                    s.succeed();
                }
            }
        }
        Poll::Ready(item)
    }
}

impl<DB: XRayDatabase> Drop for TracedStream<'_, DB> {
    fn drop(&mut self) {
        if let Some(span) = self.span.take() {
            if self.seen {
                span.succeed();
            }
            // Otherwise `span` drops here: cancelled.
        }
    }
}

impl<'p, DB> Executor<'p> for &'p XRayPool<DB>
where
    DB: XRayDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> ManyStream<'e, DB>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let pool = &self.shared.pool;
        traced_many(&self.shared, query, |q| pool.fetch_many(q))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let pool = &self.shared.pool;
        traced_optional(&self.shared, query, |q| pool.fetch_optional(q))
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, Error>>
    where
        'p: 'e,
    {
        self.shared.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<DB>, Error>>
    where
        'p: 'e,
    {
        self.shared.pool.describe(sql)
    }
}

/// `Executor` for a wrapper that holds a connection (`$conn` gives `&mut DB::Connection`).
macro_rules! connection_executor {
    ($ty:ty, $field:ident, $($lt:lifetime),*) => {
        impl<'t, $($lt,)* DB> Executor<'t> for &'t mut $ty
        where
            DB: XRayDatabase,
            for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
        {
            type Database = DB;

            fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> ManyStream<'e, DB>
            where
                't: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let conn: &'t mut DB::Connection = self.$field.deref_mut();
                traced_many(&self.shared, query, |q| conn.fetch_many(q))
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
            where
                't: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let conn: &'t mut DB::Connection = self.$field.deref_mut();
                traced_optional(&self.shared, query, |q| conn.fetch_optional(q))
            }

            fn prepare_with<'e, 'q: 'e>(
                self,
                sql: &'q str,
                parameters: &'e [DB::TypeInfo],
            ) -> BoxFuture<'e, Result<DB::Statement<'q>, Error>>
            where
                't: 'e,
            {
                self.$field.deref_mut().prepare_with(sql, parameters)
            }

            fn describe<'e, 'q: 'e>(
                self,
                sql: &'q str,
            ) -> BoxFuture<'e, Result<Describe<DB>, Error>>
            where
                't: 'e,
            {
                self.$field.deref_mut().describe(sql)
            }
        }
    };
}

connection_executor!(XRayTransaction<'c, DB>, tx, 'c);
connection_executor!(XRayConnection<DB>, conn,);

#[cfg(feature = "sqlx-sqlite")]
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string_lossy().into_owned())
}

#[cfg(any(feature = "sqlx-postgres", feature = "sqlx-mysql"))]
/// `scheme://user@host:port/db`, built from parts (so never with a password).
fn server_url(scheme: &str, user: &str, host: &str, port: u16, db: Option<&str>) -> Option<String> {
    let mut u = url::Url::parse(&format!("{scheme}://localhost")).ok()?;
    u.set_host(Some(host)).ok()?;
    u.set_port(Some(port)).ok()?;
    if !user.is_empty() {
        u.set_username(user).ok()?;
    }
    u.set_path(db.unwrap_or(""));
    Some(u.to_string())
}

#[cfg(feature = "sqlx-postgres")]
impl XRayDatabase for sqlx::Postgres {
    const DIALECT: Dialect = Dialect::Postgres;

    fn connection_facts(
        options: &sqlx::postgres::PgConnectOptions,
        sql_options: SqlOptions,
    ) -> ConnectionFacts {
        let user = options.get_username();
        let db = options.get_database().unwrap_or(user);
        let host = if options.get_socket().is_some() {
            "localhost"
        } else {
            options.get_host()
        };
        ConnectionFacts::new(
            ConnectionParts {
                dialect: Self::DIALECT,
                database_type: "PostgreSQL",
                driver_version: DRIVER_VERSION,
                database: Some(db),
                host: Some(host),
                user: Some(user),
                url: server_url("postgresql", user, host, options.get_port(), Some(db)),
            },
            sql_options,
        )
    }

    fn fetch_version(pool: Pool<Self>) -> BoxFuture<'static, Result<String, Error>> {
        Box::pin(async move {
            sqlx::query_scalar::<_, String>("SHOW server_version")
                .fetch_one(&pool)
                .await
        })
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn is_fault_code(code: &str) -> bool {
        // Connection exceptions, operator intervention (shutdown, terminated backend,
        // cancelled statement), insufficient resources, system errors, internal errors.
        ["08", "57", "53", "58", "XX"]
            .iter()
            .any(|class| code.starts_with(class))
    }
}

#[cfg(feature = "sqlx-mysql")]
impl XRayDatabase for sqlx::MySql {
    const DIALECT: Dialect = Dialect::MySql;

    fn connection_facts(
        options: &sqlx::mysql::MySqlConnectOptions,
        sql_options: SqlOptions,
    ) -> ConnectionFacts {
        let user = options.get_username();
        let db = options.get_database();
        let host = if options.get_socket().is_some() {
            "localhost"
        } else {
            options.get_host()
        };
        ConnectionFacts::new(
            ConnectionParts {
                dialect: Self::DIALECT,
                database_type: "MySQL",
                driver_version: DRIVER_VERSION,
                database: db,
                host: Some(host),
                user: Some(user),
                url: server_url("mysql", user, host, options.get_port(), db),
            },
            sql_options,
        )
    }

    fn fetch_version(pool: Pool<Self>) -> BoxFuture<'static, Result<String, Error>> {
        Box::pin(async move {
            sqlx::query_scalar::<_, String>("SELECT VERSION()")
                .fetch_one(&pool)
                .await
        })
    }

    fn rows_affected(result: &sqlx::mysql::MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

    fn error_code(error: &dyn sqlx::error::DatabaseError) -> Option<String> {
        match error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            Some(e) => Some(e.number().to_string()),
            None => error.code().map(|c| c.into_owned()),
        }
    }

    fn is_fault_code(code: &str) -> bool {
        // Too many connections, shutdown in progress, lock wait timeout, query interrupted,
        // connection killed, statement timeout.
        matches!(
            code,
            "1040" | "1053" | "1205" | "1317" | "1927" | "3024" | "08S01"
        )
    }
}

#[cfg(feature = "sqlx-sqlite")]
impl XRayDatabase for sqlx::Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;

    fn connection_facts(
        options: &sqlx::sqlite::SqliteConnectOptions,
        sql_options: SqlOptions,
    ) -> ConnectionFacts {
        let path = options.get_filename();
        let name = path.to_string_lossy();
        let db = if name.starts_with("file:sqlx-in-memory") || name == ":memory:" {
            "memory".to_string()
        } else {
            file_name(path)
        };
        ConnectionFacts::new(
            ConnectionParts {
                dialect: Self::DIALECT,
                database_type: "SQLite",
                driver_version: DRIVER_VERSION,
                database: Some(&db),
                host: None,
                user: None,
                url: None,
            },
            sql_options,
        )
    }

    fn fetch_version(pool: Pool<Self>) -> BoxFuture<'static, Result<String, Error>> {
        Box::pin(async move {
            sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
                .fetch_one(&pool)
                .await
        })
    }

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn is_fault_code(code: &str) -> bool {
        // Primary result codes: busy and locked (a lock wait that timed out), I/O error,
        // corrupt, full, cannot open.
        code.parse::<u32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 11 | 13 | 14))
    }
}
