//! The hook called when a request arrives.

use http::Request;
use xray_core::Entity;

/// Called with each sampled request and its segment, before the inner service runs.
///
/// Use it to add annotations, metadata or the user from the request. It is implemented for
/// `()` (nothing to do, the default) and for closures `FnMut(&Request<B>, &Entity)`.
///
/// It is not called for unsampled requests: their segment records nothing, so there is
/// nothing to add to it and no reason to pay for computing it.
///
/// ```
/// use xray_tower::XRayLayer;
///
/// let layer = XRayLayer::new("checkout").on_request(
///     |req: &http::Request<axum::body::Body>, segment: &xray_core::Entity| {
///         if let Some(tenant) = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()) {
///             segment.put_annotation("tenant", tenant);
///         }
///     },
/// );
/// # drop(layer);
/// ```
pub trait OnRequest<B> {
    /// Records what it wants from `request` on `segment`.
    fn on_request(&mut self, request: &Request<B>, segment: &Entity);
}

impl<B> OnRequest<B> for () {
    #[inline]
    fn on_request(&mut self, _: &Request<B>, _: &Entity) {}
}

impl<B, F> OnRequest<B> for F
where
    F: FnMut(&Request<B>, &Entity),
{
    fn on_request(&mut self, request: &Request<B>, segment: &Entity) {
        self(request, segment)
    }
}
