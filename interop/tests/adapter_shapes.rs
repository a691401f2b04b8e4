//! The documents our server adapters and our client middleware write for failures (4xx,
//! throttling, 5xx, panics, refused connections, unknown routes) follow the X-Ray rules and
//! survive the X-Ray API round trip (moto; skipped loudly without `XRAY_TEST_MOTO_ENDPOINT`,
//! failed with `XRAY_REQUIRE_PEERS=1`).

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use interop::{assert_no_violations, xray_api, WAIT};
use xray_local::Collector;
use xray_reqwest::XRayMiddleware;

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("bound").port()
}

async fn call_closed_port() -> StatusCode {
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(XRayMiddleware::new())
        .build();
    match client
        .get(format!("http://127.0.0.1:{}/stock", closed_port()))
        .send()
        .await
    {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

const PATHS: [(&str, Option<u16>); 7] = [
    ("/ok", Some(200)),
    ("/teapot", Some(418)),
    ("/busy", Some(429)),
    ("/fail", Some(500)),
    ("/down", Some(502)),
    ("/nowhere", Some(404)),
    ("/panic", None),
];

#[test]
fn axum_failure_documents_follow_the_rules_and_survive_the_xray_api() {
    let collector = Collector::start().expect("the collector binds");
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/teapot", get(|| async { StatusCode::IM_A_TEAPOT }))
        .route("/busy", get(|| async { StatusCode::TOO_MANY_REQUESTS }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/down", get(call_closed_port))
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler gave up");
                }
                "unreachable"
            }),
        )
        .layer(xray_tower::XRayLayer::new("shapes-axum").with_recorder(collector.recorder("x")));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app).await;
        });
        let client = reqwest::Client::new();
        for (path, status) in PATHS {
            let res = client.get(format!("http://{addr}{path}")).send().await;
            match status {
                Some(s) => assert_eq!(res.expect(path).status().as_u16(), s, "{path}"),
                None => assert!(res.is_err(), "a panic drops the connection"),
            }
        }
    });

    let docs = collector.wait_for_documents(PATHS.len(), WAIT);
    assert_eq!(
        docs.len(),
        PATHS.len(),
        "one segment per request: {docs:#?}"
    );
    let flags: Vec<(bool, bool, bool)> = PATHS
        .iter()
        .map(|(path, _)| {
            let d = docs
                .iter()
                .find(|d| {
                    d.http
                        .request
                        .as_ref()
                        .and_then(|r| r.url.as_deref())
                        .is_some_and(|u| u.ends_with(path))
                })
                .unwrap_or_else(|| panic!("no segment for {path}: {docs:#?}"));
            (d.error, d.throttle, d.fault)
        })
        .collect();
    assert_eq!(
        flags,
        [
            (false, false, false),
            (true, false, false),
            (true, true, false),
            (false, false, true),
            (false, false, true),
            (true, false, false),
            (false, false, true),
        ],
        "error/throttle/fault per path"
    );
    let down = docs
        .iter()
        .find(|d| d.subsegments.iter().any(|s| s.fault && s.cause.is_some()));
    assert!(down.is_some(), "the refused call is a fault with a cause");

    assert_no_violations(&collector);
    if let Some(rt) = xray_api::finish(&collector) {
        assert_eq!(rt.documents, PATHS.len());
    }
}

#[test]
fn actix_failure_documents_follow_the_rules_and_survive_the_xray_api() {
    use actix_web::{test, web, App, HttpResponse};

    #[derive(Debug)]
    struct OutOfStock;
    impl std::fmt::Display for OutOfStock {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("item 42 is out of stock")
        }
    }
    impl actix_web::ResponseError for OutOfStock {
        fn status_code(&self) -> actix_web::http::StatusCode {
            actix_web::http::StatusCode::CONFLICT
        }
    }

    let collector = Collector::start().expect("the collector binds");
    let recorder = collector.recorder("x");
    actix_web::rt::System::new().block_on(async move {
        let app = test::init_service(
            App::new()
                .wrap(xray_actix::XRay::new("shapes-actix").with_recorder(recorder))
                .route(
                    "/ok",
                    web::get().to(|| async { HttpResponse::Ok().body("ok") }),
                )
                .route(
                    "/conflict",
                    web::get().to(|| async { Err::<HttpResponse, _>(OutOfStock) }),
                )
                .route(
                    "/busy",
                    web::get().to(|| async { HttpResponse::TooManyRequests().finish() }),
                )
                .route(
                    "/fail",
                    web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
                ),
        )
        .await;
        for path in ["/ok", "/conflict", "/busy", "/fail", "/nowhere"] {
            let res =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            let _ = test::read_body(res).await;
        }
    });

    let docs = collector.wait_for_documents(5, WAIT);
    assert_eq!(docs.len(), 5, "one segment per request: {docs:#?}");
    let conflict = docs
        .iter()
        .find(|d| d.http.response.as_ref().and_then(|r| r.status) == Some(409))
        .expect("the 409 segment");
    assert!(conflict.error && conflict.cause.is_some(), "{conflict:#?}");

    assert_no_violations(&collector);
    if let Some(rt) = xray_api::finish(&collector) {
        assert_eq!(rt.documents, 5);
    }
}
