//! Fuzz harness for what `xray-local`'s OTLP/HTTP receiver does with a request body: decode it
//! as an `ExportTraceServiceRequest` and read every span as an X-Ray document
//! (`xray_core::emitter::otlp::decode_request`).
//!
//! This file is also compiled into `xray-local`'s `fuzz_corpus` test (through `#[path]`),
//! which replays the stored corpus on stable Rust; keep it free of anything but `xray-core`
//! (with its `otlp` feature) and `serde_json`.

use xray_core::emitter::otlp::{decode_request, document_to_spans};

/// A request body through the decoder: never panics; every span read as a document writes
/// JSON that reads back with the same id and trace id, and maps back to spans without
/// panicking.
pub fn otlp_request(data: &[u8]) {
    let Ok(documents) = decode_request(data) else {
        return;
    };
    for doc in documents.into_iter().flatten() {
        let mut json = Vec::new();
        doc.write_json(&mut json);
        let value: serde_json::Value = serde_json::from_slice(&json)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
        assert_eq!(value["id"], doc.id.to_string());
        if let Some(trace) = doc.trace_id {
            assert_eq!(value["trace_id"], trace.to_string());
        }
        let _ = document_to_spans(&doc, None);
    }
}
