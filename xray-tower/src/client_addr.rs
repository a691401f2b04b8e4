//! The peer address a plain hyper server hands to the layer.

use std::net::SocketAddr;

/// The address of the client that opened the connection, as a request extension.
///
/// The layer records it as `http.request.client_ip` when the request has no
/// `X-Forwarded-For` header. axum users get it for free with the `axum` feature and
/// `into_make_service_with_connect_info::<SocketAddr>()`; on plain hyper, insert it yourself
/// where the connection is accepted:
///
/// ```
/// use std::net::SocketAddr;
/// use xray_tower::ClientAddr;
///
/// let peer: SocketAddr = "203.0.113.9:51000".parse().unwrap();
/// let svc = tower::ServiceBuilder::new()
///     .map_request(move |mut req: http::Request<String>| {
///         req.extensions_mut().insert(ClientAddr(peer));
///         req
///     })
///     .layer(xray_tower::XRayLayer::new("svc"))
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # drop(svc);
/// ```
///
/// A bare `SocketAddr` extension is read too, as a last resort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);

/// The peer IP found in the request extensions, if any.
pub(crate) fn peer_ip(ext: &http::Extensions) -> Option<std::net::IpAddr> {
    if let Some(ClientAddr(a)) = ext.get::<ClientAddr>() {
        return Some(a.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(a)) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(a.ip());
    }
    ext.get::<SocketAddr>().map(SocketAddr::ip)
}
