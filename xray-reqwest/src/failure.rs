//! Recording a call that failed without a response.
//!
//! reqwest puts the request's URL in its error messages, user info and query string included.
//! The recorded messages carry the URL in the form `http.request.url` records it instead, so a
//! password in a URL never reaches X-Ray through a `cause`. The caller still gets the original
//! error, unchanged.

use xray_core::document::exceptions_from_error;
use xray_core::http::{recorded_url, OutboundCall};

/// Ends the call as failed, with a remote cause built from `err`.
pub(crate) fn record_failure(
    call: &mut OutboundCall,
    err: &reqwest_middleware::Error,
    record_query: bool,
) {
    let type_name = match err {
        reqwest_middleware::Error::Reqwest(_) => "reqwest::Error",
        reqwest_middleware::Error::Middleware(_) => "reqwest_middleware::Error",
    };
    let Some(url) = err.url().map(|u| u.as_str()) else {
        return call.fail(err, type_name);
    };
    let Some(sub) = call.subsegment().filter(|s| s.is_sampled()) else {
        return call.fail(err, type_name);
    };
    let shown = recorded_url(url, record_query, sub.recorder().redacted_query_params());
    if shown == url {
        return call.fail(err, type_name);
    }
    // `fail` with the messages rewritten.
    let mut exceptions = exceptions_from_error(err, type_name);
    for e in &mut exceptions {
        e.remote = true;
        if let Some(message) = e.message.as_mut() {
            if message.contains(url) {
                *message = message.replace(url, &shown);
            }
        }
    }
    call.fail_with(exceptions);
}
