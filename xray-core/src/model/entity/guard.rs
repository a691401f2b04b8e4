//! Ending an entity when a scope ends.

use crate::lifecycle::Ending;

use super::Entity;

/// Ends its entity when dropped; see [`Entity::guard`].
#[must_use = "the entity ends as soon as the guard is dropped"]
#[derive(Debug)]
pub struct EntityGuard {
    pub(super) entity: Option<Entity>,
}

impl EntityGuard {
    /// The guarded entity.
    pub fn entity(&self) -> &Entity {
        // Only `into_inner` and `drop` take the entity out, and both consume the guard.
        self.entity
            .as_ref()
            .expect("guard holds its entity until dropped")
    }

    /// Gives the entity back without ending it.
    pub fn into_inner(mut self) -> Entity {
        self.entity
            .take()
            .expect("guard holds its entity until dropped")
    }
}

impl std::ops::Deref for EntityGuard {
    type Target = Entity;
    fn deref(&self) -> &Entity {
        self.entity()
    }
}

impl Drop for EntityGuard {
    fn drop(&mut self) {
        if let Some(e) = self.entity.take() {
            if std::thread::panicking() {
                Ending::Panicked(None).apply(&e);
            }
            e.end();
        }
    }
}
