//! Helpers for the interoperability tests of this workspace (the tests live in `tests/`).
//!
//! The tests put our services between the official AWS X-Ray SDKs and check that one trace
//! comes out: the Python SDK's patched `requests` calls our axum or actix service, whose
//! reqwest client calls a service traced by the Node SDK (express) or the Python SDK (Flask).
//! All three processes send their documents over UDP to one [`xray_local::Collector`]. Then
//! every document received is sent to the X-Ray API (`PutTraceSegments` on moto's server) and
//! read back with `BatchGetTraces`.
//!
//! - [`env`]: where the peers are (`XRAY_TEST_PYTHON`, `XRAY_TEST_NODE_MODULES`,
//!   `XRAY_TEST_MOTO_ENDPOINT`), and skipping or failing when they are not there;
//! - [`peer`]: a child process that is killed by its pid when dropped, its output kept for
//!   failure messages;
//! - [`middle`]: our service in the middle of a chain, on axum or on actix;
//! - [`chain`]: a whole chain (Python client, our service, Node or Flask callee) and the
//!   documents of one trace;
//! - [`xray_api`]: a small client of the X-Ray API, and the round trip check.
//!
//! # Running
//!
//! `scripts/test` installs the peers, starts moto's server and runs everything with
//! `XRAY_REQUIRE_PEERS=1`. By hand: `eval "$(scripts/setup-peers)"`, start
//! `$XRAY_TEST_MOTO -H 127.0.0.1 -p PORT`, export `XRAY_TEST_MOTO_ENDPOINT=http://127.0.0.1:PORT`,
//! then `cargo test -p interop`. A missing peer skips its tests with a loud message.
//!
//! # What reaches the X-Ray API
//!
//! Every document received by the collectors of this crate's tests goes through
//! `PutTraceSegments` and `BatchGetTraces` (and xray-local's validator): the chains (ours and
//! the peers' documents), every shape the recorder writes (HTTP, AWS, SQL, causes with source
//! chains, panics, annotations of every type, metadata namespaces, nested and independent
//! subsegments, a streamed segment of 100 subsegments, a continued trace), and what the axum,
//! actix and reqwest adapters write for 2xx/4xx/429/5xx/panics/refused calls/unknown routes.
//! Unsampled traces are checked to be unknown to the API. The tests of the other crates send
//! their documents to their own collectors only, which validate them but do not forward them
//! to the API.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]

pub mod chain;
pub mod env;
pub mod middle;
pub mod peer;
pub mod xray_api;

use std::time::Duration;

/// How long the tests wait for documents and peers.
pub const WAIT: Duration = Duration::from_secs(15);

/// Fails with every violation and garbage datagram the collector saw: whatever any of the
/// processes sent must be a well-formed daemon datagram that follows the X-Ray rules.
pub fn assert_no_violations(collector: &xray_local::Collector) {
    let violations = collector.violations();
    assert!(
        violations.is_empty(),
        "documents break the X-Ray rules:\n{}",
        violations
            .iter()
            .map(|v| format!("  {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(collector.garbage_count(), 0, "malformed datagrams received");
}
