//! AWS X-Ray for SQL databases: every query run inside a sampled segment becomes a `remote`
//! subsegment named `dbname@host`, with the `sql` block X-Ray defines.
//!
//! The shared parts, used by every driver integration:
//! - [`sanitize`]: the statement text with every literal replaced by `?` (on by default,
//!   see [`QueryText`]);
//! - [`ConnectionFacts`]: the subsegment's name and the `sql` fields that do not change
//!   from query to query (`url` without a password, `database_type`, `database_version`,
//!   `driver_version`, `user`);
//! - [`QuerySpan`]: one query's subsegment, ended exactly once (success, error, fault, or
//!   cancelled when the query's future is dropped).
//!
//! Driver integrations, each behind a cargo feature:
//! - `sqlx-postgres`, `sqlx-mysql`, `sqlx-sqlite`: [`sqlx::XRayPool`], a wrapper of
//!   `sqlx::Pool` that is an `Executor` itself;
//! - `tokio-postgres`: [`tokio_postgres::XRayClient`], a wrapper of `tokio_postgres::Client`
//!   with its query methods;
//! - `diesel`: [`diesel::XRayInstrumentation`], diesel's own `Instrumentation` hook;
//!   `diesel-postgres` adds `diesel::establish_pg` (libpq), `diesel-async` adds
//!   `diesel_async::establish` for diesel-async's `AsyncPgConnection`.
//!
//! Outside a sampled segment a query costs one thread-local read more than without this
//! crate: nothing is allocated and no lock is taken.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod facts;
pub mod sanitize;
pub mod span;

#[cfg(feature = "sqlx")]
pub mod sqlx;

#[cfg(feature = "tokio-postgres")]
pub mod tokio_postgres;

#[cfg(feature = "diesel")]
pub mod diesel;

#[cfg(feature = "diesel-async")]
pub mod diesel_async;

pub use facts::{redact_url, ConnectionFacts, ConnectionParts, QueryText, SqlOptions};
pub use sanitize::{sanitize_query, Dialect};
pub use span::{Failure, FailureKind, QuerySpan};

// The README's code blocks run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
