//! The current entity, carried across `.await` points.
//!
//! Adapters run each request's future inside [`scope`], so code anywhere below it finds the
//! segment with [`current`] without passing it around. The value lives in a
//! `tokio::task_local!`, which works on multi-threaded tokio, on actix's single-threaded
//! runtime and under any executor: it is swapped in around every poll of the scoped future.
//!
//! Like every task-local, it does not flow into `tokio::spawn` by itself: wrap spawned futures
//! with [`FutureExt::in_current_segment`].
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

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::futures::TaskLocalFuture;

use crate::entity::Entity;

tokio::task_local! {
    static CURRENT: Entity;
}

/// The entity the running code belongs to, if any.
pub fn current() -> Option<Entity> {
    CURRENT.try_with(Entity::clone).ok()
}

/// True when some entity is current.
pub fn has_current() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// Runs `fut` with `entity` as the current entity.
pub fn scope<F: Future>(entity: Entity, fut: F) -> TaskLocalFuture<Entity, F> {
    CURRENT.scope(entity, fut)
}

/// Runs `f` with `entity` as the current entity.
pub fn sync_scope<R>(entity: Entity, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(entity, f)
}

/// Runs `f` with `entity` as the current entity when there is one, else just runs `f`.
pub fn maybe_sync_scope<R>(entity: Option<Entity>, f: impl FnOnce() -> R) -> R {
    match entity {
        Some(e) => CURRENT.sync_scope(e, f),
        None => f(),
    }
}

/// Carries an entity into futures that run elsewhere, like `tracing::Instrument`.
pub trait FutureExt: Future + Sized {
    /// Captures the current entity now and makes it current whenever the future is polled.
    /// Use it on futures handed to `tokio::spawn` or `actix_web::rt::spawn`.
    fn in_current_segment(self) -> Instrumented<Self> {
        Instrumented::new(self, current())
    }

    /// Makes `entity` current whenever the future is polled.
    fn with_entity(self, entity: Entity) -> Instrumented<Self> {
        Instrumented::new(self, Some(entity))
    }
}

impl<F: Future> FutureExt for F {}

pin_project_lite::pin_project! {
    /// A future that runs with an entity as the current one; see [`FutureExt`].
    pub struct Instrumented<F> {
        #[pin]
        fut: F,
        entity: Option<Entity>,
    }
}

impl<F: Future> Instrumented<F> {
    fn new(fut: F, entity: Option<Entity>) -> Self {
        Self { fut, entity }
    }

    /// The entity carried, if any.
    pub fn entity(&self) -> Option<&Entity> {
        self.entity.as_ref()
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        match this.entity {
            Some(e) => CURRENT.sync_scope(e.clone(), || this.fut.poll(cx)),
            None => this.fut.poll(cx),
        }
    }
}

impl<F> std::fmt::Debug for Instrumented<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumented")
            .field("entity", &self.entity)
            .finish_non_exhaustive()
    }
}
