//! The model: what a trace is made of.
//!
//! - [`header`] and [`w3c`]: the trace headers that carry a trace between services;
//! - [`id`] and [`time`]: trace and entity ids, timestamps;
//! - [`document`] (written by `json`): the segment documents sent to the daemon;
//! - [`annotation`] and [`naming`]: what X-Ray accepts as annotations and names;
//! - [`stack`]: stack frames for causes, from panics and captured backtraces;
//! - `entity`: live segments and subsegments being recorded, the handles handlers hold.
//!
//! Nothing here does I/O or knows about web frameworks; the recorder, sampling and the
//! emitters build on it.

pub mod annotation;
pub mod document;
pub(crate) mod entity;
pub mod header;
pub mod id;
pub(crate) mod json;
pub mod naming;
pub mod stack;
pub mod time;
pub mod w3c;
