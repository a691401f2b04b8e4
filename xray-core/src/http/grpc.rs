//! gRPC over HTTP/2: telling a gRPC exchange apart and reading its status.
//!
//! A gRPC call is an HTTP/2 `POST` to `/package.Service/Method` with
//! `content-type: application/grpc` (or `application/grpc+proto`, `application/grpc;...`).
//! Its HTTP status is 200 whatever happened; the outcome is the `grpc-status` code, sent in the
//! trailers after the last message, or in the response headers of a *trailers-only* response
//! (an error before any message, which is how servers answer a failed unary call).
//!
//! Adapters detect gRPC with [`is_grpc`], read the code with [`GrpcCode::from_headers`] from
//! the response head and from the trailers, and hand it to
//! [`Exchange::record_grpc_status`](crate::lifecycle::Exchange::record_grpc_status), which
//! holds the mapping from codes to flags (see [`crate::lifecycle`]).

use std::fmt;

/// The header (and trailer) that carries a gRPC call's status code.
pub const GRPC_STATUS: &str = "grpc-status";

/// Whether a `content-type` value says gRPC: `application/grpc`, alone or followed by `+`
/// (a message format, `application/grpc+proto`) or `;` (parameters). Case is ignored.
/// `application/grpc-web` is not gRPC over HTTP/2 and does not count.
pub fn is_grpc(content_type: &[u8]) -> bool {
    const PREFIX: &[u8] = b"application/grpc";
    content_type.len() >= PREFIX.len()
        && content_type[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
        && matches!(content_type.get(PREFIX.len()), None | Some(b'+' | b';'))
}

/// Whether a request (or response) with these headers is gRPC ([`is_grpc`] on its
/// `content-type`).
pub fn is_grpc_message(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| is_grpc(v.as_bytes()))
}

/// A gRPC status code.
///
/// The seventeen codes of the gRPC specification; a code outside them reads as
/// [`Unknown`](GrpcCode::Unknown), as gRPC clients treat it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrpcCode {
    /// 0: not an error.
    Ok = 0,
    /// 1: the operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// 2: unknown error.
    Unknown = 2,
    /// 3: the client specified an invalid argument.
    InvalidArgument = 3,
    /// 4: the deadline expired before the operation could complete.
    DeadlineExceeded = 4,
    /// 5: some requested entity was not found.
    NotFound = 5,
    /// 6: the entity the client tried to create already exists.
    AlreadyExists = 6,
    /// 7: the caller may not execute the operation.
    PermissionDenied = 7,
    /// 8: some resource has been exhausted (a quota, a rate limit).
    ResourceExhausted = 8,
    /// 9: the system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// 10: the operation was aborted (a concurrency conflict).
    Aborted = 10,
    /// 11: the operation was attempted past the valid range.
    OutOfRange = 11,
    /// 12: the operation is not implemented or supported.
    Unimplemented = 12,
    /// 13: internal error.
    Internal = 13,
    /// 14: the service is currently unavailable.
    Unavailable = 14,
    /// 15: unrecoverable data loss or corruption.
    DataLoss = 15,
    /// 16: the request does not have valid authentication credentials.
    Unauthenticated = 16,
}

impl GrpcCode {
    /// Every code, in numeric order.
    pub const ALL: [GrpcCode; 17] = [
        GrpcCode::Ok,
        GrpcCode::Cancelled,
        GrpcCode::Unknown,
        GrpcCode::InvalidArgument,
        GrpcCode::DeadlineExceeded,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unimplemented,
        GrpcCode::Internal,
        GrpcCode::Unavailable,
        GrpcCode::DataLoss,
        GrpcCode::Unauthenticated,
    ];

    /// The code numbered `n`; [`Unknown`](GrpcCode::Unknown) outside `0..=16`.
    pub fn from_i32(n: i32) -> Self {
        usize::try_from(n)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(GrpcCode::Unknown)
    }

    /// Reads a `grpc-status` value (a decimal number); [`Unknown`](GrpcCode::Unknown) when it
    /// is not one of the codes.
    pub fn from_bytes(value: &[u8]) -> Self {
        let trimmed = value.trim_ascii();
        if trimmed.is_empty() || trimmed.len() > 2 || !trimmed.iter().all(u8::is_ascii_digit) {
            return GrpcCode::Unknown;
        }
        let n = trimmed
            .iter()
            .fold(0i32, |n, d| n * 10 + i32::from(d - b'0'));
        Self::from_i32(n)
    }

    /// The code in a header map (the response head of a trailers-only response, or the
    /// trailers); `None` when there is no `grpc-status`.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        headers
            .get(GRPC_STATUS)
            .map(|v| Self::from_bytes(v.as_bytes()))
    }

    /// The code's number.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code's name as the gRPC specification writes it (`NOT_FOUND`).
    pub fn as_str(self) -> &'static str {
        match self {
            GrpcCode::Ok => "OK",
            GrpcCode::Cancelled => "CANCELLED",
            GrpcCode::Unknown => "UNKNOWN",
            GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
            GrpcCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcCode::NotFound => "NOT_FOUND",
            GrpcCode::AlreadyExists => "ALREADY_EXISTS",
            GrpcCode::PermissionDenied => "PERMISSION_DENIED",
            GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcCode::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcCode::Aborted => "ABORTED",
            GrpcCode::OutOfRange => "OUT_OF_RANGE",
            GrpcCode::Unimplemented => "UNIMPLEMENTED",
            GrpcCode::Internal => "INTERNAL",
            GrpcCode::Unavailable => "UNAVAILABLE",
            GrpcCode::DataLoss => "DATA_LOSS",
            GrpcCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types_are_recognised() {
        for (value, want) in [
            (&b"application/grpc"[..], true),
            (b"application/grpc+proto", true),
            (b"application/grpc+json", true),
            (b"application/grpc; charset=utf-8", true),
            (b"Application/GRPC", true),
            (b"application/grpc-web", false),
            (b"application/grpc-web+proto", false),
            (b"application/grpcx", false),
            (b"application/json", false),
            (b"application/grp", false),
            (b"", false),
        ] {
            assert_eq!(is_grpc(value), want, "{}", String::from_utf8_lossy(value));
        }
        let mut headers = http::HeaderMap::new();
        assert!(!is_grpc_message(&headers));
        headers.insert("content-type", "application/grpc".parse().unwrap());
        assert!(is_grpc_message(&headers));
    }

    #[test]
    fn status_values_are_read_and_unknown_codes_are_unknown() {
        for (value, want) in [
            (&b"0"[..], GrpcCode::Ok),
            (b"5", GrpcCode::NotFound),
            (b"08", GrpcCode::ResourceExhausted),
            (b" 14 ", GrpcCode::Unavailable),
            (b"16", GrpcCode::Unauthenticated),
            (b"17", GrpcCode::Unknown),
            (b"99", GrpcCode::Unknown),
            (b"123", GrpcCode::Unknown),
            (b"-1", GrpcCode::Unknown),
            (b"", GrpcCode::Unknown),
            (b"OK", GrpcCode::Unknown),
        ] {
            assert_eq!(
                GrpcCode::from_bytes(value),
                want,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        for (i, code) in GrpcCode::ALL.iter().enumerate() {
            assert_eq!(code.as_i32(), i as i32);
            assert_eq!(GrpcCode::from_i32(i as i32), *code);
            assert_eq!(GrpcCode::from_bytes(i.to_string().as_bytes()), *code);
        }
        assert_eq!(GrpcCode::from_i32(-3), GrpcCode::Unknown);
        let mut trailers = http::HeaderMap::new();
        assert_eq!(GrpcCode::from_headers(&trailers), None);
        trailers.insert(GRPC_STATUS, "7".parse().unwrap());
        assert_eq!(
            GrpcCode::from_headers(&trailers),
            Some(GrpcCode::PermissionDenied)
        );
        assert_eq!(GrpcCode::PermissionDenied.to_string(), "PERMISSION_DENIED");
    }
}
