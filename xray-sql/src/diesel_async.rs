//! diesel-async 0.10 on PostgreSQL: the same [`XRayInstrumentation`] on an
//! `AsyncPgConnection`, which runs on tokio-postgres (no libpq).
//!
//! diesel-async calls diesel's `Instrumentation` hook when a query is started (where the
//! query's future is built, inside the request's segment) and when its future finishes.
//! [`establish`] connects, asks the server's version once per server (unrecorded, on the
//! first connection to it), and sets the instrumentation:
//!
//! ```no_run
//! # async fn run() -> diesel::ConnectionResult<()> {
//! let mut conn = xray_sql::diesel_async::establish("postgres://app:pw@db/shop").await?;
//! # drop(conn); Ok(()) }
//! ```
//!
//! With diesel-async's pools (deadpool, bb8, mobc), one line of the manager's
//! configuration makes every pooled connection recorded:
//!
//! ```ignore
//! let mut config = diesel_async::pooled_connection::ManagerConfig::default();
//! config.custom_setup = Box::new(xray_sql::diesel_async::establish);
//! let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
//! ```
//!
//! A query whose future is dropped before it finishes (a timeout, a `select!`) gets no
//! event from diesel: its subsegment ends as cancelled (`error`, cause `Cancelled`) when a
//! query started after it on the same connection finishes, or when the connection is
//! dropped. Queries pipelined on a shared `&AsyncPgConnection` each get their own
//! subsegment.

use diesel::connection::InstrumentationEvent;
use diesel::sql_types::Text;
use diesel::ConnectionResult;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::diesel::XRayInstrumentation;
use crate::facts::SqlOptions;

/// What the `sql` block says for the driver.
pub const DRIVER_VERSION: &str = "diesel-async-0.10";

/// Connects to `url` and sets [`XRayInstrumentation`] on the connection, with the server's
/// version: asked on the first connection to this server (outside any subsegment),
/// remembered for every later one. A server that does not tell its version still gives
/// the connection, recorded without a version.
///
/// Its signature is diesel-async's pool setup callback's:
/// `config.custom_setup = Box::new(xray_sql::diesel_async::establish)`.
pub fn establish(url: &str) -> BoxFuture<'_, ConnectionResult<AsyncPgConnection>> {
    establish_with_options(url, SqlOptions::default()).boxed()
}

/// Like [`establish`], with options.
pub async fn establish_with_options(
    url: &str,
    options: SqlOptions,
) -> ConnectionResult<AsyncPgConnection> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    let instrumentation =
        XRayInstrumentation::for_url_with_options(url, options).driver_version(DRIVER_VERSION);
    if instrumentation.database_version().is_none() {
        // Not recorded: whatever instrumentation the connection had is silenced meanwhile.
        conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
        if let Ok(version) = server_version(&mut conn).await {
            instrumentation.set_database_version(&version);
        }
    }
    conn.set_instrumentation(instrumentation);
    Ok(conn)
}

/// Asks the server for its version (`server_version`, e.g. `16.4 (Debian 16.4-1)`).
pub async fn server_version(conn: &mut AsyncPgConnection) -> diesel::QueryResult<String> {
    diesel::select(diesel::dsl::sql::<Text>(
        "current_setting('server_version')",
    ))
    .get_result::<String>(conn)
    .await
}
