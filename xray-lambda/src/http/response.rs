//! The response handed back to `lambda_http`, already converted.

use std::future::{ready, Future};
use std::pin::Pin;

use lambda_http::{Body, IntoResponse, Response};

/// The handler's response, converted to a `Response<Body>` by [`XRayHttp`](crate::XRayHttp)
/// so that its status and length could be recorded.
///
/// `lambda_http` takes it as it is: converting it again would decode a text body in another
/// charset twice, and turn an empty body into an empty string.
#[derive(Debug)]
pub struct TracedResponse(Response<Body>);

impl TracedResponse {
    pub(crate) fn new(response: Response<Body>) -> Self {
        Self(response)
    }

    /// The response.
    pub fn get_ref(&self) -> &Response<Body> {
        &self.0
    }

    /// Unwraps the response.
    pub fn into_inner(self) -> Response<Body> {
        self.0
    }
}

impl From<TracedResponse> for Response<Body> {
    fn from(response: TracedResponse) -> Self {
        response.0
    }
}

impl IntoResponse for TracedResponse {
    fn into_response(self) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        Box::pin(ready(self.0))
    }
}
