//! Helpers shared by the hardening tests: deep chains and large documents as daemon datagrams.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use serde_json::{json, Value};
use xray_core::emitter::DATAGRAM_HEADER;
use xray_core::time::Timestamp;
use xray_core::{Document, TraceId};

/// Subsegments nested inside one datagram of a chain (well inside serde_json's nesting limit).
pub const CHAIN_LEVELS_PER_DATAGRAM: usize = 50;

/// A 16-hex entity id from a number (never all zeros).
pub fn entity_id(n: usize) -> String {
    format!("{:016x}", n + 1)
}

/// A datagram: the header line, then the document.
pub fn datagram(doc: &Value) -> Vec<u8> {
    let mut bytes = DATAGRAM_HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(doc.to_string().as_bytes());
    bytes
}

/// Sends datagrams from one socket, pausing now and then so loopback does not drop them.
pub fn send_all(to: SocketAddr, datagrams: &[Vec<u8>]) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, d) in datagrams.iter().enumerate() {
        socket.send_to(d, to).unwrap();
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// One entity of a chain: entity `n`, its parent `n - 1`.
fn link(n: usize, t0: f64, total: usize) -> Value {
    json!({
        "name": format!("link-{n}"),
        "id": entity_id(n),
        "start_time": t0 + n as f64 * 1e-6,
        "end_time": t0 + 1.0 + (total - n) as f64 * 1e-6,
    })
}

/// A chain of `total` entities, each the only child of the one before (a segment at the top,
/// then subsegments), as top-level documents of at most [`CHAIN_LEVELS_PER_DATAGRAM`] nested
/// entities each; every document after the first is an independent subsegment whose
/// `parent_id` names the deepest entity of the document before it.
pub fn chain_documents(trace_id: TraceId, total: usize) -> Vec<Value> {
    let t0 = Timestamp::now().as_secs_f64() - 10.0;
    let mut docs = Vec::new();
    let mut start = 0;
    while start < total {
        let end = (start + CHAIN_LEVELS_PER_DATAGRAM).min(total);
        // Build the nested chain start..end from the innermost out.
        let mut inner: Option<Value> = None;
        for n in (start..end).rev() {
            let mut e = link(n, t0, total);
            if let Some(child) = inner.take() {
                e["subsegments"] = json!([child]);
            }
            inner = Some(e);
        }
        let mut top = inner.unwrap();
        top["trace_id"] = Value::from(trace_id.to_string());
        if start > 0 {
            top["type"] = Value::from("subsegment");
            top["parent_id"] = Value::from(entity_id(start - 1));
        }
        docs.push(top);
        start = end;
    }
    docs
}

/// `total` independent subsegments under one segment, each the parent of the next.
pub fn flat_chain_documents(trace_id: TraceId, total: usize) -> Vec<Document> {
    let t0 = Timestamp::now().as_secs_f64() - 10.0;
    (0..total)
        .map(|n| {
            let mut e = link(n, t0, total);
            e["trace_id"] = Value::from(trace_id.to_string());
            if n > 0 {
                e["type"] = Value::from("subsegment");
                e["parent_id"] = Value::from(entity_id(n - 1));
            }
            serde_json::from_value(e).unwrap()
        })
        .collect()
}

/// An in-progress segment of about `bytes` bytes of JSON: metadata holding one long string
/// (`array: false`) or an array of zeros (`array: true`, ten times larger in memory than on the
/// wire, the worst case for a store that counts only wire bytes).
pub fn big_in_progress_segment(trace_id: TraceId, id: usize, bytes: usize, array: bool) -> Value {
    let t = Timestamp::now().as_secs_f64();
    let payload = if array {
        Value::from(vec![0u8; bytes / 2])
    } else {
        Value::from("x".repeat(bytes))
    };
    json!({
        "name": "flood", "id": entity_id(id), "trace_id": trace_id.to_string(),
        "start_time": t, "in_progress": true,
        "metadata": {"default": {"payload": payload}},
    })
}

/// The total number of entities in nested documents, counted without recursion.
pub fn count_entities(docs: &[Value]) -> (usize, usize) {
    let mut count = 0;
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = docs.iter().map(|d| (d, 1)).collect();
    while let Some((d, depth)) = stack.pop() {
        count += 1;
        deepest = deepest.max(depth);
        if let Some(subs) = d.get("subsegments").and_then(Value::as_array) {
            stack.extend(subs.iter().map(|s| (s, depth + 1)));
        }
    }
    (count, deepest)
}
