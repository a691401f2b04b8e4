//! actix-web hello-world with one worker, with or without the X-Ray middleware (or, in
//! `header` mode, only a middleware that adds a fixed trace header; in `otel` mode, the
//! OpenTelemetry SDK through a small middleware).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::{from_fn, DefaultHeaders, Next};
use actix_web::{web, App, Error, HttpServer};
use opentelemetry::context::FutureExt;
use opentelemetry::propagation::Extractor;
use xray_actix::XRay;

/// actix-web's header map, for the OpenTelemetry propagator.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The `otel` mode's middleware: one OpenTelemetry server span per request.
async fn otel_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let cx = {
        let headers = req.headers();
        let route = req.match_pattern();
        let version = match req.version() {
            actix_web::http::Version::HTTP_10 => "1.0",
            actix_web::http::Version::HTTP_2 => "2",
            actix_web::http::Version::HTTP_3 => "3",
            _ => "1.1",
        };
        bench::otel::start(
            &Headers(headers),
            &bench::otel::Request {
                method: req.method().as_str(),
                path: req.path(),
                route: route.as_deref().unwrap_or(req.path()),
                protocol_version: version,
                host: headers.get(header::HOST).and_then(|v| v.to_str().ok()),
                user_agent: headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()),
            },
        )
    };
    let result = next.call(req).with_context(cx.clone()).await;
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    bench::otel::end(&cx, status);
    result
}

async fn hello() -> &'static str {
    "ok"
}

fn main() -> std::io::Result<()> {
    let (mode, addr) = bench::args();
    if matches!(
        mode,
        bench::Mode::TraceLayer | bench::Mode::Wrap | bench::Mode::Minimal
    ) {
        eprintln!("the {mode:?} mode is for axum only (its middleware is a tower layer)");
        std::process::exit(2);
    }
    if mode == bench::Mode::Otel {
        // Before the runtime: the exporter makes its blocking HTTP client here.
        bench::otel::init();
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
            None if mode == bench::Mode::Otel => {
                HttpServer::new(|| {
                    App::new()
                        .wrap(from_fn(otel_span))
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
