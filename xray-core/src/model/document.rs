//! The segment document: what goes over the wire to the daemon.
//!
//! One type, [`Document`], serves for segments, embedded subsegments and independent
//! subsegments; the fields that do not apply stay empty and are omitted from the JSON.
//! Documents also deserialize, so tools (the local receiver, tests) read them with the same
//! types that write them.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use serde_json::{Map, Value};
pub use smol_str::SmolStr;

use crate::id::{EntityId, TraceId};
use crate::time::Timestamp;

fn is_false(b: &bool) -> bool {
    !*b
}

/// A segment or subsegment document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Document {
    /// `"subsegment"` for an independent subsegment, absent otherwise.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Segment: the service name; subsegment: the operation or downstream name. Names of up
    /// to 23 bytes are held inline, without an allocation.
    pub name: SmolStr,
    /// The entity's id.
    pub id: EntityId,
    /// Present on segments and independent subsegments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// The caller's id (segments) or the parent entity's id (independent subsegments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<EntityId>,
    /// Start, epoch seconds.
    pub start_time: Timestamp,
    /// End, epoch seconds; absent while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// True when the entity had not ended when the document was sent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_progress: bool,
    /// `aws` or `remote` on subsegments for downstream calls; absent for local work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The end user (segments only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Where the service runs, e.g. `AWS::EC2::Instance` (segments only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// `{version, runtime, runtime_version, ...}` (segments only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Map<String, Value>>,
    /// The HTTP request and response.
    #[serde(default, skip_serializing_if = "Http::is_empty")]
    pub http: Http,
    /// AWS data: `xray`, plugin blocks on segments; operation data on AWS SDK subsegments.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub aws: Map<String, Value>,
    /// SQL query data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<Sql>,
    /// A client error (4xx) happened.
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    /// The request was throttled (429).
    #[serde(default, skip_serializing_if = "is_false")]
    pub throttle: bool,
    /// A server error (5xx) or an application error happened.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fault: bool,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// Indexed key/value pairs.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub annotations: Map<String, Value>,
    /// Namespaced, unindexed data.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Ids of subsegments that completed before this one started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub precursor_ids: Vec<EntityId>,
    /// Embedded subsegments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsegments: Vec<Document>,
    /// Blocks every segment carries (`aws.xray`, `service`, plugin data), attached by the
    /// recorder and written out by the emitter, so that copying them costs nothing on the
    /// request path. See [`Document::apply_decoration`].
    #[serde(skip)]
    pub decoration: Option<Arc<Decoration>>,
}

/// The blocks a recorder adds to every segment it sends: `aws.xray`, `service`, and what the
/// plugins found (`origin`, `aws.ec2`, ...). Shared by all segments of a recorder.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoration {
    pub(crate) aws: Map<String, Value>,
    pub(crate) service: Option<Map<String, Value>>,
    pub(crate) origin: Option<String>,
    /// `aws`'s members as JSON (`"k":v,...`, no braces), rendered once: every sampled segment
    /// writes them.
    pub(crate) aws_json: Box<[u8]>,
    /// `service` as a JSON object, rendered once.
    pub(crate) service_json: Option<Box<[u8]>>,
}

impl Decoration {
    /// Blocks to add under `aws`, a `service` block and an `origin`.
    pub fn new(
        aws: Map<String, Value>,
        service: Option<Map<String, Value>>,
        origin: Option<String>,
    ) -> Self {
        let object =
            |m: &Map<String, Value>| serde_json::to_vec(m).unwrap_or_else(|_| b"{}".to_vec());
        let mut aws_json = object(&aws);
        // Keep the members only: the writer merges them with a document's own `aws` keys.
        aws_json.pop();
        aws_json.remove(0);
        let service_json = service.as_ref().map(|m| object(m).into_boxed_slice());
        Self {
            aws,
            service,
            origin,
            aws_json: aws_json.into_boxed_slice(),
            service_json,
        }
    }
}

impl Document {
    /// A document with a fresh id, started now; fill in the other fields as needed.
    pub fn new(name: impl Into<SmolStr>) -> Self {
        Self {
            name: name.into(),
            id: EntityId::new(),
            start_time: Timestamp::now(),
            ..Self::default()
        }
    }

    /// Copies the recorder's blocks (see [`decoration`](Self::decoration)) into the document's
    /// own fields; fields already set are kept. [`to_json`](Self::to_json) and the emitters
    /// write them without this step; it is for code that inspects documents before they are
    /// sent.
    pub fn apply_decoration(&mut self) {
        let Some(d) = self.decoration.take() else {
            return;
        };
        for (k, v) in &d.aws {
            if !self.aws.contains_key(k) {
                self.aws.insert(k.clone(), v.clone());
            }
        }
        if self.service.is_none() {
            self.service.clone_from(&d.service);
        }
        if self.origin.is_none() {
            self.origin.clone_from(&d.origin);
        }
    }

    /// Compact JSON, as sent to the daemon (the recorder's blocks included).
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(512);
        self.write_json(&mut out);
        // The writer only emits UTF-8: ASCII punctuation around valid `str` contents.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the compact JSON of this document to `out` (the fast path behind
    /// [`to_json`](Self::to_json) and the emitters; same JSON as the `Serialize` impl).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        crate::json::write_document(out, self);
    }

    /// Number of subsegments embedded below this document, at any depth.
    pub fn subsegment_count(&self) -> usize {
        self.subsegments
            .iter()
            .map(|s| 1 + s.subsegment_count())
            .sum()
    }

    /// Visits this document and every embedded subsegment, depth first.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Document)) {
        f(self);
        for s in &self.subsegments {
            s.walk(f);
        }
    }
}

/// The `http` block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Http {
    /// The request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest>,
    /// The response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
}

impl Http {
    /// True when neither request nor response is set.
    pub fn is_empty(&self) -> bool {
        self.request.is_none() && self.response.is_none()
    }
}

/// `http.request`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<SmolStr>,
    /// The URL, without user info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<SmolStr>,
    /// True when `client_ip` came from `X-Forwarded-For`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub x_forwarded_for: bool,
    /// True on an outbound call whose trace header was sent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub traced: bool,
}

/// `http.response`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The body length in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
}

/// The `sql` block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Sql {
    /// `scheme://host/db`, without password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The query with values replaced by placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanitized_query: Option<String>,
    /// e.g. `PostgreSQL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_type: Option<String>,
    /// The server version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_version: Option<String>,
    /// The client library and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The database user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `statement` or `call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preparation: Option<String>,
}

/// The `cause` field: either full exception data or the id of an exception recorded elsewhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cause {
    /// The 16-hex id of an exception recorded on another entity of the trace.
    Reference(String),
    /// Exceptions recorded here.
    Exceptions(CauseData),
}

/// The object form of `cause`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CauseData {
    /// The process's working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Source paths involved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// The error and its sources, outermost first.
    #[serde(default)]
    pub exceptions: Vec<Exception>,
}

/// One exception of a cause.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Exception {
    /// 16-hex id, unique in the trace.
    pub id: EntityId,
    /// The error's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The error's type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// True when the error came from a downstream service.
    #[serde(default, skip_serializing_if = "is_false")]
    pub remote: bool,
    /// Stack frames left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u32>,
    /// Exceptions left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u32>,
    /// The id of the exception that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<EntityId>,
    /// Stack frames.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<StackFrame>,
}

/// One stack frame.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StackFrame {
    /// The source file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The line number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl StackFrame {
    /// A frame from its parts.
    pub fn new(path: Option<String>, line: Option<u32>, label: Option<String>) -> Self {
        Self { path, line, label }
    }
}

impl Exception {
    /// An exception with a fresh id.
    pub fn new(message: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            id: EntityId::new(),
            message: Some(message.into()),
            kind: Some(kind.into()),
            ..Self::default()
        }
    }

    /// An exception for a panic: type `panic`, the panic's message when it is a string.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&'static str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("panic with a non-string payload");
        Self::new(format!("panicked: {message}"), "panic")
    }

    /// Marks the exception as coming from a downstream service.
    pub fn remote(mut self, remote: bool) -> Self {
        self.remote = remote;
        self
    }
}

/// Longest error chain we record; the rest is counted in `skipped`.
const MAX_CHAIN: usize = 16;

/// Most `source()` links followed in all. A chain can be cyclic (an error whose source is
/// itself, or a loop through several): the walk stops here, and `skipped` then counts the
/// links followed past [`MAX_CHAIN`], not the (endless) rest.
const MAX_CHAIN_WALK: usize = 1024;

/// Builds exceptions from a Rust error: the error itself, then its `source()` chain.
///
/// The first exception carries `type_name` (usually `std::any::type_name::<E>()`); the types of
/// sources are not known statically, so they are taken from the leading identifier of their
/// `Debug` output (`Os { code: 111, .. }` gives `Os`). Each exception points at the next one
/// through its `cause` field.
pub fn exceptions_from_error(
    err: &(dyn std::error::Error + 'static),
    type_name: &str,
) -> Vec<Exception> {
    let mut out: Vec<Exception> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut skipped = 0u32;
    let mut walked = 0usize;
    while let Some(e) = current {
        walked += 1;
        if walked > MAX_CHAIN_WALK {
            break;
        }
        if out.len() >= MAX_CHAIN {
            skipped += 1;
        } else {
            let kind = if out.is_empty() {
                short_type_name(type_name).to_string()
            } else {
                debug_type_name(e)
            };
            let ex = Exception::new(e.to_string(), kind);
            if let Some(prev) = out.last_mut() {
                prev.cause = Some(ex.id);
            }
            out.push(ex);
        }
        current = e.source();
    }
    if skipped > 0 {
        if let Some(last) = out.last_mut() {
            last.skipped = Some(skipped);
        }
    }
    out
}

/// `std::io::Error` stays as is; `alloc::boxed::Box<dyn core::error::Error>` becomes `Box<dyn Error>`.
fn short_type_name(name: &str) -> &str {
    if name.starts_with("alloc::boxed::Box<dyn core::error::Error") {
        return "Box<dyn Error>";
    }
    name
}

fn debug_type_name(e: &dyn std::error::Error) -> String {
    type_name_from_debug(e).unwrap_or_else(|| "Error".to_string())
}

/// A type name for a value whose type is not known statically: the leading identifier of its
/// `Debug` output (`Os { code: 111, .. }` gives `Os`, `NotFound` gives `NotFound`). `None` when
/// the output does not start with a name (a bare string or number).
pub fn type_name_from_debug(value: &dyn std::fmt::Debug) -> Option<String> {
    let dbg = format!("{value:?}");
    let ident: String = dbg
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .take(100)
        .collect();
    ident
        .starts_with(|c: char| c.is_alphabetic())
        .then_some(ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("could not load config")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_chain_becomes_linked_exceptions() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        ));
        let ex = exceptions_from_error(&err, std::any::type_name::<Outer>());
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].message.as_deref(), Some("could not load config"));
        assert!(ex[0].kind.as_deref().unwrap().ends_with("Outer"));
        assert_eq!(ex[0].cause, Some(ex[1].id));
        assert_eq!(ex[1].message.as_deref(), Some("no such file"));
        assert_eq!(ex[1].kind.as_deref(), Some("Custom"));
        assert_eq!(ex[1].cause, None);
    }

    #[test]
    fn empty_fields_are_omitted() {
        let d = Document {
            name: "svc".into(),
            id: EntityId::from_u64(1).unwrap(),
            start_time: Timestamp::from_micros(1_000_000),
            end_time: Some(Timestamp::from_micros(2_000_000)),
            ..Document::default()
        };
        assert_eq!(
            d.to_json(),
            r#"{"name":"svc","id":"0000000000000001","start_time":1.000000,"end_time":2.000000}"#
        );
    }

    #[test]
    fn cause_reference_serializes_as_a_string() {
        let c = Cause::Reference("0123456789abcdef".into());
        assert_eq!(serde_json::to_string(&c).unwrap(), r#""0123456789abcdef""#);
        let back: Cause = serde_json::from_str(r#""0123456789abcdef""#).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn documents_deserialize_from_their_json() {
        let json = r#"{"name":"a","id":"53995c3f42cd8ad8","trace_id":"1-5759e988-bd862e3fe1be46a994272793","start_time":1.500000,"in_progress":true,"http":{"request":{"method":"GET"}},"subsegments":[{"name":"b","id":"53995c3f42cd8ad9","start_time":1.600000,"end_time":1.700000,"namespace":"remote"}]}"#;
        let d: Document = serde_json::from_str(json).unwrap();
        assert!(d.in_progress);
        assert_eq!(d.subsegments[0].namespace.as_deref(), Some("remote"));
        assert_eq!(d.to_json(), json);
    }
}
