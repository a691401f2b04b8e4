//! The routes on actix-web, traced by [`XRay`].

use std::collections::HashMap;
use std::future::Future;

use actix_web::body::BoxBody;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, Responder};
use xray_actix::XRay;

use crate::reply::{respond, Reply};
use crate::routes::{self, AppState};

impl Responder for Reply {
    type Body = BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, self.content_type))
            .body(self.body)
    }
}

/// Registers the routes; the app must hold an `AppState` in `web::Data`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| respond(routes::root())))
        .route(
            "/status/{code}",
            web::get()
                .to(|code: web::Path<String>| async move { respond(routes::status(&code)).await }),
        )
        .route("/annotated", web::get().to(|| respond(routes::annotated())))
        .route(
            "/work/{n}",
            web::get().to(|n: web::Path<String>| async move { respond(routes::work(&n)).await }),
        )
        .route(
            "/fanout/{n}",
            web::get().to(|n: web::Path<String>| async move { respond(routes::fanout(&n)).await }),
        )
        .route(
            "/call",
            web::get().to(
                |state: web::Data<AppState>, q: web::Query<HashMap<String, String>>| async move {
                    respond(routes::call(&state, &q)).await
                },
            ),
        )
        .route(
            "/dynamodb/{table}/{key}",
            web::get().to(
                |state: web::Data<AppState>, path: web::Path<(String, String)>| async move {
                    let (table, key) = path.into_inner();
                    respond(routes::dynamodb(&state, &table, &key)).await
                },
            ),
        )
        .route(
            "/db/{n}",
            web::get().to(
                |state: web::Data<AppState>, n: web::Path<String>| async move {
                    respond(routes::db(&state, &n)).await
                },
            ),
        )
        .route("/error", web::get().to(|| respond(routes::error())))
        .route("/panic", web::get().to(|| respond(routes::panic())));
}

/// An actix server with the routes, traced by `xray`, on `listener`, with `workers` worker
/// threads. Signals are left to the caller: stop it with [`stop_on`].
pub fn server(
    listener: std::net::TcpListener,
    state: AppState,
    xray: XRay,
    workers: usize,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(configure)
            // Registered last, so it is the outermost middleware.
            .wrap(xray.clone())
    })
    .listen(listener)?
    .workers(workers.max(1))
    .disable_signals()
    .shutdown_timeout(10)
    .run())
}

/// Stops the server gracefully (requests in flight finish) once `signal` completes.
pub fn stop_on(handle: ServerHandle, signal: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(async move {
        signal.await;
        handle.stop(true).await;
    });
}
