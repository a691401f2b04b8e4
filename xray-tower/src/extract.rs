//! The axum extractor for the request's segment.

use std::convert::Infallible;
use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;
use xray_core::Entity;

/// The segment of the request being served, as an axum extractor.
///
/// Derefs to [`Entity`], so handlers can add annotations, metadata or the user directly:
///
/// ```
/// use xray_tower::Segment;
///
/// async fn checkout(segment: Segment) -> &'static str {
///     segment.put_annotation("cart_size", 3);
///     segment.set_user("alice");
///     "ok"
/// }
///
/// let app: axum::Router = axum::Router::new()
///     .route("/checkout", axum::routing::post(checkout))
///     .layer(xray_tower::XRayLayer::new("shop"));
/// ```
///
/// Extraction fails with [`MissingSegment`] (a 500) when no [`XRayLayer`](crate::XRayLayer)
/// runs before the handler; take `Option<Segment>` to accept that instead. With the SDK
/// disabled, requests get a no-op segment: nothing recorded on it is kept.
#[derive(Clone, Debug)]
pub struct Segment(pub Entity);

impl std::ops::Deref for Segment {
    type Target = Entity;
    fn deref(&self) -> &Entity {
        &self.0
    }
}

fn find(parts: &Parts) -> Option<Segment> {
    crate::service::request_segment(&parts.extensions).map(Segment)
}

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = MissingSegment;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        find(parts).ok_or(MissingSegment)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Segment {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(find(parts))
    }
}

/// Rejection of the [`Segment`] extractor: no X-Ray layer runs before this handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingSegment;

impl fmt::Display for MissingSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no X-Ray segment for this request: add xray_tower::XRayLayer to the router")
    }
}

impl std::error::Error for MissingSegment {}

impl IntoResponse for MissingSegment {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
