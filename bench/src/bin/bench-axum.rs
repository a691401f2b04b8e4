//! axum hello-world on a single-threaded runtime, with or without the X-Ray layer (or, in
//! `header` mode, only a middleware that adds a fixed trace header; in `tracelayer` mode,
//! tower-http's `TraceLayer`).

use axum::http::{HeaderName, HeaderValue};
use axum::{routing::get, Router};
use tower_http::set_header::SetResponseHeaderLayer;
use xray_tower::XRayLayer;

fn main() {
    let (mode, addr) = bench::args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut app = Router::new().route("/", get(|| async { "ok" }));
        if let Some(r) = bench::recorder(mode) {
            app = app.layer(XRayLayer::new("bench").with_recorder(r));
        } else if mode == bench::Mode::Header {
            app = app.layer(SetResponseHeaderLayer::overriding(
                HeaderName::from_static("x-amzn-trace-id"),
                HeaderValue::from_static(bench::FIXED_TRACE_HEADER),
            ));
        } else if mode == bench::Mode::TraceLayer {
            app = app.layer(tower_http::trace::TraceLayer::new_for_http());
        }
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        println!("listening on {addr} ({mode:?})");
        axum::serve(listener, app).await.expect("serve");
    });
}
