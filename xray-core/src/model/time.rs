//! Wall-clock timestamps with a monotonic core.
//!
//! The wall clock is read once per process and every later timestamp is that anchor plus the
//! time elapsed on the monotonic clock, so `end_time >= start_time` holds even when the system
//! clock is stepped back while a request is in flight.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

struct Anchor {
    wall_micros: u64,
    mono_micros: u64,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor {
        wall_micros: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0),
        mono_micros: monotonic_micros(),
    })
}

/// Microseconds on the monotonic clock (the clock `std::time::Instant` reads), from an
/// arbitrary start. On Linux read straight from `CLOCK_MONOTONIC`: `Instant`'s checked
/// `timespec` arithmetic costs more than the read itself.
#[cfg(target_os = "linux")]
#[inline]
fn monotonic_micros() -> u64 {
    // A failure would read as zero, which only makes the timestamp the anchor's.
    let ts = read_clock(libc::CLOCK_MONOTONIC).unwrap_or(libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    });
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// One `clock_gettime` call: the one `unsafe` block the clocks of this module share.
#[cfg(target_os = "linux")]
#[inline]
fn read_clock(clock: libc::clockid_t) -> Option<libc::timespec> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the pointer, which points to a
    // live, writable `timespec` for the whole call; it reads nothing else. The clocks asked
    // for (CLOCK_MONOTONIC, CLOCK_REALTIME_COARSE) exist on every kernel Rust supports.
    #[allow(unsafe_code)]
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    (r == 0).then_some(ts)
}

/// Microseconds on the monotonic clock, from the first call.
#[cfg(not(target_os = "linux"))]
fn monotonic_micros() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let d = START.get_or_init(std::time::Instant::now).elapsed();
    d.as_secs() * 1_000_000 + u64::from(d.subsec_micros())
}

/// A point in time as microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Now, on the anchored monotonic clock.
    #[inline]
    pub fn now() -> Self {
        let a = anchor();
        Self(a.wall_micros + monotonic_micros().saturating_sub(a.mono_micros))
    }

    /// From microseconds since the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// From (possibly fractional) seconds since the epoch, as found in documents.
    pub fn from_secs_f64(secs: f64) -> Self {
        if secs.is_finite() && secs > 0.0 {
            Self((secs * 1_000_000.0).round() as u64)
        } else {
            Self(0)
        }
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(&self) -> u64 {
        self.0
    }

    /// Seconds since the epoch with microsecond precision, as X-Ray documents carry them.
    pub fn as_secs_f64(&self) -> f64 {
        (self.0 / 1_000_000) as f64 + (self.0 % 1_000_000) as f64 / 1_000_000.0
    }

    /// Whole seconds since the epoch.
    pub const fn as_secs(&self) -> u64 {
        self.0 / 1_000_000
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_secs_f64())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        f64::deserialize(d).map(Self::from_secs_f64)
    }
}

/// The current Unix second, for trace ids and per-second sampling quotas. On Linux it reads
/// the coarse real-time clock, which the kernel keeps current to the tick (a few
/// milliseconds): a read costs a few instructions, where a precise one costs a hundred.
#[cfg(target_os = "linux")]
pub(crate) fn epoch_seconds_now() -> u32 {
    match read_clock(libc::CLOCK_REALTIME_COARSE) {
        Some(ts) if ts.tv_sec > 0 => ts.tv_sec as u32,
        _ => Timestamp::now().as_secs() as u32,
    }
}

/// The current Unix second, for trace ids and per-second sampling quotas.
#[cfg(not(target_os = "linux"))]
pub(crate) fn epoch_seconds_now() -> u32 {
    Timestamp::now().as_secs() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_second_agrees_with_the_precise_clock() {
        let before = Timestamp::now().as_secs();
        let coarse = u64::from(epoch_seconds_now());
        let after = Timestamp::now().as_secs();
        // The coarse clock lags by at most a tick; the anchored clock may drift from the wall
        // clock by as much as the wall clock was adjusted since the process started.
        assert!(
            coarse + 2 >= before && coarse <= after + 2,
            "{before} {coarse} {after}"
        );
    }

    #[test]
    fn timestamps_never_go_backwards() {
        let mut last = Timestamp::now();
        for _ in 0..10_000 {
            let t = Timestamp::now();
            assert!(t >= last);
            last = t;
        }
    }

    #[test]
    fn serializes_with_microsecond_precision() {
        let t = Timestamp::from_micros(1_480_615_200_010_123);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1480615200.010123");
        let back: Timestamp = serde_json::from_str("1480615200.010123").unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn close_to_the_wall_clock() {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(Timestamp::now().as_secs().abs_diff(wall) <= 1);
    }
}
