//! Sampling decisions carried by SQS messages.

use crate::header::{Sampled, TraceHeader};

/// Whether an SQS message was sent from a sampled trace, judged by its `AWSTraceHeader`
/// system attribute.
///
/// The attribute is parsed as a trace header: only a `Sampled` field equal to `1` counts.
/// `Sampled=10`, `Sampled=0`, `Sampled=?`, a header without `Sampled`, a malformed header and a
/// missing attribute all answer `false`.
///
/// ```
/// use xray_core::sampling::sqs_message_sampled;
///
/// let attr = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
/// assert!(sqs_message_sampled(Some(attr)));
/// assert!(!sqs_message_sampled(Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=10")));
/// assert!(!sqs_message_sampled(None));
/// ```
pub fn sqs_message_sampled(attribute: Option<&str>) -> bool {
    attribute
        .and_then(|a| TraceHeader::from_bytes(a.as_bytes()).ok())
        .is_some_and(|h| h.sampled == Some(Sampled::Yes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn sampled_10_is_not_sampled() {
        assert!(!sqs_message_sampled(Some(&format!("{ROOT};Sampled=10"))));
        assert!(!sqs_message_sampled(Some(&format!("{ROOT};Sampled=01"))));
        assert!(!sqs_message_sampled(Some("Sampled=1x")));
    }

    #[test]
    fn only_sampled_equal_to_one_is_sampled() {
        assert!(sqs_message_sampled(Some(&format!("{ROOT};Sampled=1"))));
        assert!(sqs_message_sampled(Some(&format!(
            " {ROOT} ; sampled = 1 ;"
        ))));
        assert!(sqs_message_sampled(Some("Sampled=1")));
        assert!(!sqs_message_sampled(Some(&format!("{ROOT};Sampled=0"))));
        assert!(!sqs_message_sampled(Some(&format!("{ROOT};Sampled=?"))));
        assert!(!sqs_message_sampled(Some(ROOT)));
        assert!(!sqs_message_sampled(Some("")));
        assert!(!sqs_message_sampled(Some("Root=garbage;Sampled=1")));
        assert!(!sqs_message_sampled(Some(&format!("{ROOT};Foo=Sampled=1"))));
    }
}
