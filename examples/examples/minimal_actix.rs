//! The smallest traced actix-web service.
//!
//! `cargo run -p examples --example minimal_actix` serves one request to itself and prints the
//! trace an in-process collector received.

use std::time::Duration;

use actix_web::{web, App, HttpServer};
use xray_actix::{Segment, XRay};
use xray_local::{render_trace, Collector, RenderOptions};

async fn hello(segment: Segment) -> &'static str {
    // The segment of this request, also reachable with `xray_core::current()`.
    segment.put_annotation("greeting", "hello");
    "hello"
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in for the X-Ray daemon. In production leave out `with_recorder`: segments then
    // go to the daemon at AWS_XRAY_DAEMON_ADDRESS (default 127.0.0.1:2000).
    let collector = Collector::start()?;
    let xray = XRay::new("minimal-actix").with_recorder(collector.recorder("minimal-actix"));

    let server = HttpServer::new(move || {
        App::new()
            .route("/", web::get().to(hello))
            // Registered last, so it wraps everything else.
            .wrap(xray.clone())
    })
    .workers(1)
    .bind("127.0.0.1:0")?;
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let body = reqwest::get(format!("http://{addr}/"))
        .await?
        .text()
        .await?;
    println!("GET / → {body}\n");
    let trace = collector
        .wait_for_trace(|_| true, Duration::from_secs(5))
        .ok_or("no trace arrived")?;
    print!("{}", render_trace(&trace, &RenderOptions::default()));
    handle.stop(true).await;
    Ok(())
}
