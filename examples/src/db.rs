//! The database behind `GET /db/{n}`: the one at `DATABASE_URL` (PostgreSQL, MySQL/MariaDB
//! or SQLite), or SQLite in memory when it is unset, through a traced [`XRayPool`].

use std::time::Duration;

use xray_sql::sqlx::XRayPool;

/// The environment variable that names the database.
pub const DATABASE_URL: &str = "DATABASE_URL";

/// A traced pool of one of the supported databases.
#[derive(Clone, Debug)]
pub enum Database {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres(XRayPool<sqlx::Postgres>),
    /// MySQL or MariaDB (`mysql://`, `mariadb://`).
    MySql(XRayPool<sqlx::MySql>),
    /// SQLite (`sqlite:`).
    Sqlite(XRayPool<sqlx::Sqlite>),
}

/// A pool for `url` (SQLite in memory when `None`). Connections are opened when a query
/// needs one, so a database that is down does not stop the service from starting: its
/// queries fail instead. `Err` for a URL no driver accepts.
pub fn connect(url: Option<&str>) -> Result<Database, sqlx::Error> {
    let url = url.filter(|u| !u.is_empty()).unwrap_or("sqlite::memory:");
    let timeout = Duration::from_secs(5);
    Ok(
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Database::Postgres(XRayPool::new(
                sqlx::postgres::PgPoolOptions::new()
                    .acquire_timeout(timeout)
                    .connect_lazy(url)?,
            ))
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            let url = url.replacen("mariadb:", "mysql:", 1);
            Database::MySql(XRayPool::new(
                sqlx::mysql::MySqlPoolOptions::new()
                    .acquire_timeout(timeout)
                    .connect_lazy(&url)?,
            ))
        } else {
            Database::Sqlite(XRayPool::new(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .acquire_timeout(timeout)
                    // An in-memory database lives as long as its connection: keep one open.
                    .min_connections(1)
                    .connect_lazy(url)?,
            ))
        },
    )
}

impl Database {
    /// Runs `n` queries of one row each; returns the rows read.
    pub async fn run_queries(&self, n: u32) -> Result<u64, sqlx::Error> {
        let mut rows = 0u64;
        for i in 0..n {
            rows += match self {
                Database::Postgres(pool) => sqlx::query("SELECT $1::int4 AS n")
                    .bind(i as i32)
                    .fetch_all(pool)
                    .await?
                    .len(),
                Database::MySql(pool) => sqlx::query("SELECT ? AS n")
                    .bind(i)
                    .fetch_all(pool)
                    .await?
                    .len(),
                Database::Sqlite(pool) => sqlx::query("SELECT ?1 AS n")
                    .bind(i)
                    .fetch_all(pool)
                    .await?
                    .len(),
            } as u64;
        }
        Ok(rows)
    }
}
