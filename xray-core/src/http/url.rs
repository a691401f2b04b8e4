//! URL helpers shared by the client adapters.

use std::borrow::Cow;

use crate::naming::strip_port;

/// Removes `user:password@` from a URL's authority.
///
/// ```
/// use xray_core::http::strip_userinfo;
/// assert_eq!(strip_userinfo("https://u:p@example.com/a?b=1"), "https://example.com/a?b=1");
/// assert_eq!(strip_userinfo("https://example.com/@x"), "https://example.com/@x");
/// ```
pub fn strip_userinfo(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => Cow::Owned(format!("{}{}", &url[..auth_start], &rest[at + 1..])),
        None => Cow::Borrowed(url),
    }
}

/// Removes the query string and fragment from a URL.
pub fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The host of an absolute URL, without user info or port.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let auth = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = auth.rsplit('@').next().unwrap_or(auth);
    let host = strip_port(host_port);
    (!host.is_empty()).then_some(host)
}

/// The body length a response announces in `Content-Length`, when it is a valid number.
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The body length of a response: its `Content-Length` header, else `exact`, the size the
/// body itself reports when it knows it (`http_body::Body::size_hint().exact()`).
pub fn content_length(headers: &http::HeaderMap, exact: Option<u64>) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| parse_content_length(v.as_bytes()))
        .or(exact)
}
