//! Fuzz harnesses for the parsers of `xray-core` (`harness`) and for what `xray-local` does
//! with the datagrams it receives (`local_harness`) and the OTLP requests it receives
//! (`otlp_harness`), and for `xray-sql`'s sanitizer (`sql_harness`).
//!
//! Each function takes arbitrary bytes, feeds them to one parser and checks the properties
//! that must hold for every input (no panic; what parses formats back to text that parses to
//! the same value). The `cargo fuzz` targets in `fuzz_targets/` call them; the `faults` crate
//! (for `harness`) and `xray-local` (for `local_harness`) replay the stored corpus through the
//! same files on stable Rust (see `FUZZING.md`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod harness;
pub mod local_harness;
pub mod otlp_harness;
pub mod sql_harness;
