//! Example services and a self-contained demo for the X-Ray crates of this workspace.
//!
//! Two binaries, `axum-service` and `actix-service`, serve the same routes (see [`routes`])
//! through the two framework adapters, so that tooling can drive either one the same way:
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | `200 ok` |
//! | `GET /status/{code}` | answers with that status |
//! | `GET /annotated` | adds annotation `example_key=example_value`, metadata and a user |
//! | `GET /work/{n}` | `n` sequential subsegments `step-1` … `step-n` (n ≤ 1000) |
//! | `GET /fanout/{n}` | `n` concurrent subsegments `fanout-1` … `fanout-n` in spawned tasks (n ≤ 100) |
//! | `GET /call?url=URL` | calls `URL` with the traced reqwest client; `200` with the downstream status as body, `502` on a transport error |
//! | `GET /dynamodb/{table}/{key}` | DynamoDB `GetItem` (partition key `id`, a string) through the traced AWS SDK client: `200` with the item as JSON, `404`, or `502` |
//! | `GET /error` | the handler returns an error: `500`, segment `fault` with the error as cause |
//! | `GET /panic` | the handler panics: `500`, segment `fault` with the panic message; the server keeps serving |
//! | `GET /db/{n}` | `n` queries (1 ≤ n ≤ 100) against `DATABASE_URL` (SQLite in memory when unset) through a traced sqlx pool: `200` with the row count, `502` when the database fails |
//!
//! Both take the options in [`ServiceArgs`] and the standard environment variables
//! (`AWS_XRAY_DAEMON_ADDRESS`, `AWS_ENDPOINT_URL`, `AWS_REGION`, `DATABASE_URL`, ...), and stop gracefully on
//! ctrl-c or SIGTERM after flushing the segments not yet sent.
//!
//! The `demo` binary runs everything in one process with an embedded `xray-local` collector
//! and prints traces as trees. The `examples/` directory holds short programs to copy from.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]

pub mod actix_app;
pub mod args;
pub mod aws;
pub mod axum_app;
pub mod db;
pub mod reply;
pub mod routes;
pub mod setup;
pub mod shutdown;

pub use args::ServiceArgs;
pub use reply::Reply;
pub use routes::AppState;

// The workspace README's code blocks run as doctests here (`cargo test --doc -p examples`):
// this crate depends on every adapter and framework they use.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
