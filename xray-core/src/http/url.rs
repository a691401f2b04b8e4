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

/// Query parameters whose values are credentials, redacted from every recorded URL: the AWS
/// presigned-URL parameters, the older AWS query signatures, and Azure's shared-access
/// signature. Matched without regard to ASCII case. Add your own with
/// [`RecorderBuilder::redact_query_params`](crate::RecorderBuilder::redact_query_params).
pub const REDACTED_QUERY_PARAMS: &[&str] = &[
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "Signature",
    "AWSAccessKeyId",
    "sig",
];

/// What replaces a redacted value.
pub const REDACTED: &str = "REDACTED";

/// The URL as it may be recorded: without `user:password@`, without the query string unless
/// `record_query`, and with the values of credential-carrying query parameters
/// ([`REDACTED_QUERY_PARAMS`] and `extra`) replaced by `REDACTED`.
///
/// ```
/// use xray_core::http::recorded_url;
/// let url = "https://u:p@bucket.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc&part=2";
/// assert_eq!(
///     recorded_url(url, true, &[]),
///     "https://bucket.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&part=2"
/// );
/// assert_eq!(recorded_url(url, false, &[]), "https://bucket.s3.amazonaws.com/k");
/// ```
pub fn recorded_url<'a>(url: &'a str, record_query: bool, extra: &[String]) -> Cow<'a, str> {
    let clean = strip_userinfo(url);
    if !record_query {
        return match clean {
            Cow::Borrowed(u) => Cow::Borrowed(strip_query(u)),
            Cow::Owned(u) => Cow::Owned(strip_query(&u).to_string()),
        };
    }
    match redact_query(&clean, extra) {
        Cow::Borrowed(_) => clean,
        Cow::Owned(redacted) => Cow::Owned(redacted),
    }
}

/// Replaces the values of credential-carrying query parameters with `REDACTED`.
fn redact_query<'a>(url: &'a str, extra: &[String]) -> Cow<'a, str> {
    let Some(q) = url.find('?') else {
        return Cow::Borrowed(url);
    };
    let end = url[q..].find('#').map_or(url.len(), |i| q + i);
    let query = &url[q + 1..end];
    let sensitive = |name: &str| {
        REDACTED_QUERY_PARAMS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
            || extra.iter().any(|p| p.eq_ignore_ascii_case(name))
    };
    if !query
        .split('&')
        .any(|pair| sensitive(pair.split('=').next().unwrap_or("")))
    {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..=q]);
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if sensitive(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    out.push_str(&url[end..]);
    Cow::Owned(out)
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

/// The body length of a response: `exact`, the size the body itself reports when it knows
/// it (`http_body::Body::size_hint().exact()`), unless that is zero or unknown; then its
/// `Content-Length` header (a response to `HEAD`, or a `304`, announces a length it does not
/// send), else `exact`. The header is only looked up when the body cannot tell.
pub fn content_length(headers: &http::HeaderMap, exact: Option<u64>) -> Option<u64> {
    exact.filter(|&n| n > 0).or_else(|| {
        headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| parse_content_length(v.as_bytes()))
            .or(exact)
    })
}

#[cfg(test)]
mod content_length_tests {
    use super::*;

    #[test]
    fn the_body_size_wins_unless_the_body_cannot_tell() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(content_length(&headers, Some(12)), Some(12));
        assert_eq!(content_length(&headers, Some(0)), Some(0));
        assert_eq!(content_length(&headers, None), None);
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("42"),
        );
        // An empty body that announces a length: a response to HEAD, or a 304.
        assert_eq!(content_length(&headers, Some(0)), Some(42));
        assert_eq!(content_length(&headers, None), Some(42));
        assert_eq!(content_length(&headers, Some(12)), Some(12));
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("x"),
        );
        assert_eq!(content_length(&headers, Some(0)), Some(0));
    }
}
