//! The [`Segment`] extractor.

use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use xray_core::Entity;

/// The request's segment, for handlers that want to annotate it without going through
/// [`xray_core::current`].
///
/// It dereferences to [`Entity`]. Extraction fails with [`MissingSegment`] (a 500 response)
/// when no [`XRay`](crate::XRay) middleware wraps the route; take `Option<Segment>` to
/// tolerate that. With the SDK disabled, requests get a no-op segment: nothing recorded on it
/// is kept.
///
/// ```
/// use actix_web::HttpResponse;
/// use xray_actix::Segment;
///
/// async fn checkout(segment: Segment) -> HttpResponse {
///     segment.put_annotation("cart_size", 3);
///     HttpResponse::Ok().finish()
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Segment(Entity);

impl Segment {
    /// The segment handle.
    pub fn into_inner(self) -> Entity {
        self.0
    }
}

impl Deref for Segment {
    type Target = Entity;
    fn deref(&self) -> &Entity {
        &self.0
    }
}

impl FromRequest for Segment {
    type Error = MissingSegment;
    type Future = Ready<Result<Self, MissingSegment>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Entity>()
                .cloned()
                // With the SDK disabled the middleware records nothing: a no-op segment.
                .or_else(xray_core::context::current_or_disabled)
                .map(Segment)
                .ok_or(MissingSegment),
        )
    }
}

/// The [`Segment`] extractor found no segment: the route is not wrapped by
/// [`XRay`](crate::XRay). Responds with 500.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingSegment;

impl std::fmt::Display for MissingSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no X-Ray segment on this request: wrap the App or Scope with xray_actix::XRay")
    }
}

impl std::error::Error for MissingSegment {}

impl ResponseError for MissingSegment {}
