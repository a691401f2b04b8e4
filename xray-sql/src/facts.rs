//! What a query's subsegment says about the database: its name (`dbname@host`) and the fixed
//! part of the `sql` block, built once per pool or connection.

use std::sync::OnceLock;

use url::Url;
use xray_core::document::Sql;

use crate::sanitize::{Dialect, DEFAULT_MAX_QUERY_BYTES};

/// Query parameters of a connection URL whose values are secrets; they never reach a trace.
const SECRET_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "sslpassword",
    "sslkey",
    "x-amz-security-token",
    "access_token",
    "auth_token",
    "api_key",
    "apikey",
];

fn is_secret_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_PARAMS.contains(&lower.as_str())
        || lower.contains("password")
        || lower.contains("secret")
        || lower.contains("token")
}

/// What the `sql` block's `sanitized_query` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueryText {
    /// The statement with every literal replaced by `?`, capped (the default; see
    /// [`crate::sanitize`]).
    #[default]
    Sanitized,
    /// No statement text at all.
    Omitted,
    /// The statement as the application wrote it, capped but otherwise unchanged: values
    /// written into the text reach the trace. Only for databases whose statements hold no
    /// secrets or personal data.
    Raw,
}

/// Options shared by every driver integration.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SqlOptions {
    /// What `sanitized_query` holds (default [`QueryText::Sanitized`]).
    pub query_text: QueryText,
    /// The cap on `sanitized_query`, in bytes (default 2 KiB).
    pub max_query_bytes: usize,
    /// The subsegment name, instead of `dbname@host`.
    pub name: Option<String>,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            query_text: QueryText::Sanitized,
            max_query_bytes: DEFAULT_MAX_QUERY_BYTES,
            name: None,
        }
    }
}

impl SqlOptions {
    /// The default options: sanitized statements of at most 2 KiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what `sanitized_query` holds.
    pub fn query_text(mut self, text: QueryText) -> Self {
        self.query_text = text;
        self
    }

    /// Sets the cap on `sanitized_query`, in bytes.
    pub fn max_query_bytes(mut self, max: usize) -> Self {
        self.max_query_bytes = max;
        self
    }

    /// Names the subsegments `name` instead of `dbname@host`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// What [`ConnectionFacts::new`] is built from.
#[derive(Clone, Debug, Default)]
pub struct ConnectionParts<'a> {
    /// How statements are read for sanitizing.
    pub dialect: Dialect,
    /// `database_type`: `PostgreSQL`, `MySQL`, `SQLite`, …
    pub database_type: &'a str,
    /// `driver_version`: the client library and its version.
    pub driver_version: &'a str,
    /// The database's name.
    pub database: Option<&'a str>,
    /// The server's host.
    pub host: Option<&'a str>,
    /// The user the connection logs in as.
    pub user: Option<&'a str>,
    /// `url`, already free of secrets (see [`redact_url`]).
    pub url: Option<String>,
}

/// The facts about one database that every query's subsegment repeats: the name and the
/// fixed fields of the `sql` block. Built once per pool or connection; the server's version
/// is filled in once, when the integration has read it.
#[derive(Debug)]
pub struct ConnectionFacts {
    name: String,
    dialect: Dialect,
    sql: Sql,
    version: OnceLock<String>,
    options: SqlOptions,
}

impl ConnectionFacts {
    /// Facts from their parts: the subsegment is named `database@host` (`database` without
    /// a host, `database` when the name is unknown too).
    pub fn new(parts: ConnectionParts<'_>, options: SqlOptions) -> Self {
        let ConnectionParts {
            dialect,
            database_type,
            driver_version,
            database,
            host,
            user,
            url,
        } = parts;
        let db = database.filter(|d| !d.is_empty()).unwrap_or("database");
        let name = match (&options.name, host.filter(|h| !h.is_empty())) {
            (Some(n), _) => n.clone(),
            (None, Some(h)) => format!("{db}@{h}"),
            (None, None) => db.to_string(),
        };
        let mut sql = Sql::default();
        sql.url = url;
        sql.database_type = Some(database_type.to_string());
        sql.driver_version = Some(driver_version.to_string());
        sql.user = user.filter(|u| !u.is_empty()).map(str::to_string);
        Self {
            name,
            dialect,
            sql,
            version: OnceLock::new(),
            options,
        }
    }

    /// Facts from a connection URL (`postgres://user:pw@host:5432/db?sslmode=disable`):
    /// name `db@host`, `url` without the password or secret parameters, `user` from the URL.
    /// A URL that does not parse gives the name `database` and no `url`.
    pub fn from_url(
        url: &str,
        dialect: Dialect,
        database_type: &str,
        driver_version: &str,
        options: SqlOptions,
    ) -> Self {
        match Url::parse(url) {
            Ok(u) => {
                let db = u
                    .path()
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .filter(|s| !s.is_empty())
                    .map(percent_decode);
                let user = (!u.username().is_empty()).then(|| percent_decode(u.username()));
                let host = u.host_str().map(str::to_string);
                Self::new(
                    ConnectionParts {
                        dialect,
                        database_type,
                        driver_version,
                        database: db.as_deref(),
                        host: host.as_deref(),
                        user: user.as_deref(),
                        url: Some(redact_url_parsed(u)),
                    },
                    options,
                )
            }
            Err(_) => Self::new(
                ConnectionParts {
                    dialect,
                    database_type,
                    driver_version,
                    ..ConnectionParts::default()
                },
                options,
            ),
        }
    }

    /// `sql.url`: the connection's URL without secrets, when there is one.
    pub fn sql_url(&self) -> Option<&str> {
        self.sql.url.as_deref()
    }

    /// Replaces `sql.driver_version`.
    #[cfg_attr(not(feature = "diesel"), allow(dead_code))]
    pub(crate) fn set_driver_version(&mut self, driver_version: &str) {
        self.sql.driver_version = Some(driver_version.to_string());
    }

    /// The subsegment name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dialect statements are sanitized in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The options.
    pub fn options(&self) -> &SqlOptions {
        &self.options
    }

    /// The server's version, once known.
    pub fn database_version(&self) -> Option<&str> {
        self.version.get().map(String::as_str)
    }

    /// Records the server's version (the first call counts).
    pub fn set_database_version(&self, version: impl Into<String>) {
        let v: String = version.into().chars().take(250).collect();
        let _ = self.version.set(v);
    }

    /// The `sql` block for one statement.
    pub fn sql_block(&self, statement: &str) -> Sql {
        let mut sql = self.sql.clone();
        sql.database_version = self.version.get().cloned();
        sql.preparation = Some(crate::sanitize::preparation(statement).to_string());
        sql.sanitized_query = match self.options.query_text {
            QueryText::Sanitized => Some(crate::sanitize::sanitize_query(
                statement,
                self.dialect,
                self.options.max_query_bytes,
            )),
            QueryText::Omitted => None,
            QueryText::Raw => {
                let mut s = String::from(statement);
                if s.len() > self.options.max_query_bytes {
                    let mut cut = self.options.max_query_bytes;
                    while cut > 0 && !s.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    s.truncate(cut);
                }
                Some(s)
            }
        };
        sql
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` without its password and without query parameters that carry secrets
/// (`password`, `sslpassword`, `token`, …); the user name is kept. Text that is not a URL
/// gives `None`.
///
/// ```
/// assert_eq!(
///     xray_sql::redact_url("postgres://app:hunter2@db:5432/shop?sslmode=disable&password=x").as_deref(),
///     Some("postgres://app@db:5432/shop?sslmode=disable"),
/// );
/// ```
pub fn redact_url(url: &str) -> Option<String> {
    Url::parse(url).ok().map(redact_url_parsed)
}

fn redact_url_parsed(mut u: Url) -> String {
    let _ = u.set_password(None);
    if u.query().is_some() {
        let kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| !is_secret_param(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_removed_and_user_kept() {
        assert_eq!(
            redact_url("postgresql://app:s3cr%40t@127.0.0.1:5432/shop").as_deref(),
            Some("postgresql://app@127.0.0.1:5432/shop")
        );
    }

    #[test]
    fn secret_parameters_are_removed() {
        assert_eq!(
            redact_url("mysql://h/db?ssl-mode=DISABLED&password=x&sslpassword=y&AuthToken=z")
                .as_deref(),
            Some("mysql://h/db?ssl-mode=DISABLED")
        );
        assert_eq!(
            redact_url("mysql://h/db?pwd=1").as_deref(),
            Some("mysql://h/db")
        );
    }

    #[test]
    fn not_a_url_gives_none() {
        assert_eq!(redact_url("host=x password=y"), None);
    }

    #[test]
    fn name_is_db_at_host() {
        let f = ConnectionFacts::from_url(
            "postgres://u:p@db.internal:5432/orders",
            Dialect::Postgres,
            "PostgreSQL",
            "sqlx-0.8",
            SqlOptions::default(),
        );
        assert_eq!(f.name(), "orders@db.internal");
        let sql = f.sql_block("SELECT 1");
        assert_eq!(
            sql.url.as_deref(),
            Some("postgres://u@db.internal:5432/orders")
        );
        assert_eq!(sql.user.as_deref(), Some("u"));
        assert_eq!(sql.sanitized_query.as_deref(), Some("SELECT ?"));
        assert_eq!(sql.preparation.as_deref(), Some("statement"));
        assert_eq!(sql.database_version, None);
        f.set_database_version("15.18");
        assert_eq!(f.sql_block("x").database_version.as_deref(), Some("15.18"));
    }

    #[test]
    fn query_text_can_be_omitted_or_raw() {
        let sqlite = ConnectionParts {
            dialect: Dialect::Sqlite,
            database_type: "SQLite",
            driver_version: "sqlx-0.8",
            ..ConnectionParts::default()
        };
        let off = ConnectionFacts::new(
            ConnectionParts {
                database: Some("app.db"),
                ..sqlite.clone()
            },
            SqlOptions::new().query_text(QueryText::Omitted),
        );
        assert_eq!(off.name(), "app.db");
        assert_eq!(off.sql_block("SELECT 'x'").sanitized_query, None);
        let raw = ConnectionFacts::new(
            sqlite,
            SqlOptions::new()
                .query_text(QueryText::Raw)
                .max_query_bytes(9),
        );
        assert_eq!(raw.name(), "database");
        assert_eq!(
            raw.sql_block("SELECT 'x' FROM t")
                .sanitized_query
                .as_deref(),
            Some("SELECT 'x")
        );
    }

    #[test]
    fn percent_decoding_survives_bad_escapes() {
        assert_eq!(percent_decode("a%20b%"), "a b%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
