//! A local stand-in for the X-Ray daemon: receives segment documents over UDP, keeps them, and
//! lets tests and developers look at them.
//!
//! ```
//! use xray_local::Collector;
//! let collector = Collector::start().unwrap();
//! let recorder = collector.recorder("svc");
//! recorder.begin_segment("svc", None).end();
//! let docs = collector.wait_for_documents(1, std::time::Duration::from_secs(5));
//! assert_eq!(docs[0].name, "svc");
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod collector;

pub use collector::Collector;
