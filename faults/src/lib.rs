//! Fault tests for the X-Ray SDK: every test lives in `tests/` and drives real servers on
//! loopback, a real HTTP client and a real UDP receiver (see `README.md`). The library is
//! empty.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
