//! Time and randomness for samplers, injectable so tests can be exact.
//!
//! Samplers read the time through a [`Clock`] and draw random numbers through a
//! [`RandomSource`]. Production code uses [`SystemClock`] and [`FastRandom`]; tests swap in a
//! [`ManualClock`] (time moves only when told) and a [`SeededRandom`] or [`FixedRandom`].
//!
//! ```
//! use std::time::Duration;
//! use xray_core::sampling::clock::{Clock, ManualClock};
//! use xray_core::time::Timestamp;
//!
//! let clock = ManualClock::new(Timestamp::from_micros(1_000_000_000_000));
//! clock.advance(Duration::from_millis(1500));
//! assert_eq!(clock.now().as_secs(), 1_000_001);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::time::Timestamp;

/// Where a sampler reads the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// The current Unix second: what per-second quotas count by. Clocks with a cheaper way
    /// to read whole seconds than [`now`](Self::now) override it.
    fn now_secs(&self) -> u64 {
        self.now().as_secs()
    }
}

/// The process clock: [`Timestamp::now`] (wall time anchored once, advanced monotonically).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    /// The coarse real-time clock's second (a few instructions; see [`Timestamp::now`] for
    /// the precise clock).
    #[inline]
    fn now_secs(&self) -> u64 {
        u64::from(crate::time::epoch_seconds_now())
    }
}

/// A clock that moves only when told to. For tests.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicU64,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            micros: AtomicU64::new(start.as_micros()),
        }
    }

    /// A clock stopped at the current wall time.
    pub fn starting_now() -> Self {
        Self::new(Timestamp::now())
    }

    /// Sets the time.
    pub fn set(&self, now: Timestamp) {
        self.micros.store(now.as_micros(), Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        self.micros
            .fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// Where a sampler draws the numbers it compares with a rule's rate.
pub trait RandomSource: Send + Sync + fmt::Debug + 'static {
    /// A number uniformly drawn from `[0, 1)`.
    fn next_f64(&self) -> f64;
}

/// A fast thread-local generator (`fastrand`); not for cryptography. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastRandom;

impl RandomSource for FastRandom {
    #[inline]
    fn next_f64(&self) -> f64 {
        fastrand::f64()
    }
}

/// A generator seeded once, giving the same sequence on every run. For tests.
#[derive(Debug)]
pub struct SeededRandom {
    rng: Mutex<fastrand::Rng>,
}

impl SeededRandom {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }
}

impl RandomSource for SeededRandom {
    fn next_f64(&self) -> f64 {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).f64()
    }
}

/// Always returns the same number (clamped to `[0, 1)`). For tests.
#[derive(Debug)]
pub struct FixedRandom {
    bits: AtomicU64,
}

impl FixedRandom {
    /// Always `value`.
    pub fn new(value: f64) -> Self {
        let r = Self {
            bits: AtomicU64::new(0),
        };
        r.set(value);
        r
    }

    /// Changes the value returned from now on.
    pub fn set(&self, value: f64) {
        let v = if value.is_finite() {
            value.clamp(0.0, 1.0 - f64::EPSILON)
        } else {
            0.0
        };
        self.bits.store(v.to_bits(), Ordering::SeqCst);
    }
}

impl RandomSource for FixedRandom {
    fn next_f64(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_micros(5_000_000));
        assert_eq!(c.now().as_secs(), 5);
        assert_eq!(c.now().as_secs(), 5);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now().as_secs(), 7);
        c.set(Timestamp::from_micros(1_000_000));
        assert_eq!(c.now().as_secs(), 1);
    }

    #[test]
    fn seeded_random_repeats_its_sequence_and_stays_in_range() {
        let a = SeededRandom::new(42);
        let b = SeededRandom::new(42);
        for _ in 0..1000 {
            let x = a.next_f64();
            assert_eq!(x, b.next_f64());
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn fixed_random_is_clamped_below_one() {
        assert!(FixedRandom::new(1.0).next_f64() < 1.0);
        assert_eq!(FixedRandom::new(-3.0).next_f64(), 0.0);
        assert_eq!(FixedRandom::new(f64::NAN).next_f64(), 0.0);
        assert_eq!(FixedRandom::new(0.25).next_f64(), 0.25);
    }
}
