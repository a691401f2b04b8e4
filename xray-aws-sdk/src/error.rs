//! Turning a failed AWS call into X-Ray flags and a cause.
//!
//! A service error (modeled or not) is recorded with the AWS error code as the exception type,
//! its message and `remote: true`; the flags follow the status: 4xx `error`, 429 or a
//! throttling code `throttle`, 5xx `fault`. A call that got no response (connection refused,
//! timeout, ...) is a `fault` with the error chain as the cause.

use aws_smithy_runtime_api::client::interceptors::context::Error;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, OrchestratorError};
use xray_core::document::Exception;
use xray_core::Entity;

use crate::extract::{xml_element, xml_unescape};

/// Error codes that mean "slow down", as classified by the AWS SDKs' retry strategies.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// True for an AWS error code that means the caller was throttled.
pub(crate) fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// The cause of a failed call, with the flags the lifecycle cannot know set on `sub`: a
/// throttling code, or a service error under a non-error status. The caller ends the call
/// with these exceptions.
pub(crate) fn failure(
    sub: &Entity,
    err: &OrchestratorError<Error>,
    response: Option<&HttpResponse>,
) -> Vec<Exception> {
    let status = response.map(|r| r.status().as_u16());
    if let Some(op_err) = err.as_operation_error() {
        let (code, message) = response.map(error_code_and_message).unwrap_or_default();
        let display = op_err.to_string();
        let code = code
            .or_else(|| code_from_display(&display))
            .unwrap_or_else(|| "UnknownError".to_string());
        let message = message.unwrap_or(display);
        // The status already set error/throttle/fault; a service error under another status
        // (S3 can answer 200 with an error body) is still an error, not a fault.
        if !matches!(status, Some(400..=599)) {
            sub.set_error();
        }
        if is_throttling_code(&code) {
            sub.set_throttle();
        }
        return vec![Exception::new(message, code).remote(true)];
    }
    // No modeled error: the call failed in transport, timed out, or its response could not
    // be read. The first exception names the failure; its sources follow.
    let (kind, remote) = if err.is_connector_error() {
        ("ConnectorError", true)
    } else if err.is_timeout_error() {
        ("TimeoutError", true)
    } else if err.is_response_error() {
        ("ResponseError", true)
    } else if err.is_interceptor_error() {
        ("InterceptorError", false)
    } else {
        ("SdkError", false)
    };
    let root: &(dyn std::error::Error + 'static) = std::error::Error::source(err).unwrap_or(err);
    let mut exceptions = xray_core::document::exceptions_from_error(root, kind);
    for e in &mut exceptions {
        e.remote = remote;
    }
    // A response error under a 4xx keeps `error` only (the lifecycle's rule); everything else
    // here is a fault.
    exceptions
}

/// The AWS error code and message, read from the response headers and body.
///
/// JSON protocols name the error in `x-amzn-errortype` (`Code:http://...`) or in the body's
/// `__type` (`com.amazonaws.dynamodb.v20120810#ResourceNotFoundException`) or `code`; XML
/// protocols in `<Code>`. The message is `message` or `Message`.
pub(crate) fn error_code_and_message(response: &HttpResponse) -> (Option<String>, Option<String>) {
    let header_code = response
        .headers()
        .get("x-amzn-errortype")
        .map(clean_code)
        .filter(|c| !c.is_empty());
    let (body_code, message) = match response.body().bytes() {
        Some(b) if b.len() <= crate::extract::MAX_PARSED_BODY => body_code_and_message(b),
        _ => (None, None),
    };
    (header_code.or(body_code), message)
}

fn body_code_and_message(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') => {
            let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(bytes) else {
                return (None, None);
            };
            let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let code = text("__type")
                .or_else(|| text("code"))
                .or_else(|| text("Code"))
                .map(|c| clean_code(&c));
            let message = text("message")
                .or_else(|| text("Message"))
                .or_else(|| text("errorMessage"));
            (code, message)
        }
        Some(b'<') => {
            let Ok(xml) = std::str::from_utf8(bytes) else {
                return (None, None);
            };
            let code = xml_element(xml, "Code").map(xml_unescape);
            let message = xml_element(xml, "Message").map(xml_unescape);
            (code, message)
        }
        _ => (None, None),
    }
}

/// `aws.protocoltests#Code:http://internal...` → `Code`.
fn clean_code(raw: &str) -> String {
    let code = raw.split(':').next().unwrap_or(raw);
    let code = code.rsplit('#').next().unwrap_or(code);
    code.trim().to_string()
}

/// Generated error types display as `Code: message` or `unhandled error (Code)`.
fn code_from_display(display: &str) -> Option<String> {
    if let Some(rest) = display.strip_prefix("unhandled error (") {
        return rest
            .strip_suffix(')')
            .map(str::to_string)
            .filter(|c| is_identifier(c));
    }
    let head = display.split(':').next()?;
    is_identifier(head).then(|| head.to_string())
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_cleaned_of_namespaces_and_urls() {
        assert_eq!(
            clean_code("com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"),
            "ResourceNotFoundException"
        );
        assert_eq!(
            clean_code("ResourceNotFoundException:http://internal.amazon.com/coral/"),
            "ResourceNotFoundException"
        );
    }

    #[test]
    fn codes_come_from_json_and_xml_bodies() {
        let (c, m) = body_code_and_message(
            br#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"gone"}"#,
        );
        assert_eq!(c.as_deref(), Some("QueueDoesNotExist"));
        assert_eq!(m.as_deref(), Some("gone"));
        let (c, m) = body_code_and_message(
            b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>no &lt;key&gt;</Message></Error>",
        );
        assert_eq!(c.as_deref(), Some("NoSuchKey"));
        assert_eq!(m.as_deref(), Some("no <key>"));
        assert_eq!(body_code_and_message(b"\xff\xfe"), (None, None));
    }

    #[test]
    fn codes_come_from_generated_error_display() {
        assert_eq!(
            code_from_display("ResourceNotFoundException: not found").as_deref(),
            Some("ResourceNotFoundException")
        );
        assert_eq!(
            code_from_display("unhandled error (Weird)").as_deref(),
            Some("Weird")
        );
        assert_eq!(code_from_display("something went wrong here"), None);
    }

    #[test]
    fn throttling_codes_are_recognised() {
        assert!(is_throttling_code("ProvisionedThroughputExceededException"));
        assert!(is_throttling_code("SlowDown"));
        assert!(!is_throttling_code("ResourceNotFoundException"));
    }
}
