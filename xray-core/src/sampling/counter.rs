//! Per-rule request counters that threads can bump without sharing a cache line.
//!
//! Every request that matches a centralized rule is counted, so a single shared atomic would
//! be written by every request thread and its cache line would bounce between cores. Instead
//! each rule has a few padded stripes; a thread always writes the same stripe, and the poller
//! sums and resets them when it reports.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const STRIPES: usize = 8;

/// One cache line's worth of counters.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe {
    requests: AtomicU64,
    sampled: AtomicU64,
    borrowed: AtomicU64,
}

/// Counts since the last report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) requests: u64,
    pub(crate) sampled: u64,
    pub(crate) borrowed: u64,
}

/// The statistics X-Ray wants per rule: requests matched, sampled, and sampled by borrowing.
#[derive(Debug, Default)]
pub(crate) struct RuleCounters {
    stripes: [Stripe; STRIPES],
}

fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let mut v = i.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            i.set(v);
        }
        v
    })
}

impl RuleCounters {
    /// Counts one request and how it was decided.
    #[inline]
    pub(crate) fn record(&self, sampled: bool, borrowed: bool) {
        let s = &self.stripes[stripe_index()];
        s.requests.fetch_add(1, Ordering::Relaxed);
        if sampled {
            s.sampled.fetch_add(1, Ordering::Relaxed);
        }
        if borrowed {
            s.borrowed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Returns the counts and starts again from zero.
    pub(crate) fn take(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.stripes {
            c.requests += s.requests.swap(0, Ordering::Relaxed);
            c.sampled += s.sampled.swap(0, Ordering::Relaxed);
            c.borrowed += s.borrowed.swap(0, Ordering::Relaxed);
        }
        c
    }

    /// Adds counts back (after a report failed to reach the daemon).
    pub(crate) fn restore(&self, c: Counts) {
        let s = &self.stripes[0];
        s.requests.fetch_add(c.requests, Ordering::Relaxed);
        s.sampled.fetch_add(c.sampled, Ordering::Relaxed);
        s.borrowed.fetch_add(c.borrowed, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_many_threads_add_up_and_reset() {
        let c = Arc::new(RuleCounters::default());
        std::thread::scope(|s| {
            for t in 0..4 {
                let c = &c;
                s.spawn(move || {
                    for i in 0..1000 {
                        c.record(i % 2 == 0, t == 0 && i % 10 == 0);
                    }
                });
            }
        });
        assert_eq!(
            c.take(),
            Counts {
                requests: 4000,
                sampled: 2000,
                borrowed: 100
            }
        );
        assert_eq!(c.take(), Counts::default());
        c.restore(Counts {
            requests: 3,
            sampled: 2,
            borrowed: 1,
        });
        assert_eq!(c.take().requests, 3);
    }
}
