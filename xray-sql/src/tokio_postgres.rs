//! tokio-postgres 0.7: a client whose queries are recorded.
//!
//! tokio-postgres has no per-query hook and its statement traits are sealed, so the
//! integration is a wrapper with the client's own methods: [`XRayClient`] wraps a
//! [`Client`], [`XRayTransaction`] a [`Transaction`]. Statements are passed as text, or as
//! the [`XRayStatement`] that [`XRayClient::prepare`] returns (a prepared
//! [`Statement`] does not carry its text, so the wrapper keeps it beside it).
//!
//! ```no_run
//! # async fn run() -> Result<(), tokio_postgres::Error> {
//! use xray_sql::tokio_postgres::XRayClient;
//!
//! let config: tokio_postgres::Config = "postgres://app@db/shop".parse()?;
//! let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
//! tokio::spawn(connection);
//! let client = XRayClient::new(client, &config);
//! let rows = client.query("SELECT id FROM orders WHERE customer = $1", &[&7_i64]).await?;
//! # drop(rows); Ok(()) }
//! ```
//!
//! What it does not see: statements run on the inner client, `COMMIT`/`ROLLBACK`, `COPY`
//! and portals.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Error, Row, Statement, Transaction};

use crate::facts::{ConnectionFacts, ConnectionParts, SqlOptions};
use crate::sanitize::Dialect;
use crate::span::{sampled_parent, Failure, FailureKind, QuerySpan};

/// What the `sql` block says for the driver.
pub const DRIVER_VERSION: &str = "tokio-postgres-0.7";

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A statement prepared by [`XRayClient::prepare`] or [`XRayTransaction::prepare`], with the
/// text it was prepared from.
#[derive(Clone, Debug)]
pub struct XRayStatement {
    statement: Statement,
    sql: Arc<str>,
}

impl XRayStatement {
    /// The prepared statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The text it was prepared from.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// A statement the wrappers accept: text (`&str`, `String`) or an [`XRayStatement`].
pub trait TracedStatement: Send + Sync {
    /// The statement's text.
    fn sql(&self) -> &str;
    /// What tokio-postgres takes.
    #[doc(hidden)]
    fn with_statement(&self) -> StatementRef<'_>;
}

/// What a [`TracedStatement`] hands to tokio-postgres.
#[doc(hidden)]
#[derive(Debug)]
pub enum StatementRef<'a> {
    /// Text, prepared by tokio-postgres for this call.
    Text(&'a str),
    /// A prepared statement.
    Prepared(&'a Statement),
}

impl TracedStatement for str {
    fn sql(&self) -> &str {
        self
    }
    fn with_statement(&self) -> StatementRef<'_> {
        StatementRef::Text(self)
    }
}

impl TracedStatement for String {
    fn sql(&self) -> &str {
        self
    }
    fn with_statement(&self) -> StatementRef<'_> {
        StatementRef::Text(self)
    }
}

impl TracedStatement for XRayStatement {
    fn sql(&self) -> &str {
        &self.sql
    }
    fn with_statement(&self) -> StatementRef<'_> {
        StatementRef::Prepared(&self.statement)
    }
}

struct Shared {
    facts: ConnectionFacts,
    version_asked: AtomicBool,
}

/// Facts from a tokio-postgres [`Config`]: `dbname@host`, `postgresql://user@host:port/db`.
pub fn connection_facts(config: &Config, options: SqlOptions) -> ConnectionFacts {
    let user = config.get_user();
    let db = config.get_dbname().or(user);
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => Some(h.as_str()),
        #[cfg(unix)]
        Some(Host::Unix(_)) => Some("localhost"),
        None => None,
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let url = host.and_then(|h| {
        let mut u = url::Url::parse("postgresql://localhost").ok()?;
        u.set_host(Some(h)).ok()?;
        u.set_port(Some(port)).ok()?;
        if let Some(user) = user {
            u.set_username(user).ok()?;
        }
        u.set_path(db.unwrap_or(""));
        Some(u.to_string())
    });
    ConnectionFacts::new(
        ConnectionParts {
            dialect: Dialect::Postgres,
            database_type: "PostgreSQL",
            driver_version: DRIVER_VERSION,
            database: db,
            host,
            user,
            url,
        },
        options,
    )
}

/// How a failed tokio-postgres call is recorded.
pub fn failure(error: &Error) -> Failure {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        let fault = ["08", "57", "53", "58", "XX"]
            .iter()
            .any(|class| code.starts_with(class));
        let kind = if fault {
            FailureKind::Fault
        } else {
            FailureKind::Error
        };
        return Failure::new(kind, code, db.message());
    }
    let io = std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>());
    if error.is_closed() || io {
        Failure::new(FailureKind::Fault, "ConnectionError", error.to_string())
    } else {
        Failure::new(FailureKind::Error, "ClientError", error.to_string())
    }
}

/// A tokio-postgres [`Client`] whose queries become X-Ray subsegments.
pub struct XRayClient {
    client: Client,
    shared: Arc<Shared>,
}

impl fmt::Debug for XRayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRayClient")
            .field("name", &self.shared.facts.name())
            .finish_non_exhaustive()
    }
}

/// Runs `call` as a recorded query of `statement`.
macro_rules! traced {
    ($shared:expr, $sql:expr, $call:expr, $rows:expr) => {{
        match sampled_parent() {
            None => $call.await,
            Some(parent) => {
                let mut span = QuerySpan::begin_under(&parent, &$shared.facts, $sql);
                // Dropped while awaiting, `span` ends as cancelled.
                let result = $call.await;
                match &result {
                    Ok(value) => {
                        let (returned, affected) = $rows(value);
                        span.add_returned(returned);
                        span.add_affected(affected);
                        span.succeed();
                    }
                    Err(e) => span.fail(failure(e)),
                }
                result
            }
        }
    }};
}

impl XRayClient {
    /// Wraps `client`, connected with `config` (for the name, URL and user), with the default
    /// options. The server's version is asked once, before the first recorded query
    /// (one round trip, outside that query's subsegment);
    /// [`set_database_version`](Self::set_database_version) gives it instead
    /// (`connection.parameter("server_version")`, read before the connection is spawned).
    pub fn new(client: Client, config: &Config) -> Self {
        Self::with_options(client, config, SqlOptions::default())
    }

    /// Wraps `client` with `options`.
    pub fn with_options(client: Client, config: &Config, options: SqlOptions) -> Self {
        Self {
            client,
            shared: Arc::new(Shared {
                facts: connection_facts(config, options),
                version_asked: AtomicBool::new(false),
            }),
        }
    }

    /// Records `version` as the server's version.
    pub fn set_database_version(&self, version: &str) {
        self.shared.facts.set_database_version(version);
    }

    /// The facts every subsegment of this client repeats.
    pub fn facts(&self) -> &ConnectionFacts {
        &self.shared.facts
    }

    /// The inner client; statements run on it directly are not recorded.
    pub fn inner(&self) -> &Client {
        &self.client
    }

    /// Before the first recorded query: asks the server its version, once (outside the
    /// query's subsegment). A server that does not answer is asked again next time.
    async fn before(&self) {
        if self.shared.facts.database_version().is_some()
            || crate::span::sampled_parent().is_none()
            || self.shared.version_asked.swap(true, Ordering::AcqRel)
        {
            return;
        }
        match self.client.query_one("SHOW server_version", &[]).await {
            Ok(row) => match row.try_get::<_, String>(0) {
                Ok(v) => self.shared.facts.set_database_version(v),
                Err(_) => self.shared.version_asked.store(false, Ordering::Release),
            },
            Err(_) => self.shared.version_asked.store(false, Ordering::Release),
        }
    }

    /// [`Client::query`], recorded.
    pub async fn query<S>(&self, statement: &S, params: Params<'_>) -> Result<Vec<Row>, Error>
    where
        S: ?Sized + TracedStatement,
    {
        self.before().await;
        traced!(
            self.shared,
            statement.sql(),
            async {
                match statement.with_statement() {
                    StatementRef::Text(s) => self.client.query(s, params).await,
                    StatementRef::Prepared(s) => self.client.query(s, params).await,
                }
            },
            |rows: &Vec<Row>| (rows.len() as u64, 0)
        )
    }

    /// [`Client::query_one`], recorded.
    pub async fn query_one<S>(&self, statement: &S, params: Params<'_>) -> Result<Row, Error>
    where
        S: ?Sized + TracedStatement,
    {
        self.before().await;
        traced!(
            self.shared,
            statement.sql(),
            async {
                match statement.with_statement() {
                    StatementRef::Text(s) => self.client.query_one(s, params).await,
                    StatementRef::Prepared(s) => self.client.query_one(s, params).await,
                }
            },
            |_: &Row| (1, 0)
        )
    }

    /// [`Client::query_opt`], recorded.
    pub async fn query_opt<S>(
        &self,
        statement: &S,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error>
    where
        S: ?Sized + TracedStatement,
    {
        self.before().await;
        traced!(
            self.shared,
            statement.sql(),
            async {
                match statement.with_statement() {
                    StatementRef::Text(s) => self.client.query_opt(s, params).await,
                    StatementRef::Prepared(s) => self.client.query_opt(s, params).await,
                }
            },
            |row: &Option<Row>| (u64::from(row.is_some()), 0)
        )
    }

    /// [`Client::execute`], recorded; returns the rows changed.
    pub async fn execute<S>(&self, statement: &S, params: Params<'_>) -> Result<u64, Error>
    where
        S: ?Sized + TracedStatement,
    {
        self.before().await;
        traced!(
            self.shared,
            statement.sql(),
            async {
                match statement.with_statement() {
                    StatementRef::Text(s) => self.client.execute(s, params).await,
                    StatementRef::Prepared(s) => self.client.execute(s, params).await,
                }
            },
            |n: &u64| (0, *n)
        )
    }

    /// [`Client::batch_execute`], recorded as one subsegment.
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.before().await;
        traced!(
            self.shared,
            sql,
            self.client.batch_execute(sql),
            |_: &()| (0, 0)
        )
    }

    /// [`Client::prepare`] (not recorded): a statement that keeps its text.
    pub async fn prepare(&self, sql: &str) -> Result<XRayStatement, Error> {
        let statement = self.client.prepare(sql).await?;
        Ok(XRayStatement {
            statement,
            sql: Arc::from(sql),
        })
    }

    /// Begins a transaction whose statements are recorded. Takes `&mut self` like
    /// [`Client::transaction`].
    pub async fn transaction(&mut self) -> Result<XRayTransaction<'_>, Error> {
        let shared = Arc::clone(&self.shared);
        Ok(XRayTransaction {
            tx: self.client.transaction().await?,
            shared,
        })
    }
}

/// A transaction begun with [`XRayClient::transaction`], with the client's query methods.
pub struct XRayTransaction<'a> {
    tx: Transaction<'a>,
    shared: Arc<Shared>,
}

impl fmt::Debug for XRayTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRayTransaction")
            .field("name", &self.shared.facts.name())
            .finish_non_exhaustive()
    }
}

impl XRayTransaction<'_> {
    /// [`Transaction::query`], recorded.
    pub async fn query<S>(&self, statement: &S, params: Params<'_>) -> Result<Vec<Row>, Error>
    where
        S: ?Sized + TracedStatement,
    {
        traced!(
            self.shared,
            statement.sql(),
            async {
                match statement.with_statement() {
                    StatementRef::Text(s) => self.tx.query(s, params).await,
                    StatementRef::Prepared(s) => self.tx.query(s, params).await,
                }
            },
            |rows: &Vec<Row>| (rows.len() as u64, 0)
        )
    }

    /// [`Transaction::execute`], recorded; returns the rows changed.
    pub async fn execute<S>(&self, statement: &S, params: Params<'_>) -> Result<u64, Error>
    where
        S: ?Sized + TracedStatement,
    {
        traced!(
            self.shared,
            statement.sql(),
            async {
                match statement.with_statement() {
                    StatementRef::Text(s) => self.tx.execute(s, params).await,
                    StatementRef::Prepared(s) => self.tx.execute(s, params).await,
                }
            },
            |n: &u64| (0, *n)
        )
    }

    /// [`Transaction::query_one`], recorded.
    pub async fn query_one<S>(&self, statement: &S, params: Params<'_>) -> Result<Row, Error>
    where
        S: ?Sized + TracedStatement,
    {
        traced!(
            self.shared,
            statement.sql(),
            async {
                match statement.with_statement() {
                    StatementRef::Text(s) => self.tx.query_one(s, params).await,
                    StatementRef::Prepared(s) => self.tx.query_one(s, params).await,
                }
            },
            |_: &Row| (1, 0)
        )
    }

    /// [`Transaction::batch_execute`], recorded as one subsegment.
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        traced!(self.shared, sql, self.tx.batch_execute(sql), |_: &()| (
            0, 0
        ))
    }

    /// [`Transaction::prepare`] (not recorded): a statement that keeps its text.
    pub async fn prepare(&self, sql: &str) -> Result<XRayStatement, Error> {
        let statement = self.tx.prepare(sql).await?;
        Ok(XRayStatement {
            statement,
            sql: Arc::from(sql),
        })
    }

    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<(), Error> {
        self.tx.rollback().await
    }

    /// The inner transaction; statements run on it directly are not recorded.
    pub fn inner(&self) -> &Transaction<'_> {
        &self.tx
    }
}
