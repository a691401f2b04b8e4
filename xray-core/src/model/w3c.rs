//! W3C Trace Context (`traceparent`) ⇄ X-Ray trace header.
//!
//! The 128-bit W3C trace id maps onto the X-Ray id exactly: its first 8 hex digits are the
//! epoch part, the remaining 24 the random part (`1-5759e988-bd862e3fe1be46a994272793` ⇄
//! `5759e988bd862e3fe1be46a994272793`). The parent span id is the 16-hex parent, and the
//! `sampled` flag (bit 0 of the trace flags) maps to `Sampled=1`/`0`.
//!
//! ```
//! use xray_core::w3c::{from_traceparent, to_traceparent};
//! let h = from_traceparent("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01").unwrap();
//! assert_eq!(h.to_string(), "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
//! assert_eq!(
//!     to_traceparent(&h).unwrap(),
//!     "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
//! );
//! ```

use crate::header::{Sampled, TraceHeader};
use crate::id::{parse_hex, write_hex, EntityId, TraceId};

/// The header's name.
pub const TRACEPARENT: &str = "traceparent";
/// The companion header carrying vendor state; forwarded unchanged when present.
pub const TRACESTATE: &str = "tracestate";

/// Longest `tracestate` forwarded: the W3C recommendation says a vendor should propagate at
/// least 512 characters, and dropping longer values beats cutting list members in half.
pub const MAX_TRACESTATE_LEN: usize = 512;

/// The `tracestate` value to forward, or `None` when it is empty, longer than
/// [`MAX_TRACESTATE_LEN`], or holds characters a header value cannot carry unchanged. The
/// value is passed on as received (it belongs to other vendors), only trimmed.
pub fn forwardable_tracestate(value: &str) -> Option<&str> {
    let v = value.trim_matches([' ', '\t']);
    let printable = v.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t');
    (!v.is_empty() && v.len() <= MAX_TRACESTATE_LEN && printable).then_some(v)
}

/// Why a `traceparent` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceparentError {
    /// Not `version-traceid-parentid-flags` with the right lengths and hex digits.
    #[error("traceparent must look like 00-<32 hex>-<16 hex>-<2 hex>")]
    Shape,
    /// Version `ff` is forbidden.
    #[error("traceparent version ff is invalid")]
    Version,
    /// An all-zero trace id or parent id.
    #[error("traceparent ids must not be all zeros")]
    ZeroId,
}

/// Parses a `traceparent` header into an X-Ray trace header.
///
/// Versions other than `00` are read by their first four fields, as the W3C spec asks of
/// parsers; `ff` is refused.
pub fn from_traceparent(value: &str) -> Result<TraceHeader, TraceparentError> {
    let v = value.trim().as_bytes();
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Err(TraceparentError::Shape);
    }
    let version = parse_hex(&v[..2], 0).map_err(|_| TraceparentError::Shape)?;
    if version == 0xff {
        return Err(TraceparentError::Version);
    }
    if version == 0 && v.len() != 55 {
        return Err(TraceparentError::Shape);
    }
    if version != 0 && v.len() > 55 && v[55] != b'-' {
        return Err(TraceparentError::Shape);
    }
    // Upper-case hex is invalid in traceparent.
    if v[..55].iter().any(|b| b.is_ascii_uppercase()) {
        return Err(TraceparentError::Shape);
    }
    let trace = parse_hex(&v[3..35], 3).map_err(|_| TraceparentError::Shape)?;
    let parent = parse_hex(&v[36..52], 36).map_err(|_| TraceparentError::Shape)? as u64;
    let flags = parse_hex(&v[53..55], 53).map_err(|_| TraceparentError::Shape)?;
    if trace == 0 || parent == 0 {
        return Err(TraceparentError::ZeroId);
    }
    let root = TraceId::from_parts((trace >> 96) as u32, trace);
    let parent = EntityId::from_u64(parent).ok_or(TraceparentError::ZeroId)?;
    Ok(TraceHeader::new(
        root,
        Some(parent),
        Some(Sampled::from_bool(flags & 1 == 1)),
    ))
}

/// Writes an X-Ray trace header as `traceparent`. Needs a Root and a Parent; `Sampled=?` or a
/// missing decision is written as not sampled (W3C has no "decide for me").
pub fn to_traceparent(header: &TraceHeader) -> Option<String> {
    let root = header.root?;
    let parent = header.parent?;
    let mut trace = [0u8; 32];
    write_hex(&mut trace[..8], root.epoch_seconds() as u128);
    write_hex(&mut trace[8..], root.random_bits());
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    out.extend(trace.iter().map(|&b| b as char));
    out.push('-');
    out.extend(parent.to_bytes().iter().map(|&b| b as char));
    out.push_str(if header.sampled == Some(Sampled::Yes) {
        "-01"
    } else {
        "-00"
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::forwardable_tracestate as fwd;

    #[test]
    fn tracestate_is_forwarded_as_received_when_a_header_can_carry_it() {
        assert_eq!(fwd("congo=t61rcWkgMzE"), Some("congo=t61rcWkgMzE"));
        assert_eq!(fwd(" a=1 , b=2\t"), Some("a=1 , b=2"));
        assert_eq!(fwd(""), None);
        assert_eq!(fwd("   "), None);
        assert_eq!(fwd("a=é"), None);
        assert_eq!(fwd("a=1\nb=2"), None);
        let long = format!("k={}", "x".repeat(super::MAX_TRACESTATE_LEN));
        assert_eq!(fwd(&long), None);
        let fits = format!("k={}", "x".repeat(super::MAX_TRACESTATE_LEN - 2));
        assert_eq!(fwd(&fits), Some(fits.as_str()));
    }

    use super::*;

    #[test]
    fn traceparent_round_trips_exactly() {
        for _ in 0..1000 {
            let h = TraceHeader::new(TraceId::new(), Some(EntityId::new()), Some(Sampled::Yes));
            let tp = to_traceparent(&h).unwrap();
            assert_eq!(tp.len(), 55);
            assert_eq!(from_traceparent(&tp).unwrap(), h);
        }
        let h = TraceHeader::new(TraceId::new(), Some(EntityId::new()), Some(Sampled::No));
        assert!(to_traceparent(&h).unwrap().ends_with("-00"));
    }

    #[test]
    fn bad_traceparents_are_refused() {
        for bad in [
            "",
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8",
            "00-5759e988bd862e3fe1be46a99427279-53995c3f42cd8ad8-01",
            "00-5759E988BD862E3FE1BE46A994272793-53995c3f42cd8ad8-01",
            "00-00000000000000000000000000000000-53995c3f42cd8ad8-01",
            "00-5759e988bd862e3fe1be46a994272793-0000000000000000-01",
            "ff-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01",
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01-extra",
            "zz-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01",
        ] {
            assert!(from_traceparent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn future_versions_are_read_by_their_first_fields() {
        let h =
            from_traceparent("01-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01-whatever")
                .unwrap();
        assert_eq!(
            h.root.unwrap().to_string(),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
    }
}
