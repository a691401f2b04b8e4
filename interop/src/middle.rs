//! Our service in the middle of a chain: an axum router with `xray_tower::XRayLayer`, or an
//! actix app with `xray_actix::XRay`, whose handler calls the next hop with an
//! `xray_reqwest::XRayMiddleware` client.
//!
//! `GET /hop` calls `GET <next>` and answers `{"status": <its status>, "body": <its body, as
//! JSON when it is JSON>}` (502 with the error when the call fails).

use std::net::SocketAddr;
use std::thread::JoinHandle;

use reqwest_middleware::ClientWithMiddleware;
use serde_json::{json, Value};
use xray_core::Recorder;
use xray_reqwest::XRayMiddleware;

/// The web framework of the service in the middle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framework {
    /// axum with `xray_tower::XRayLayer`.
    Axum,
    /// actix-web with `xray_actix::XRay`.
    Actix,
}

impl Framework {
    /// The segment name the service records under.
    pub fn service_name(self) -> &'static str {
        match self {
            Framework::Axum => "rust-axum",
            Framework::Actix => "rust-actix",
        }
    }
}

/// A running middle service on a loopback port, in its own thread and runtime; stopped when
/// dropped.
#[derive(Debug)]
pub struct MiddleService {
    addr: SocketAddr,
    stop: Option<Stop>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
enum Stop {
    Axum(tokio::sync::oneshot::Sender<()>),
    Actix(actix_web::dev::ServerHandle),
}

fn client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(XRayMiddleware::new())
        .build()
}

/// Calls the next hop; the answer of `/hop` as (status, JSON body).
async fn call_next(client: &ClientWithMiddleware, next: &str) -> (u16, Value) {
    match client.get(next).send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (200, json!({ "status": status, "body": body }))
        }
        Err(e) => (502, json!({ "error": e.to_string() })),
    }
}

impl MiddleService {
    /// Starts the service on `framework`, recording with `recorder`, forwarding `/hop` to
    /// `next_url`.
    pub fn start(framework: Framework, recorder: Recorder, next_url: String) -> MiddleService {
        match framework {
            Framework::Axum => Self::start_axum(recorder, next_url),
            Framework::Actix => Self::start_actix(recorder, next_url),
        }
    }

    fn start_axum(recorder: Recorder, next_url: String) -> MiddleService {
        use axum::{extract::State, routing::get, Json, Router};
        use xray_tower::XRayLayer;

        async fn hop(
            State((client, next)): State<(ClientWithMiddleware, String)>,
        ) -> (http::StatusCode, Json<Value>) {
            let (status, body) = call_next(&client, &next).await;
            (
                http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY),
                Json(body),
            )
        }

        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async move {
                let app = Router::new()
                    .route("/hop", get(hop))
                    .with_state((client(), next_url))
                    .layer(XRayLayer::new(Framework::Axum.service_name()).with_recorder(recorder));
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind loopback");
                addr_tx
                    .send(listener.local_addr().expect("bound"))
                    .expect("the test waits");
                tokio::spawn(async move {
                    let app = app.into_make_service_with_connect_info::<SocketAddr>();
                    let _ = axum::serve(listener, app).await;
                });
                // Returning drops the runtime, which ends the server and its connections.
                let _ = stop_rx.await;
            });
        });
        let addr = addr_rx.recv().expect("the axum service started");
        MiddleService {
            addr,
            stop: Some(Stop::Axum(stop_tx)),
            thread: Some(thread),
        }
    }

    fn start_actix(recorder: Recorder, next_url: String) -> MiddleService {
        use actix_web::{web, App, HttpResponse, HttpServer};
        use xray_actix::XRay;

        async fn hop(state: web::Data<(ClientWithMiddleware, String)>) -> HttpResponse {
            let (client, next) = state.get_ref();
            let (status, body) = call_next(client, next).await;
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            HttpResponse::build(status).json(body)
        }

        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let state = web::Data::new((client(), next_url));
                let xray = XRay::new(Framework::Actix.service_name()).with_recorder(recorder);
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(xray.clone())
                        .app_data(state.clone())
                        .route("/hop", web::get().to(hop))
                })
                .workers(2)
                .disable_signals()
                .shutdown_timeout(0)
                .bind(("127.0.0.1", 0))
                .expect("bind loopback");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).expect("the test waits");
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv().expect("the actix service started");
        MiddleService {
            addr,
            stop: Some(Stop::Actix(handle)),
            thread: Some(thread),
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for MiddleService {
    fn drop(&mut self) {
        match self.stop.take() {
            Some(Stop::Axum(tx)) => {
                let _ = tx.send(());
            }
            // `stop` sends the command at once; the future it returns only waits for it.
            Some(Stop::Actix(handle)) => drop(handle.stop(false)),
            None => {}
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
