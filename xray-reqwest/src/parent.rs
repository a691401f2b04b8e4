//! The explicit parent of a call, carried in the request's extensions.

use xray_core::Entity;

/// The segment or subsegment an outbound call is recorded under, given per request.
///
/// [`XRayMiddleware`] normally records a call under the entity that is current
/// ([`xray_core::current`]). Code that runs where no segment is current (a task spawned without
/// [`in_current_segment`], a callback run by another library) can name the parent explicitly:
///
/// ```
/// # use xray_core::{emitter::MemoryEmitter, Recorder};
/// use xray_reqwest::{Parent, XRayMiddleware};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let recorder = Recorder::builder().emitter(MemoryEmitter::new()).ignore_env().build().unwrap();
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(XRayMiddleware::new())
///     .build();
/// let segment = recorder.begin_segment("worker", None);
/// let call = client
///     .get("http://127.0.0.1:1/")
///     .with_extension(Parent(segment.clone()))
///     .send();
/// # let _ = call.await;
/// # segment.end();
/// # }
/// ```
///
/// When both are present, the explicit parent wins over the current entity, so it can also
/// attach a call to a subsegment that is held but not current.
///
/// [`XRayMiddleware`]: crate::XRayMiddleware
/// [`in_current_segment`]: xray_core::FutureExt::in_current_segment
#[derive(Clone, Debug)]
pub struct Parent(pub Entity);

impl From<Entity> for Parent {
    fn from(entity: Entity) -> Self {
        Parent(entity)
    }
}
