//! Rule names handed out without shared reference counting.
//!
//! Every decision carries its rule's name as an `Arc<str>`. Cloning one shared `Arc` from
//! every request thread would make all of them write the same reference count, which costs
//! more than the rest of the decision under contention. So each thread keeps its own copies of
//! the names of the few samplers it uses, and clones those.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const SLOTS: usize = 4;

/// A process-unique id for a sampler (or a rule set generation owner).
pub(crate) fn next_owner_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Slot {
    owner: u64,
    generation: u64,
    names: Vec<Arc<str>>,
}

#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    next: usize,
}

thread_local! {
    static NAMES: RefCell<Slots> = RefCell::default();
}

/// This thread's copy of `names[index]`, for the names of `owner` at `generation`.
#[inline]
pub(crate) fn thread_copy(
    owner: u64,
    generation: u64,
    index: usize,
    names: &[Arc<str>],
) -> Arc<str> {
    let shared = || names[index].clone();
    NAMES
        .try_with(|cell| {
            let Ok(mut s) = cell.try_borrow_mut() else {
                return shared();
            };
            if let Some(slot) = s
                .slots
                .iter()
                .find(|x| x.owner == owner && x.generation == generation)
            {
                if let Some(n) = slot.names.get(index) {
                    return n.clone();
                }
            }
            let slot = Slot {
                owner,
                generation,
                names: names.iter().map(|n| Arc::from(&**n)).collect(),
            };
            let n = slot.names[index].clone();
            if let Some(i) = s.slots.iter().position(|x| x.owner == owner) {
                s.slots[i] = slot;
            } else if s.slots.len() < SLOTS {
                s.slots.push(slot);
            } else {
                let i = s.next;
                s.slots[i] = slot;
                s.next = (i + 1) % SLOTS;
            }
            n
        })
        .unwrap_or_else(|_| shared())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_per_thread_and_follow_the_generation() {
        let names: Vec<Arc<str>> = vec![Arc::from("a"), Arc::from("b")];
        let owner = next_owner_id();
        let a1 = thread_copy(owner, 0, 0, &names);
        let a2 = thread_copy(owner, 0, 0, &names);
        assert_eq!(&*a1, "a");
        assert!(Arc::ptr_eq(&a1, &a2), "the same thread reuses its copy");
        assert!(
            !Arc::ptr_eq(&a1, &names[0]),
            "the shared name is not touched"
        );
        let other = std::thread::spawn({
            let names = names.clone();
            move || thread_copy(owner, 0, 1, &names)
        })
        .join()
        .unwrap();
        assert_eq!(&*other, "b");
        let renamed: Vec<Arc<str>> = vec![Arc::from("c")];
        assert_eq!(&*thread_copy(owner, 1, 0, &renamed), "c");
        for o in 0..10 {
            assert_eq!(&*thread_copy(1000 + o, 0, 1, &names), "b");
        }
    }
}
