//! OTLP/HTTP: segments sent as OpenTelemetry spans (cargo feature `otlp`).
//!
//! [`OtlpEmitter`] posts spans, encoded with the OpenTelemetry project's protobuf messages
//! (the [`opentelemetry_proto`] crate), to an OpenTelemetry collector, the CloudWatch agent,
//! or X-Ray's own OTLP endpoint (with the `otlp-sigv4` feature for its SigV4 signatures and
//! `otlp-tls` for HTTPS). Choose it in code with
//! [`RecorderBuilder::emitter`](crate::RecorderBuilder::emitter), or with
//! `XRAY_EXPORTER=otlp` (see [`select`](super::select)); it then reads OpenTelemetry's
//! standard variables ([`config`]).
//!
//! The mapping follows AWS's own X-Ray ⇄ OpenTelemetry translation, so X-Ray shows the spans
//! as the trace the daemon would have received:
//!
//! - trace ids convert both ways ([`trace_id_to_otlp`], [`trace_id_from_otlp`]); entity ids
//!   are span ids, parents are kept (embedded subsegments point at their enclosing entity);
//! - segments are server spans, `aws` and `remote` subsegments client spans, others internal;
//! - HTTP fields use the stable semantic conventions (`http.request.method`, `url.full`,
//!   `user_agent.original`, `client.address`, `http.response.status_code`); AWS calls carry
//!   `rpc.system=aws-api`, `aws.service`, `aws.operation`, `aws.region`, `aws.request_id`,
//!   ...; SQL uses `db.system`, `db.name`, `db.statement`, `db.user`,
//!   `db.connection_string`; the user is `enduser.id`;
//! - annotations are attributes listed in `aws.xray.annotations`, metadata namespaces
//!   `aws.xray.metadata.<namespace>` attributes holding JSON;
//! - causes are `exception` events (`exception.type`, `exception.message`,
//!   `exception.stacktrace`), faults an error status;
//! - the segment's `service`, SDK and plugin blocks and its `origin` are resource attributes
//!   (`service.name`, `service.version`, `telemetry.sdk.*`, `cloud.platform`, `host.id`,
//!   ...).
//!
//! What the conventions have no name for travels in `aws.xray.*` attributes, so that
//! [`request_to_documents`] (which `xray-local` uses to receive OTLP) gives back the
//! documents the spans were made from.

mod attrs;
pub mod config;
mod exporter;
mod from_spans;
#[cfg(feature = "otlp-sigv4")]
mod sigv4;
mod to_spans;

pub use exporter::{
    OtlpEmitter, OtlpEmitterBuilder, DEFAULT_BATCH_DELAY, DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_SPANS, DEFAULT_MAX_QUEUE_BYTES, DEFAULT_MAX_QUEUE_SPANS,
    DEFAULT_MAX_RETRY_TIME, DEFAULT_REQUEST_TIMEOUT,
};
pub use from_spans::{request_to_documents, span_to_document, SpanError};
pub use opentelemetry_proto;
#[cfg(feature = "otlp-sigv4")]
pub use sigv4::SigV4;
pub use to_spans::{
    document_to_spans, span_id_from_otlp, span_id_to_otlp, trace_id_from_otlp, trace_id_to_otlp,
    DocumentSpans,
};

/// Decodes an OTLP/HTTP protobuf body (`ExportTraceServiceRequest`) into documents, one per
/// span; spans that cannot be read come back as errors.
pub fn decode_request(
    body: &[u8],
) -> Result<Vec<Result<crate::Document, SpanError>>, prost::DecodeError> {
    use prost::Message;
    let request =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body)?;
    Ok(request_to_documents(&request))
}

/// Encodes an OTLP/HTTP protobuf response (`ExportTraceServiceResponse`), with a partial
/// success when spans were rejected, for receivers.
pub fn encode_response(rejected_spans: i64, message: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    use prost::Message;
    ExportTraceServiceResponse {
        partial_success: (rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans,
            error_message: message.to_string(),
        }),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests;
