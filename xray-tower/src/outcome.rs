//! How a request that did not end normally is recorded. Shared by the future and the body.

use std::any::Any;
use std::fmt;

use xray_core::document::Exception;
use xray_core::Entity;

/// An error turned into text, so that errors that only implement `Display` (such as
/// `Box<dyn Error + Send + Sync>`) can be recorded with the core's error mapping.
#[derive(Debug)]
pub(crate) struct Message(pub(crate) String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// The inner service (or the body) failed: `fault` with the error as cause.
pub(crate) fn failed<E: fmt::Display>(entity: &Entity, error: &E, remote: bool) {
    if entity.is_sampled() {
        entity.add_error_dyn(
            &Message(error.to_string()),
            std::any::type_name::<E>(),
            remote,
        );
    }
    entity.end();
}

/// The code running for the request panicked: `fault` with the panic message as cause.
pub(crate) fn panicked(entity: &Entity, payload: &(dyn Any + Send)) {
    entity.add_panic(payload);
    entity.end();
}

/// The work was given up before it completed: a cause saying why, with `fault` when the
/// failure is ours (an outbound call that never got its answer) and `error` when the client
/// gave up on us.
pub(crate) fn abandoned(entity: &Entity, why: &str, fault: bool) {
    if entity.is_sampled() {
        entity.add_exceptions(vec![Exception::new(why, "Cancelled")], fault);
        if !fault {
            entity.set_error();
        }
    }
    entity.end();
}
