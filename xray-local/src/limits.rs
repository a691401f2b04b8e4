//! Every bound `xray-local` holds to, so that whatever arrives on its ports it neither falls
//! over nor grows without bound.
//!
//! Memory is counted in bytes where size matters: a datagram is at most 64 KiB on the wire,
//! but once parsed it can take many times that (an array of zeros takes 32 bytes per element
//! in memory for 2 on the wire), so stores are charged [`document_size`], an estimate of the
//! parsed document's size in memory, not the datagram's length.
//!
//! | what | library default | `xray-local` binary |
//! |---|---|---|
//! | datagrams waiting for the worker | [`QUEUE_DATAGRAMS`], [`QUEUE_BYTES`] | same |
//! | datagrams kept ([`Collector::received`](crate::Collector::received)) | [`DEFAULT_MAX_DATAGRAMS`], [`DEFAULT_MAX_DATAGRAM_BYTES`] | [`CLI_MAX_DATAGRAMS`], [`CLI_MAX_DATAGRAM_BYTES`] |
//! | traces kept | [`DEFAULT_MAX_TRACES`], [`DEFAULT_MAX_TRACE_BYTES`] | [`CLI_MAX_TRACES`], [`CLI_MAX_TRACE_BYTES`] |
//! | documents of one trace | [`DEFAULT_MAX_DOCUMENTS_PER_TRACE`], [`DEFAULT_MAX_BYTES_PER_TRACE`] | same |
//! | violations | [`MAX_VIOLATIONS`], [`MAX_VIOLATIONS_PER_TRACE`], [`MAX_VIOLATIONS_PER_DOCUMENT`] | same |
//! | complete traces waiting in a [`subscribe`](crate::Collector::subscribe) channel | [`SUBSCRIBER_BACKLOG`] | same |
//! | sampling API | [`SAMPLING_API_MAX_CONNECTIONS`], [`SAMPLING_API_REQUEST_DEADLINE`], [`SAMPLING_API_MAX_HEAD_BYTES`], [`SAMPLING_API_MAX_BODY_BYTES`], [`SAMPLING_API_MAX_STATISTICS`], [`SAMPLING_API_MAX_STATISTICS_BYTES`] | same |
//! | OTLP receiver | [`OTLP_MAX_CONNECTIONS`], [`OTLP_REQUEST_DEADLINE`], [`OTLP_MAX_HEAD_BYTES`], [`OTLP_MAX_BODY_BYTES`], [`OTLP_MAX_BODY_BYTES_IN_FLIGHT`], [`OTLP_MAX_SPANS_PER_REQUEST`] | same |
//! | nesting of subsegments in [`Trace::segment_documents`](crate::Trace::segment_documents) and `--json` | [`MAX_NESTING`] | same |
//!
//! Everything dropped or forgotten because of a limit is counted
//! ([`Collector::stats`](crate::Collector::stats)); the binary reports the counts on stderr.

use std::mem::size_of;
use std::time::Duration;

use serde_json::Value;
use xray_core::Document;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// Datagrams waiting between the receiving thread and the worker, at most; beyond, new ones
/// are dropped and counted.
pub const QUEUE_DATAGRAMS: usize = 16_384;
/// Bytes of datagrams waiting between the receiving thread and the worker, at most.
pub const QUEUE_BYTES: usize = 16 * MIB;

/// Datagrams a library [`Collector`](crate::Collector) keeps for
/// [`received`](crate::Collector::received) and [`documents`](crate::Collector::documents)
/// (the oldest are forgotten first).
pub const DEFAULT_MAX_DATAGRAMS: usize = 100_000;
/// Bytes (wire size plus [`document_size`]) of datagrams a library collector keeps.
pub const DEFAULT_MAX_DATAGRAM_BYTES: usize = 128 * MIB;
/// Traces a library collector keeps (the oldest are forgotten first).
pub const DEFAULT_MAX_TRACES: usize = 100_000;
/// Bytes of traces a library collector keeps: every document counted once while the trace is
/// open, three times once it is complete (the documents, and the assembled trace's documents
/// and entities).
pub const DEFAULT_MAX_TRACE_BYTES: usize = 512 * MIB;
/// Documents assembled into one trace; later ones are kept as datagrams only, counted and
/// reported as a violation.
pub const DEFAULT_MAX_DOCUMENTS_PER_TRACE: usize = 25_000;
/// Bytes of documents assembled into one trace.
pub const DEFAULT_MAX_BYTES_PER_TRACE: usize = 64 * MIB;

/// Datagrams the `xray-local` binary keeps (it only prints traces).
pub const CLI_MAX_DATAGRAMS: usize = 1_000;
/// Bytes of datagrams the binary keeps.
pub const CLI_MAX_DATAGRAM_BYTES: usize = 16 * MIB;
/// Traces the binary keeps.
pub const CLI_MAX_TRACES: usize = 10_000;
/// Bytes of traces the binary keeps.
pub const CLI_MAX_TRACE_BYTES: usize = 64 * MIB;

/// Violations kept in all (the oldest are forgotten first). Callbacks see every one.
pub const MAX_VIOLATIONS: usize = 10_000;
/// Violations kept for one trace.
pub const MAX_VIOLATIONS_PER_TRACE: usize = 1_000;
/// Violations reported for one document; one more says how many were left out.
pub const MAX_VIOLATIONS_PER_DOCUMENT: usize = 100;
/// Longest violation path, in bytes (an annotation key can be 60 KB long; a valid one is at most 500); longer ones are cut.
pub const MAX_VIOLATION_PATH_BYTES: usize = 1024;
/// Longest violation message, in bytes.
pub const MAX_VIOLATION_MESSAGE_BYTES: usize = 512;

/// Complete traces waiting in one [`subscribe`](crate::Collector::subscribe) channel; beyond,
/// that subscriber misses traces (counted).
pub const SUBSCRIBER_BACKLOG: usize = 1_024;

/// Levels of subsegments embedded in one document of
/// [`Trace::segment_documents`](crate::Trace::segment_documents) (and of `--json`); deeper
/// subsegments are written as independent subsegments, so the JSON reads back with parsers
/// that limit nesting (serde_json stops at 128).
pub const MAX_NESTING: usize = 32;

/// Connections the sampling API serves at once; more are closed as soon as they are accepted.
pub const SAMPLING_API_MAX_CONNECTIONS: usize = 64;
/// Time for a whole request: from the connection's start (or the previous answer) to the
/// answer, however the bytes trickle in; then the connection is closed. Also the longest a
/// kept-alive connection stays idle.
pub const SAMPLING_API_REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Largest request head (request line and headers) of the sampling API.
pub const SAMPLING_API_MAX_HEAD_BYTES: usize = 16 * KIB;
/// Largest request body of the sampling API; a larger one is answered 413.
pub const SAMPLING_API_MAX_BODY_BYTES: usize = MIB;
/// `SamplingStatisticsDocuments` entries kept by the sampling API (the oldest are forgotten).
pub const SAMPLING_API_MAX_STATISTICS: usize = 10_000;
/// Bytes ([`value_size`]) of statistics entries kept by the sampling API.
pub const SAMPLING_API_MAX_STATISTICS_BYTES: usize = 4 * MIB;

/// Per object entry, beyond its key and value: the map's own bookkeeping (a B-tree node slot).
const ENTRY_OVERHEAD: usize = 16;

/// An estimate of the memory a JSON value takes once parsed: every value node, every string's
/// bytes, every object key. Walks the value without recursion.
pub fn value_size(value: &Value) -> usize {
    let mut total = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total += size_of::<Value>();
        match v {
            Value::String(s) => total += s.len(),
            Value::Array(a) => stack.extend(a),
            Value::Object(o) => {
                for (k, v) in o {
                    total += size_of::<String>() + k.len() + ENTRY_OVERHEAD;
                    stack.push(v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    total
}

/// An estimate of the memory a document parsed from `body` takes: [`value_size`] of the
/// body plus one [`Document`] per entity (the document and each embedded subsegment).
pub fn document_size(body: &Value) -> usize {
    let mut entities = 0;
    let mut stack = vec![body];
    while let Some(v) = stack.pop() {
        entities += 1;
        if let Some(subs) = v.get("subsegments").and_then(Value::as_array) {
            stack.extend(subs);
        }
    }
    value_size(body) + entities * size_of::<Document>()
}

/// Connections the OTLP receiver serves at once; more are closed as soon as they are accepted.
pub const OTLP_MAX_CONNECTIONS: usize = 64;
/// Time for a whole OTLP request, as [`SAMPLING_API_REQUEST_DEADLINE`] for the sampling API.
pub const OTLP_REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Largest request head of the OTLP receiver.
pub const OTLP_MAX_HEAD_BYTES: usize = 16 * KIB;
/// Largest OTLP request body (X-Ray's own OTLP endpoint takes 5 MB); a larger one is
/// answered 413.
pub const OTLP_MAX_BODY_BYTES: usize = 5 * MIB;
/// Bytes of OTLP request bodies being read at once, over every connection; a request that
/// would pass it is answered 503 with `Retry-After: 1` (OTLP clients retry later).
pub const OTLP_MAX_BODY_BYTES_IN_FLIGHT: usize = 32 * MIB;
/// Spans read from one OTLP request; the rest are rejected (a partial success).
pub const OTLP_MAX_SPANS_PER_REQUEST: usize = 10_000;
