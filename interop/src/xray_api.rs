//! A small client of the X-Ray API (the AWS JSON protocol over HTTP, as moto's server serves
//! it), and the round trip check: every document a collector received is sent with
//! `PutTraceSegments` and must come back, unchanged, from `BatchGetTraces`.
//!
//! moto does not check signatures; the client sends a fixed `Authorization` header whose
//! credential scope names the `xray` service, which is how moto's server picks the service.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use serde_json::{json, Value};
use xray_local::Collector;

use crate::env;

/// Documents per `PutTraceSegments` call (the daemon sends at most 50 at once).
const PUT_BATCH: usize = 50;
/// Trace ids per `BatchGetTraces` call (the API's limit is 5).
const GET_BATCH: usize = 5;

/// The X-Ray API at one endpoint.
#[derive(Debug, Clone)]
pub struct XRayApi {
    endpoint: String,
    client: reqwest::Client,
}

/// What `BatchGetTraces` answered.
#[derive(Debug, Clone, Default)]
pub struct Traces {
    /// Every segment document returned, as `(Id, Document)`.
    pub segments: Vec<(String, String)>,
    /// Trace ids the service did not know.
    pub unprocessed_trace_ids: Vec<String>,
}

/// What a round trip covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundTrip {
    /// Documents sent and read back.
    pub documents: usize,
    /// Traces they belong to.
    pub traces: usize,
}

impl XRayApi {
    /// The API at `endpoint` (`http://127.0.0.1:PORT`).
    pub fn new(endpoint: impl Into<String>) -> XRayApi {
        XRayApi {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
        }
    }

    /// The API at `$XRAY_TEST_MOTO_ENDPOINT`; `None` (after a loud message) when unset.
    pub fn from_env(what: &str) -> Option<XRayApi> {
        env::moto_endpoint(what).map(XRayApi::new)
    }

    /// `PutTraceSegments`: returns the `UnprocessedTraceSegments` entries.
    pub fn put_trace_segments(&self, documents: &[String]) -> Result<Vec<Value>, String> {
        let answer = self.call(
            "TraceSegments",
            json!({ "TraceSegmentDocuments": documents }),
        )?;
        Ok(answer
            .get("UnprocessedTraceSegments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `BatchGetTraces` for up to 5 trace ids.
    pub fn batch_get_traces(&self, trace_ids: &[String]) -> Result<Traces, String> {
        let answer = self.call("Traces", json!({ "TraceIds": trace_ids }))?;
        let mut out = Traces::default();
        for trace in answer["Traces"].as_array().into_iter().flatten() {
            for seg in trace["Segments"].as_array().into_iter().flatten() {
                let id = seg["Id"].as_str().unwrap_or_default().to_string();
                let doc = seg["Document"].as_str().unwrap_or_default().to_string();
                out.segments.push((id, doc));
            }
        }
        out.unprocessed_trace_ids = answer["UnprocessedTraceIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        Ok(out)
    }

    fn call(&self, path: &str, body: Value) -> Result<Value, String> {
        let request = self
            .client
            .post(format!("{}/{path}", self.endpoint))
            .header("content-type", "application/json")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/xray/aws4_request, \
                 SignedHeaders=host, Signature=0000",
            )
            .body(body.to_string());
        block_on(async move {
            let res = request.send().await.map_err(|e| format!("{path}: {e}"))?;
            let status = res.status();
            let text = res.text().await.map_err(|e| format!("{path}: {e}"))?;
            if !status.is_success() {
                return Err(format!("{path}: HTTP {status}: {text}"));
            }
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}: {text}"))
        })
    }
}

/// Runs `fut` on a private runtime in its own thread, so that the client works from sync
/// tests and from inside another runtime alike.
fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime")
                .block_on(fut)
        })
        .join()
        .expect("the API call does not panic")
    })
}

/// The document part of every well-formed datagram the collector received, as sent.
pub fn received_documents(collector: &Collector) -> Vec<String> {
    collector
        .received()
        .into_iter()
        .filter(|r| r.document.is_some())
        .filter_map(|r| {
            let body = &r.bytes[r.bytes.iter().position(|&b| b == b'\n')? + 1..];
            Some(String::from_utf8_lossy(body).into_owned())
        })
        .collect()
}

/// Sends every document `collector` received to the X-Ray API and reads the traces back:
/// panics unless no document is left unprocessed and each trace comes back with exactly the
/// documents sent (same ids, same JSON). Call it once per collector, after the last document.
pub fn assert_round_trip(api: &XRayApi, collector: &Collector) -> RoundTrip {
    let documents = received_documents(collector);
    assert!(!documents.is_empty(), "nothing to send to the X-Ray API");
    for batch in documents.chunks(PUT_BATCH) {
        let unprocessed = api
            .put_trace_segments(batch)
            .unwrap_or_else(|e| panic!("PutTraceSegments failed: {e}"));
        assert!(
            unprocessed.is_empty(),
            "PutTraceSegments left documents unprocessed: {unprocessed:?}"
        );
    }

    let sent = by_trace(documents.iter().map(String::as_str));
    let ids: Vec<String> = sent.keys().cloned().collect();
    let mut returned = Vec::new();
    for batch in ids.chunks(GET_BATCH) {
        let traces = api
            .batch_get_traces(batch)
            .unwrap_or_else(|e| panic!("BatchGetTraces failed: {e}"));
        assert!(
            traces.unprocessed_trace_ids.is_empty(),
            "BatchGetTraces does not know traces we sent: {:?}",
            traces.unprocessed_trace_ids
        );
        for (id, doc) in &traces.segments {
            let v: Value = serde_json::from_str(doc)
                .unwrap_or_else(|e| panic!("BatchGetTraces returned bad JSON ({e}): {doc}"));
            assert_eq!(v["id"].as_str(), Some(id.as_str()), "Id and document agree");
        }
        returned.extend(traces.segments.into_iter().map(|(_, d)| d));
    }
    let got = by_trace(returned.iter().map(String::as_str));
    for (trace, docs) in &sent {
        let back = got.get(trace).cloned().unwrap_or_default();
        let sent_ids: BTreeSet<&String> = docs.keys().collect();
        let back_ids: BTreeSet<&String> = back.keys().collect();
        assert_eq!(sent_ids, back_ids, "segment ids of trace {trace} read back");
        for (id, doc) in docs {
            assert_eq!(
                back.get(id),
                Some(doc),
                "document {id} of trace {trace} read back unchanged"
            );
        }
    }
    RoundTrip {
        documents: documents.len(),
        traces: sent.len(),
    }
}

/// Documents grouped by trace id, then by id.
fn by_trace<'a>(docs: impl Iterator<Item = &'a str>) -> BTreeMap<String, BTreeMap<String, Value>> {
    let mut out: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for doc in docs {
        let v: Value = serde_json::from_str(doc).unwrap_or(Value::Null);
        let trace = v["trace_id"].as_str().unwrap_or_default().to_string();
        let id = v["id"].as_str().unwrap_or_default().to_string();
        out.entry(trace).or_default().insert(id, v);
    }
    out
}

/// The check every interop test ends with: no rule violation in anything received, then
/// (when `XRAY_TEST_MOTO_ENDPOINT` is set) the X-Ray API round trip.
pub fn finish(collector: &Collector) -> Option<RoundTrip> {
    crate::assert_no_violations(collector);
    let api = XRayApi::from_env("the X-Ray API round trip through moto")?;
    Some(assert_round_trip(&api, collector))
}
