//! The hook called when the response head is ready.

use http::Response;
use xray_core::Entity;

/// Called with each sampled response (its head: status, headers, and the body not yet sent)
/// and the request's segment.
///
/// It is implemented for `()` (nothing to do, the default) and for closures
/// `FnMut(&Response<B>, &Entity)`. The layer has already recorded the status, the length and
/// the flags they imply when it runs. Like [`OnRequest`](crate::OnRequest), it is not called
/// for unsampled requests.
///
/// ```
/// use xray_tower::XRayLayer;
///
/// let layer = XRayLayer::new("checkout").on_response(
///     |res: &http::Response<axum::body::Body>, segment: &xray_core::Entity| {
///         if let Some(ct) = res.headers().get("content-type").and_then(|v| v.to_str().ok()) {
///             segment.put_metadata("content_type", ct);
///         }
///     },
/// );
/// # drop(layer);
/// ```
pub trait OnResponse<B> {
    /// Records what it wants from `response` on `segment`.
    fn on_response(&mut self, response: &Response<B>, segment: &Entity);
}

impl<B> OnResponse<B> for () {
    #[inline]
    fn on_response(&mut self, _: &Response<B>, _: &Entity) {}
}

impl<B, F> OnResponse<B> for F
where
    F: FnMut(&Response<B>, &Entity),
{
    fn on_response(&mut self, response: &Response<B>, segment: &Entity) {
        self(response, segment)
    }
}
