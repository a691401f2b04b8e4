//! actix-web hello-world with one worker, with or without the X-Ray middleware (or, in
//! `header` mode, only a middleware that adds a fixed trace header).

use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpServer};
use xray_actix::XRay;

async fn hello() -> &'static str {
    "ok"
}

fn main() -> std::io::Result<()> {
    let (mode, addr) = bench::args();
    if mode == bench::Mode::TraceLayer {
        eprintln!("tracelayer mode is for axum only (tower-http's TraceLayer is a tower layer)");
        std::process::exit(2);
    }
    let recorder = bench::recorder(mode);
    actix_web::rt::System::new().block_on(async move {
        println!("listening on {addr} ({mode:?})");
        match recorder {
            // Separate apps so that `bare` carries no trace of any middleware at all.
            None if mode == bench::Mode::Header => {
                HttpServer::new(|| {
                    App::new()
                        .wrap(
                            DefaultHeaders::new()
                                .add(("x-amzn-trace-id", bench::FIXED_TRACE_HEADER)),
                        )
                        .route("/", web::get().to(hello))
                })
                .workers(1)
                .bind(&addr)?
                .run()
                .await
            }
            None => {
                HttpServer::new(|| App::new().route("/", web::get().to(hello)))
                    .workers(1)
                    .bind(&addr)?
                    .run()
                    .await
            }
            Some(r) => {
                let xray = XRay::new("bench").with_recorder(r);
                HttpServer::new(move || {
                    App::new()
                        .wrap(xray.clone())
                        .route("/", web::get().to(hello))
                })
                .workers(1)
                .bind(&addr)?
                .run()
                .await
            }
        }
    })
}
