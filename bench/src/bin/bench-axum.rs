//! axum hello-world on a single-threaded runtime, with or without the X-Ray layer (or, in
//! `header` mode, only a middleware that adds a fixed trace header, and in `wrap` mode that
//! and a pass-through response body; in `minimal` mode, the least an unsampled request needs,
//! written by hand; in `tracelayer` mode,
//! tower-http's `TraceLayer`; in `otel` mode, the OpenTelemetry SDK through a small
//! middleware).

fn main() {
    let (mode, addr) = bench::args();
    let rt = bench::axum_app::runtime(mode);
    rt.block_on(async move {
        let app = bench::axum_app::router(mode);
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        println!("listening on {addr} ({mode:?})");
        axum::serve(listener, app).await.expect("serve");
    });
}
