//! Fuzz harnesses for the parsers of `xray-core`.
//!
//! Each function takes arbitrary bytes, feeds them to one parser and checks the properties
//! that must hold for every input (no panic; what parses formats back to text that parses to
//! the same value). The `cargo fuzz` targets in `fuzz_targets/` call them, and the `faults`
//! crate replays the stored corpus through the same file on stable Rust (see `FUZZING.md`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod harness;
