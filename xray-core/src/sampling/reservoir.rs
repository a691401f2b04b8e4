//! A per-second reservoir without locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Lets through at most `per_second` requests in each wall-clock second.
///
/// The current second and the count taken in it are packed in one atomic word and updated
/// with compare-and-swap, so the count is exact under concurrency and no lock is taken.
#[derive(Debug)]
pub struct Reservoir {
    per_second: u32,
    state: AtomicU64, // (second << 32) | taken
}

impl Reservoir {
    /// A reservoir of `per_second` requests per second.
    pub const fn new(per_second: u32) -> Self {
        Self {
            per_second,
            state: AtomicU64::new(0),
        }
    }

    /// The capacity per second.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Takes one request from the reservoir for the given epoch second; false when the
    /// second's allowance is spent.
    #[inline]
    pub fn take(&self, now_second: u64) -> bool {
        take_up_to(&self.state, now_second, self.per_second)
    }
}

/// Counts one more request in `now_second` unless `limit` were already counted in it.
///
/// `state` packs `(second << 32) | taken`. Once the second's allowance is spent the function
/// only reads the word, so contended callers do not bounce the cache line.
#[inline]
pub(crate) fn take_up_to(state: &AtomicU64, now_second: u64, limit: u32) -> bool {
    if limit == 0 {
        return false;
    }
    let sec = (now_second & 0xffff_ffff) << 32;
    let mut cur = state.load(Ordering::Relaxed);
    loop {
        let (cur_sec, taken) = (cur & !0xffff_ffff, cur & 0xffff_ffff);
        let next = if cur_sec < sec {
            sec | 1
        } else {
            // The same second, or a thread with an older clock reading: count it against the
            // newer second.
            if taken >= u64::from(limit) {
                return false;
            }
            cur + 1
        };
        match state.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn exact_per_second() {
        let r = Reservoir::new(3);
        assert_eq!((0..10).filter(|_| r.take(100)).count(), 3);
        assert_eq!((0..10).filter(|_| r.take(101)).count(), 3);
        assert!(
            !r.take(100),
            "a late reading of an old second does not refill"
        );
    }

    #[test]
    fn exact_under_contention() {
        let r = Arc::new(Reservoir::new(50));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || (0..10_000).filter(|_| r.take(7)).count())
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 50);
    }

    #[test]
    fn zero_takes_nothing() {
        assert!(!Reservoir::new(0).take(1));
    }
}
