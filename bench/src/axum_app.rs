//! The axum hello-world of every mode, shared by the server (`bench-axum`) and the
//! in-process driver (`bench-inproc`).

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::{routing::get, Router};
use http_body_util::BodyExt;
use opentelemetry::context::FutureExt;
use opentelemetry_http::HeaderExtractor;
use tower_http::map_response_body::MapResponseBodyLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use xray_tower::XRayLayer;

use crate::Mode;

/// The `otel` mode's middleware: one OpenTelemetry server span per request.
async fn otel_span(req: Request, next: Next) -> Response {
    let headers = req.headers();
    let path = req.uri().path();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(path, MatchedPath::as_str);
    let version = match req.version() {
        axum::http::Version::HTTP_10 => "1.0",
        axum::http::Version::HTTP_2 => "2",
        axum::http::Version::HTTP_3 => "3",
        _ => "1.1",
    };
    let cx = crate::otel::start(
        &HeaderExtractor(headers),
        &crate::otel::Request {
            method: req.method().as_str(),
            path,
            route,
            protocol_version: version,
            host: headers.get(header::HOST).and_then(|v| v.to_str().ok()),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        },
    );
    let response = next.run(req).with_context(cx.clone()).await;
    crate::otel::end(&cx, response.status().as_u16());
    response
}

/// The single-threaded runtime the axum modes run on, made after what `mode` needs set up
/// first (the `otel` exporter makes its blocking HTTP client before any runtime exists).
pub fn runtime(mode: Mode) -> tokio::runtime::Runtime {
    if mode == Mode::Otel {
        crate::otel::init();
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The router of `mode`: `GET /` answers `ok`, with the mode's middleware. Run it on
/// [`runtime`], which sets up the `otel` mode.
pub fn router(mode: Mode) -> Router {
    let mut app = Router::new().route("/", get(|| async { "ok" }));
    if let Some(r) = crate::recorder(mode) {
        app = app.layer(XRayLayer::new("bench").with_recorder(r));
    } else if mode == Mode::Header {
        app = app.layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-amzn-trace-id"),
            HeaderValue::from_static(crate::FIXED_TRACE_HEADER),
        ));
    } else if mode == Mode::Wrap {
        // One `Router::layer` call, as for the X-Ray layer: axum boxes each layer's
        // future, so two calls would add a box the X-Ray layer does not pay.
        // `map_err` forwards the body's size hint, so axum still sets `Content-Length`
        // as it does behind the X-Ray layer's body (`map_frame` would lose it and send the
        // body chunked, a cheaper path than the one measured).
        app = app.layer((
            MapResponseBodyLayer::new(|body: Body| body.map_err(|e| e)),
            SetResponseHeaderLayer::overriding(
                HeaderName::from_static("x-amzn-trace-id"),
                HeaderValue::from_static(crate::FIXED_TRACE_HEADER),
            ),
        ));
    } else if mode == Mode::Minimal {
        app = app.layer(crate::minimal::MinimalLayer);
    } else if mode == Mode::TraceLayer {
        app = app.layer(tower_http::trace::TraceLayer::new_for_http());
    } else if mode == Mode::Otel {
        app = app.route_layer(middleware::from_fn(otel_span));
    }
    app
}
