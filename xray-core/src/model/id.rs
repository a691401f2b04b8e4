//! Trace ids and entity (segment/subsegment) ids.
//!
//! Ids come from a per-thread [`fastrand`] generator seeded from the operating system, so
//! generating one takes no lock and makes no system call on the request path.

use std::fmt;
use std::str::FromStr;

/// Why an id string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The string does not have the expected length.
    #[error("expected {expected} characters, found {found}")]
    Length {
        /// The length required.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A character is not a lower- or upper-case hexadecimal digit.
    #[error("not a hexadecimal digit at position {0}")]
    NotHex(usize),
    /// The trace id version is not `1`, or the dashes are missing.
    #[error("trace id must look like 1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx")]
    Shape,
    /// An entity id of all zeros is not a valid id.
    #[error("an id of all zeros is not valid")]
    Zero,
}

/// An X-Ray trace id: `1-` + 8 hex digits of the start epoch second + `-` + 96 random bits.
///
/// ```
/// use xray_core::TraceId;
/// let id: TraceId = "1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
/// assert_eq!(id.epoch_seconds(), 0x5759e988);
/// assert_eq!(id.to_string(), "1-5759e988-bd862e3fe1be46a994272793");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId {
    epoch: u32,
    // The 96 random bits, in two words: 16 bytes in all, where a `u128` would align the id
    // to 32.
    hi: u32,
    lo: u64,
}

const RANDOM_MASK: u128 = (1u128 << 96) - 1;

impl TraceId {
    /// A new trace id stamped with the current time.
    pub fn new() -> Self {
        Self::with_epoch(crate::time::epoch_seconds_now())
    }

    /// A new trace id with a given start epoch second and fresh random bits.
    pub fn with_epoch(epoch: u32) -> Self {
        Self {
            epoch,
            hi: fastrand::u32(..),
            lo: fastrand::u64(..),
        }
    }

    /// Builds a trace id from its two parts; only the low 96 bits of `random` are kept.
    pub const fn from_parts(epoch: u32, random: u128) -> Self {
        let random = random & RANDOM_MASK;
        Self {
            epoch,
            hi: (random >> 64) as u32,
            lo: random as u64,
        }
    }

    /// The epoch second stamped in the id.
    pub const fn epoch_seconds(&self) -> u32 {
        self.epoch
    }

    /// The 96 random bits.
    pub const fn random_bits(&self) -> u128 {
        ((self.hi as u128) << 64) | self.lo as u128
    }

    /// Parses the 35-byte form. Upper-case hex is accepted; output is always lower case.
    pub fn parse_bytes(s: &[u8]) -> Result<Self, IdError> {
        if s.len() != 35 {
            return Err(IdError::Length {
                expected: 35,
                found: s.len(),
            });
        }
        if s[0] != b'1' || s[1] != b'-' || s[10] != b'-' {
            return Err(IdError::Shape);
        }
        let epoch = parse_hex64(&s[2..10], 2)? as u32;
        let hi = parse_hex64(&s[11..19], 11)? as u32;
        let lo = parse_hex64(&s[19..35], 19)?;
        Ok(Self { epoch, hi, lo })
    }

    /// Writes the canonical 35-character form into a stack buffer.
    pub fn to_bytes(&self) -> [u8; 35] {
        let mut out = [0u8; 35];
        out[0] = b'1';
        out[1] = b'-';
        write_hex(&mut out[2..10], self.epoch as u128);
        out[10] = b'-';
        write_hex(&mut out[11..19], self.hi as u128);
        write_hex(&mut out[19..35], self.lo as u128);
        out
    }
}

impl Default for TraceId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for TraceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_bytes(s.as_bytes())
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        // The buffer holds only ASCII digits, letters and dashes.
        f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl serde::Serialize for TraceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.to_bytes();
        s.serialize_str(std::str::from_utf8(&b).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> serde::Deserialize<'de> for TraceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A segment or subsegment id: 64 random bits, never zero, written as 16 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId(u64);

impl EntityId {
    /// A fresh random id (never zero).
    pub fn new() -> Self {
        loop {
            let v = fastrand::u64(..);
            if v != 0 {
                return Self(v);
            }
        }
    }

    /// Wraps a raw value; `None` for zero, which X-Ray does not accept.
    pub const fn from_u64(v: u64) -> Option<Self> {
        if v == 0 {
            None
        } else {
            Some(Self(v))
        }
    }

    /// The raw 64-bit value.
    pub const fn as_u64(&self) -> u64 {
        self.0
    }

    /// Parses 16 hex digits (either case).
    pub fn parse_bytes(s: &[u8]) -> Result<Self, IdError> {
        if s.len() != 16 {
            return Err(IdError::Length {
                expected: 16,
                found: s.len(),
            });
        }
        let v = parse_hex64(s, 0)?;
        Self::from_u64(v).ok_or(IdError::Zero)
    }

    /// Writes the 16-character form into a stack buffer.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        write_hex(&mut out, self.0 as u128);
        out
    }
}

impl Default for EntityId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for EntityId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_bytes(s.as_bytes())
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityId({self})")
    }
}

impl serde::Serialize for EntityId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.to_bytes();
        s.serialize_str(std::str::from_utf8(&b).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> serde::Deserialize<'de> for EntityId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses 1..=32 hex digits; `offset` is only used to report the position of a bad digit.
pub(crate) fn parse_hex(s: &[u8], offset: usize) -> Result<u128, IdError> {
    let mut v: u128 = 0;
    for (i, &c) in s.iter().enumerate() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(IdError::NotHex(offset + i)),
        };
        v = (v << 4) | d as u128;
    }
    Ok(v)
}

/// Value of each byte as a hex digit, or 0xff.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Parses up to 16 hex digits into a `u64` (a table lookup per digit, no `u128`).
pub(crate) fn parse_hex64(s: &[u8], offset: usize) -> Result<u64, IdError> {
    let mut v: u64 = 0;
    let mut bad = 0u8;
    for &c in s {
        let d = HEX_VALUE[c as usize];
        bad |= d;
        v = (v << 4) | (d & 0xf) as u64;
    }
    if bad & 0xf0 != 0 {
        // Only on the error path: find which digit was wrong.
        let i = s
            .iter()
            .position(|&c| HEX_VALUE[c as usize] == 0xff)
            .unwrap_or(0);
        return Err(IdError::NotHex(offset + i));
    }
    Ok(v)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes the low `4 * out.len()` bits of `v` as lower-case hex, most significant first.
pub(crate) fn write_hex(out: &mut [u8], v: u128) {
    // In 64-bit halves: shifting a u128 a nibble at a time costs several instructions a digit.
    let split = out.len().saturating_sub(16);
    let (high, low) = out.split_at_mut(split);
    write_hex64(low, v as u64);
    write_hex64(high, (v >> 64) as u64);
}

fn write_hex64(out: &mut [u8], mut v: u64) {
    // A byte (two digits) per step from a table, then a last nibble for odd lengths.
    let mut chunks = out.rchunks_exact_mut(2);
    for pair in &mut chunks {
        pair.copy_from_slice(&HEX_PAIRS[(v & 0xff) as usize]);
        v >>= 8;
    }
    if let [digit] = chunks.into_remainder() {
        *digit = HEX[(v & 0xf) as usize];
    }
}

/// The two lower-case hex digits of every byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_written_like_format_for_every_width() {
        let values = [
            0u128,
            1,
            0xab,
            0x0123_4567_89ab_cdef,
            u128::MAX,
            0xfedc_ba98_7654_3210_0f1e_2d3c_4b5a_6978,
        ];
        for v in values {
            for width in 1..=32usize {
                let mut out = vec![0u8; width];
                write_hex(&mut out, v);
                let full = format!("{v:032x}");
                assert_eq!(
                    std::str::from_utf8(&out).unwrap(),
                    &full[32 - width..],
                    "{v:x} width {width}"
                );
            }
        }
    }

    #[test]
    fn trace_id_has_the_documented_shape() {
        let id = TraceId::new();
        let s = id.to_string();
        assert_eq!(s.len(), 35);
        assert!(s.starts_with("1-"));
        assert_eq!(&s[10..11], "-");
        assert!(s[2..10]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(s[11..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let now = crate::time::epoch_seconds_now();
        assert!(now.abs_diff(id.epoch_seconds()) <= 1);
    }

    #[test]
    fn trace_id_round_trips_and_lowercases() {
        let id: TraceId = "1-5759E988-BD862E3FE1BE46A994272793".parse().unwrap();
        assert_eq!(id.to_string(), "1-5759e988-bd862e3fe1be46a994272793");
    }

    #[test]
    fn trace_id_rejects_bad_input() {
        assert!("2-5759e988-bd862e3fe1be46a994272793"
            .parse::<TraceId>()
            .is_err());
        assert!("1-5759e988-bd862e3fe1be46a99427279"
            .parse::<TraceId>()
            .is_err());
        assert!("1-5759e988-bd862e3fe1be46a99427279g"
            .parse::<TraceId>()
            .is_err());
        assert!("1_5759e988-bd862e3fe1be46a994272793"
            .parse::<TraceId>()
            .is_err());
        assert!("".parse::<TraceId>().is_err());
    }

    #[test]
    fn entity_ids_are_sixteen_hex_and_never_zero() {
        for _ in 0..1000 {
            let id = EntityId::new();
            assert_ne!(id.as_u64(), 0);
            let s = id.to_string();
            assert_eq!(s.len(), 16);
            assert_eq!(s.parse::<EntityId>().unwrap(), id);
        }
        assert_eq!("0000000000000000".parse::<EntityId>(), Err(IdError::Zero));
        assert!("53995c3f42cd8ad".parse::<EntityId>().is_err());
    }

    #[test]
    fn ids_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(EntityId::new()));
        }
    }
}
