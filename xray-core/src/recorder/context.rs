//! The current entity, carried across `.await` points.
//!
//! Adapters run each request's future inside [`scope`], so code anywhere below it finds the
//! segment with [`current`] without passing it around. The scoped future lends its entity to
//! its thread (its address, in a per-thread cell: the entity stays in the future) for the
//! duration of each poll and takes it back afterwards (the way `tokio::task_local!` and
//! `tracing::Instrument` work), so it works on multi-threaded tokio, on actix's
//! single-threaded runtime and under any executor. A `tracing` bridge can also make a span's
//! subsegment current between its enter and exit ([`enter`]).
//!
//! It does not flow into `tokio::spawn` by itself: wrap spawned futures with
//! [`FutureExt::in_current_segment`].
//!
//! A request served while the SDK is disabled, with no trace header to pass on, makes no
//! entity current: its scope only marks the thread ([`disabled_scope`]), so that asking for
//! the current segment there is not a context-missing error and the adapters' extractors hand
//! out a no-op segment ([`current_or_disabled`]).
//!
//! ```
//! use xray_core::{context, FutureExt, Recorder};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let recorder = Recorder::builder().emitter(xray_core::emitter::MemoryEmitter::new()).build().unwrap();
//! let segment = recorder.begin_segment("svc", None);
//! context::scope(segment.clone(), async {
//!     assert!(context::current().is_some());
//!     let joined = tokio::spawn(async { context::current().is_some() }.in_current_segment());
//!     assert!(joined.await.unwrap());
//! })
//! .await;
//! segment.end();
//! # }
//! ```

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

use crate::entity::Entity;
use crate::id::EntityId;

thread_local! {
    /// The entities [`enter`] made current on this thread, innermost last, each with the
    /// [`SEQ`] number it was pushed with. Guards and [`exit`] remove their own entry, so the
    /// stack only holds entities for the code that is running right now on this thread.
    static STACK: RefCell<Vec<Owned>> = const { RefCell::new(Vec::new()) };

    /// The innermost entity lent by [`lend`] (the scopes of futures, exchanges and bodies):
    /// its address and its [`SEQ`] number. A plain `Cell` without a destructor, so a scope
    /// costs a few loads and stores; each `lend` puts back the value it found when it ends.
    static LENT: Cell<Option<Lent>> = const { Cell::new(None) };

    /// Numbers entries of both kinds in the order they were made current on this thread, so
    /// that [`current`] knows which of the stack's top and the lent entity is innermost.
    static SEQ: Cell<u64> = const { Cell::new(0) };

    /// How many scopes of requests served with the SDK disabled are running on this thread.
    /// A plain counter: no destructor, so reading it costs next to nothing.
    static DISABLED: Cell<u32> = const { Cell::new(0) };
}

/// An entity the stack holds itself, made current by [`enter`] or [`enter_unguarded`] and
/// taken off by its guard or [`exit`] (found by [`Entity::key`]).
struct Owned {
    seq: u64,
    entity: Entity,
}

/// The innermost lent entity of this thread.
#[derive(Clone, Copy)]
struct Lent {
    /// The address of an entity that stays where it is (in a future, an exchange) while
    /// [`lend`] runs a call with it current.
    entity: NonNull<Entity>,
    seq: u64,
}

impl Lent {
    #[inline]
    fn entity(&self) -> &Entity {
        // SAFETY: `LENT` holds an address only while the `lend` that stored it runs: `lend`
        // stores the address of the entity in the `&mut Option<Entity>` it was given, and
        // its `Restore` guard puts back the previous value when `lend` returns or unwinds.
        // Nested `lend` calls restore in the reverse order they stored (each runs inside the
        // call of the one before it), and the guard cannot be leaked (it is private to
        // `lend`). For that whole time `lend` holds the exclusive borrow of the slot and does
        // not touch it, and the only code it runs, `f`, cannot reach the slot, so the entity
        // is neither moved, dropped nor written while the address is stored, and a shared
        // reference to it is valid. The cell is thread-local, so the reference is only made
        // on the thread whose `lend` is running; it does not outlive the caller's use of it
        // within `current`.
        #[allow(unsafe_code)]
        unsafe {
            self.entity.as_ref()
        }
    }
}

/// The next number in this thread's order of scopes.
#[inline]
fn next_seq() -> u64 {
    SEQ.with(|s| {
        let n = s.get() + 1;
        s.set(n);
        n
    })
}

/// True while the code runs for a request served with the SDK disabled (inside a
/// [`disabled_scope`]) and no entity is current.
pub fn in_disabled_request() -> bool {
    DISABLED.try_with(|d| d.get() > 0).unwrap_or(false) && !has_current()
}

/// The current entity; inside a request served with the SDK disabled, a fresh no-op segment
/// instead (unsampled, belonging to a disabled recorder: nothing recorded on it is kept or
/// sent). What the adapters' segment extractors return.
pub fn current_or_disabled() -> Option<Entity> {
    current().or_else(|| in_disabled_request().then(Entity::disabled))
}

/// Marks the thread as serving a request with the SDK disabled until dropped.
struct DisabledMark;

impl DisabledMark {
    #[inline]
    fn enter() -> Self {
        let _ = DISABLED.try_with(|d| d.set(d.get().saturating_add(1)));
        DisabledMark
    }
}

impl Drop for DisabledMark {
    #[inline]
    fn drop(&mut self) {
        let _ = DISABLED.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// The entity the running code belongs to, if any.
pub fn current() -> Option<Entity> {
    let lent = LENT.with(Cell::get);
    STACK
        .try_with(|s| match (s.borrow().last(), lent) {
            // The innermost of the stack's top and the lent entity: the one made current last.
            (Some(top), Some(lent)) if top.seq < lent.seq => Some(lent.entity().clone()),
            (Some(top), _) => Some(top.entity.clone()),
            (None, lent) => lent.map(|l| l.entity().clone()),
        })
        // The stack is gone (the thread is exiting): the lent entity is all there is.
        .unwrap_or_else(|_| lent.map(|l| l.entity().clone()))
}

/// True when some entity is current.
pub fn has_current() -> bool {
    LENT.with(Cell::get).is_some() || STACK.try_with(|s| !s.borrow().is_empty()).unwrap_or(false)
}

#[inline]
fn push(entity: Entity) {
    let seq = next_seq();
    let _ = STACK.try_with(|s| s.borrow_mut().push(Owned { seq, entity }));
}

/// Removes the innermost stack entry for `entity` and returns it.
fn remove(entity: &Entity) -> Option<Entity> {
    remove_key(entity.key())
}

/// Removes the innermost stack entry with this [`Entity::key`] and returns it. Entries are
/// almost always removed from the top; searching keeps the stack right even when scopes end
/// out of order (a `tracing` span exited after a nested scope, say).
#[inline]
fn remove_key(key: (EntityId, usize)) -> Option<Entity> {
    STACK
        .try_with(|s| take_entry(&mut s.borrow_mut(), key))
        .ok()
        .flatten()
}

/// Takes the innermost entry [`enter`] made with this key off `stack`: almost always the top
/// one. Lent entities are not on the stack, so a guard for a clone of one never takes it.
#[inline]
fn take_entry(stack: &mut Vec<Owned>, key: (EntityId, usize)) -> Option<Entity> {
    let mine = |e: &Owned| e.entity.has_key(key);
    let entry = match stack.pop_if(|e| mine(e)) {
        Some(entry) => entry,
        None => {
            let pos = stack.iter().rposition(mine)?;
            stack.remove(pos)
        }
    };
    Some(entry.entity)
}

/// Makes `entity` current until the returned guard drops. The guard stays on this thread.
///
/// This is for instrumentation that sees enter and exit as separate calls (a `tracing` layer);
/// code that wraps a closure or a future should use [`sync_scope`] or [`scope`].
#[inline]
pub fn enter(entity: Entity) -> EnterGuard {
    let key = entity.key();
    // The stack holds the entity itself; the guard only remembers which entry is its own.
    push(entity);
    EnterGuard {
        key,
        _not_send: std::marker::PhantomData,
    }
}

/// Makes `entity` current without a guard; pair it with [`exit`]. For instrumentation bridges
/// whose enter and exit callbacks cannot share a guard.
pub fn enter_unguarded(entity: Entity) {
    push(entity);
}

/// Ends what [`enter_unguarded`] began for `entity` on this thread.
pub fn exit(entity: &Entity) {
    remove(entity);
}

/// Keeps an entity current; see [`enter`].
#[must_use = "the entity stops being current when the guard drops"]
#[derive(Debug)]
pub struct EnterGuard {
    key: (EntityId, usize),
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnterGuard {
    #[inline]
    fn drop(&mut self) {
        remove_key(self.key);
    }
}

/// Runs `fut` with `entity` as the current entity whenever it is polled.
pub fn scope<F: Future>(entity: Entity, fut: F) -> Instrumented<F> {
    Instrumented::new(fut, Some(entity))
}

/// Runs `fut` as the work of a request served with the SDK disabled: no entity is current,
/// [`in_disabled_request`] is true while it is polled.
pub fn disabled_scope<F: Future>(fut: F) -> Instrumented<F> {
    Instrumented {
        fut,
        entity: None,
        disabled: true,
    }
}

/// Runs `f` as the work of a request served with the SDK disabled; see [`disabled_scope`].
#[inline]
pub fn disabled_sync_scope<R>(f: impl FnOnce() -> R) -> R {
    let _mark = DisabledMark::enter();
    f()
}

/// Like [`scope`] when there is an entity; without one the future runs as it is.
pub fn maybe_scope<F: Future>(entity: Option<Entity>, fut: F) -> Instrumented<F> {
    Instrumented::new(fut, entity)
}

/// Runs `f` with `entity` as the current entity.
#[inline]
pub fn sync_scope<R>(entity: Entity, f: impl FnOnce() -> R) -> R {
    let _guard = enter(entity);
    f()
}

/// Runs `f` with the entity in `slot` as the current entity, lending it to the context for
/// the call instead of cloning or moving it: the stack holds its address until `f` returns or
/// panics. An empty slot just runs `f`.
#[inline]
pub(crate) fn lend<R>(slot: &mut Option<Entity>, f: impl FnOnce() -> R) -> R {
    let Some(entity) = slot.as_ref() else {
        return f();
    };
    let lent = Lent {
        entity: NonNull::from(entity),
        seq: next_seq(),
    };
    // Made right after the store: dropped when `f` returns or unwinds, while `slot` is still
    // borrowed and untouched (the soundness of `Lent::entity` rests on this).
    let _restore = Restore(LENT.with(|l| l.replace(Some(lent))));
    f()
}

/// Runs `f` with `entity` as the current entity when there is one, else just runs `f`.
pub fn maybe_sync_scope<R>(entity: Option<Entity>, f: impl FnOnce() -> R) -> R {
    match entity {
        Some(e) => sync_scope(e, f),
        None => f(),
    }
}

/// Carries an entity into futures that run elsewhere, like `tracing::Instrument`.
pub trait FutureExt: Future + Sized {
    /// Captures the current entity now and makes it current whenever the future is polled.
    /// Use it on futures handed to `tokio::spawn` or `actix_web::rt::spawn`. Inside a
    /// request served with the SDK disabled, it carries that mark instead.
    fn in_current_segment(self) -> Instrumented<Self> {
        match current() {
            Some(entity) => Instrumented::new(self, Some(entity)),
            None if in_disabled_request() => disabled_scope(self),
            None => Instrumented::new(self, None),
        }
    }

    /// Makes `entity` current whenever the future is polled.
    fn with_entity(self, entity: Entity) -> Instrumented<Self> {
        Instrumented::new(self, Some(entity))
    }
}

impl<F: Future> FutureExt for F {}

pin_project_lite::pin_project! {
    /// A future that runs with an entity as the current one; see [`scope`] and [`FutureExt`].
    pub struct Instrumented<F> {
        #[pin]
        fut: F,
        entity: Option<Entity>,
        // Without an entity: whether the future is the work of a request served with the SDK
        // disabled (see `disabled_scope`).
        disabled: bool,
    }
}

impl<F: Future> Instrumented<F> {
    fn new(fut: F, entity: Option<Entity>) -> Self {
        Self {
            fut,
            entity,
            disabled: false,
        }
    }

    /// The entity carried, if any.
    pub fn entity(&self) -> Option<&Entity> {
        self.entity.as_ref()
    }
}

/// Puts back the lent entity that `lend` replaced when the call ends, even by panic.
struct Restore(Option<Lent>);

impl Drop for Restore {
    #[inline]
    fn drop(&mut self) {
        LENT.with(|l| l.set(self.0));
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let fut = this.fut;
        if this.entity.is_none() && *this.disabled {
            return disabled_sync_scope(|| fut.poll(cx));
        }
        // The entity moves onto the stack for the poll and back afterwards: no clone.
        lend(this.entity, || fut.poll(cx))
    }
}

impl<F> std::fmt::Debug for Instrumented<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumented")
            .field("entity", &self.entity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emitter::MemoryEmitter;
    use crate::Recorder;

    fn entity(name: &str) -> Entity {
        let r = Recorder::builder()
            .emitter(MemoryEmitter::new())
            .ignore_env()
            .build()
            .unwrap();
        r.begin_segment(name, None)
    }

    #[test]
    fn scopes_nest_and_unwind() {
        let a = entity("a");
        let b = entity("b");
        assert!(current().is_none());
        sync_scope(a.clone(), || {
            assert!(current().unwrap().same_as(&a));
            sync_scope(b.clone(), || assert!(current().unwrap().same_as(&b)));
            assert!(current().unwrap().same_as(&a));
        });
        assert!(current().is_none());
    }

    #[test]
    fn out_of_order_exit_keeps_the_right_entity_current() {
        let a = entity("a");
        let b = entity("b");
        enter_unguarded(a.clone());
        let g = enter(b.clone());
        exit(&a);
        assert!(current().unwrap().same_as(&b));
        drop(g);
        assert!(current().is_none());
    }

    #[test]
    fn panic_inside_a_scope_leaves_the_stack_clean() {
        let a = entity("a");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sync_scope(a.clone(), || panic!("boom"));
        }));
        assert!(r.is_err());
        assert!(current().is_none());
    }

    #[test]
    fn a_lent_entity_is_current_for_the_call_and_stays_in_its_slot() {
        let a = entity("a");
        let mut slot = Some(a.clone());
        let seen = lend(&mut slot, || {
            let inner = entity("inner");
            sync_scope(inner.clone(), || {
                assert!(current().unwrap().same_as(&inner))
            });
            current()
        });
        assert!(seen.unwrap().same_as(&a));
        assert!(slot.as_ref().unwrap().same_as(&a));
        assert!(current().is_none());
        // An empty slot makes nothing current.
        assert!(lend(&mut None, current).is_none());
    }

    #[test]
    fn a_lent_entry_leaves_on_panic_and_is_not_taken_by_a_guard_of_the_same_entity() {
        let a = entity("a");
        let mut slot = Some(a.clone());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lend(&mut slot, || panic!("boom"));
        }));
        assert!(r.is_err());
        assert!(current().is_none());

        // A guard for a clone of the lent entity, ended inside the lend out of order, takes
        // its own entry, not the lent one.
        let b = entity("b");
        enter_unguarded(a.clone());
        lend(&mut slot, || {
            let g = enter(b.clone());
            exit(&a);
            assert!(current().unwrap().same_as(&b));
            drop(g);
            assert!(
                current().unwrap().same_as(&a),
                "the lent entry is still there"
            );
        });
        assert!(current().is_none());
    }

    #[test]
    fn the_innermost_of_stack_and_lent_entity_is_current_whatever_order_scopes_end_in() {
        let a = entity("a");
        let b = entity("b");
        let c = entity("c");
        let e = entity("e");
        let mut slot = Some(c.clone());
        let mut outer = Some(a.clone());
        lend(&mut outer, || {
            assert!(current().unwrap().same_as(&a));
            enter_unguarded(b.clone());
            assert!(current().unwrap().same_as(&b), "entered after the lend");
            lend(&mut slot, || {
                assert!(current().unwrap().same_as(&c));
                // `b`, entered before this lend, exits out of order while it runs; `e`,
                // entered after it, is innermost although the stack is no deeper than before.
                exit(&b);
                assert!(current().unwrap().same_as(&c));
                enter_unguarded(e.clone());
                assert!(current().unwrap().same_as(&e));
                exit(&e);
                assert!(current().unwrap().same_as(&c));
            });
            assert!(current().unwrap().same_as(&a), "the outer lend is back");
            assert!(has_current());
        });
        assert!(current().is_none());
        assert!(!has_current());
    }
}
