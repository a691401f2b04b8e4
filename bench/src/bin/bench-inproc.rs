//! The axum hello-world of `bench-axum`, served in process: `bench-inproc MODE N` sends `N`
//! requests (`GET /` with a `Host` header, as wrk sends them) straight to the router, one
//! after the other, and reads each response body to its end. No socket, no HTTP parsing,
//! no kernel: under callgrind the count per request repeats to the instruction, so small
//! changes to the layer show that the network benchmark's run-to-run spread (a few hundred
//! instructions) hides. `scripts/bench-instructions inproc` runs it twice with different
//! `N` and divides the difference, which cancels the start-up cost.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower_service::Service;

fn main() {
    let (mode, n) = bench::args_with("REQUESTS", "10000");
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("REQUESTS must be a number (got {n:?})");
        std::process::exit(2)
    };
    let rt = bench::axum_app::runtime(mode);
    rt.block_on(async move {
        // As `axum::serve` does: routes are made ready once, not per request.
        let app = bench::axum_app::router(mode).with_state::<()>(());
        let mut bytes = 0;
        for _ in 0..n {
            let req = Request::builder()
                .uri("/")
                .header("host", "127.0.0.1:18098")
                .body(Body::empty())
                .expect("request");
            let res = app.clone().call(req).await.expect("infallible");
            if answers_trace_header(mode) {
                assert!(res.headers().contains_key("x-amzn-trace-id"));
            }
            bytes += res
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes()
                .len();
        }
        assert_eq!(bytes as u64, 2 * n, "every response says ok");
        println!("{n} requests served ({mode:?})");
    });
}

/// Whether the mode's responses carry `X-Amzn-Trace-Id`.
fn answers_trace_header(mode: bench::Mode) -> bool {
    !matches!(
        mode,
        bench::Mode::Bare | bench::Mode::TraceLayer | bench::Mode::Otel | bench::Mode::Disabled
    )
}
