//! SQS consumers: continue the producer's trace while processing a message.
//!
//! A message sent from a traced request carries the `AWSTraceHeader` system attribute (the
//! same text as `X-Amzn-Trace-Id`). The consumer asks for it when receiving
//! (`message_system_attribute_names(AWSTraceHeader)`) and processes each message inside a
//! segment that continues the trace, with the producer's `SendMessage` subsegment as parent.
//!
//! ```
//! use xray_core::{emitter::MemoryEmitter, sqs, Recorder};
//! let emitter = MemoryEmitter::new();
//! let recorder = Recorder::builder().emitter(emitter.clone()).ignore_env().build().unwrap();
//! let attribute = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
//! let segment = sqs::begin_message_segment(&recorder, "order-worker", Some(attribute));
//! // ... process the message inside xray_core::context::scope(segment.clone(), ...) ...
//! segment.end();
//! let doc = &emitter.documents()[0];
//! assert_eq!(doc.parent_id.unwrap().to_string(), "53995c3f42cd8ad8");
//! ```

use crate::{Entity, Recorder, TraceHeader};

pub use crate::sampling::sqs_message_sampled;

/// The message system attribute that carries the trace header.
pub const TRACE_ATTRIBUTE: &str = "AWSTraceHeader";

/// Begins a segment for processing one message. With a usable `AWSTraceHeader` the segment
/// continues that trace under the producer's subsegment; `Sampled=1` records it, `Sampled=0`
/// does not, anything else lets the recorder's sampler decide. Without one, a new trace begins.
pub fn begin_message_segment(
    recorder: &Recorder,
    name: &str,
    trace_attribute: Option<&str>,
) -> Entity {
    let header = TraceHeader::parse_or_warn(trace_attribute.map(str::as_bytes));
    recorder.begin_segment(name, header.as_ref())
}
