//! The routes on axum, traced by [`XRayLayer`].

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use xray_tower::XRayLayer;

use crate::reply::{respond, Reply};
use crate::routes::{self, AppState};

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response()
    }
}

/// The routes, each traced by `layer` (added with `Router::layer`, so unknown paths, answered
/// `404`, are traced too).
pub fn router(state: AppState, layer: XRayLayer) -> Router {
    Router::new()
        .route("/", get(|| respond(routes::root())))
        .route(
            "/status/{code}",
            get(|Path(code): Path<String>| async move { respond(routes::status(&code)).await }),
        )
        .route("/annotated", get(|| respond(routes::annotated())))
        .route(
            "/work/{n}",
            get(|Path(n): Path<String>| async move { respond(routes::work(&n)).await }),
        )
        .route(
            "/fanout/{n}",
            get(|Path(n): Path<String>| async move { respond(routes::fanout(&n)).await }),
        )
        .route(
            "/call",
            get(
                |State(state): State<AppState>, Query(q): Query<HashMap<String, String>>| async move {
                    respond(routes::call(&state, &q)).await
                },
            ),
        )
        .route(
            "/dynamodb/{table}/{key}",
            get(
                |State(state): State<AppState>, Path((table, key)): Path<(String, String)>| async move {
                    respond(routes::dynamodb(&state, &table, &key)).await
                },
            ),
        )
        .route(
            "/db/{n}",
            get(
                |State(state): State<AppState>, Path(n): Path<String>| async move {
                    respond(routes::db(&state, &n)).await
                },
            ),
        )
        .route("/error", get(|| respond(routes::error())))
        .route("/panic", get(|| respond(routes::panic())))
        .layer(layer)
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish.
/// The peer address is passed on, so segments record the client IP.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
