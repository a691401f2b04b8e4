//! The middleware on a real actix-web server, checked on the documents that reach a real UDP
//! receiver.

mod common;

use std::time::Duration;

use actix_web::{error, web, HttpResponse, ResponseError};
use common::{client, collector, response_root, root_of, segment_of, TestServer, WAIT};
use futures_util::stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xray_actix::{Segment, XRay};
use xray_core::document::Cause;
use xray_core::{EntityId, FutureExt, Recorder, TraceId};

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/ok",
        web::get().to(|| async { HttpResponse::Ok().body("hello") }),
    )
    .route("/status/{code}", web::get().to(status))
    .route("/bad", web::get().to(bad))
    .route("/broken", web::get().to(broken))
    .route("/custom", web::get().to(custom))
    .route("/panic", web::get().to(panics))
    .route("/stream/{n}", web::get().to(streamed))
    .route("/forever", web::get().to(forever))
    .route("/body-panic", web::get().to(body_panic))
    .route("/work/{n}", web::get().to(work))
    .route("/spawned", web::get().to(spawned))
    .route("/extract", web::get().to(extract));
}

async fn status(code: web::Path<u16>) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(code.into_inner()).unwrap();
    HttpResponse::build(code).body("x".repeat(7))
}

async fn bad() -> Result<HttpResponse, actix_web::Error> {
    Err(error::ErrorBadRequest("nope"))
}

async fn broken() -> Result<HttpResponse, actix_web::Error> {
    Err(error::ErrorInternalServerError("database is down"))
}

#[derive(Debug)]
struct OutOfStock {
    item: u32,
}

impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "item {} is out of stock", self.item)
    }
}

impl ResponseError for OutOfStock {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::CONFLICT
    }
}

async fn custom() -> Result<HttpResponse, OutOfStock> {
    Err(OutOfStock { item: 7 })
}

async fn panics() -> HttpResponse {
    panic!("boom in handler")
}

/// `n` chunks, 50 ms apart; each chunk opens a subsegment from the body stream itself.
async fn streamed(n: web::Path<u32>) -> HttpResponse {
    let n = n.into_inner();
    let body = stream::unfold(0u32, move |i| async move {
        if i == n {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        xray_core::capture("chunk", || ());
        Some((
            Ok::<_, actix_web::Error>(web::Bytes::from_static(b"0123456789")),
            i + 1,
        ))
    });
    HttpResponse::Ok().streaming(body)
}

async fn forever() -> HttpResponse {
    let body = stream::unfold((), |()| async {
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        Some((
            Ok::<_, actix_web::Error>(web::Bytes::from(vec![b'x'; 1024])),
            (),
        ))
    });
    HttpResponse::Ok().streaming(body)
}

/// One chunk, then the body stream panics.
async fn body_panic() -> HttpResponse {
    let body = stream::unfold(0u32, |i| async move {
        if i == 1 {
            // Let the head and the first chunk go out first.
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            panic!("boom in body");
        }
        Some((
            Ok::<_, actix_web::Error>(web::Bytes::from_static(b"first")),
            i + 1,
        ))
    });
    HttpResponse::Ok().streaming(body)
}

/// Interleaves with other requests and checks it still sees its own segment afterwards.
async fn work(n: web::Path<u32>) -> HttpResponse {
    let n = n.into_inner();
    xray_core::put_annotation("before", n);
    xray_core::capture_async(&format!("step-{n}"), async {
        actix_web::rt::time::sleep(Duration::from_millis(30)).await;
    })
    .await;
    xray_core::put_annotation("after", n);
    HttpResponse::Ok().finish()
}

async fn spawned() -> HttpResponse {
    let task = actix_web::rt::spawn(
        async {
            xray_core::capture_async("spawned", async {
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            })
            .await
        }
        .in_current_segment(),
    );
    task.await.unwrap();
    xray_core::capture("inline", || ());
    HttpResponse::Ok().finish()
}

async fn extract(segment: Segment) -> HttpResponse {
    segment.put_annotation("via_extractor", true);
    HttpResponse::Ok().body(segment.id().to_string())
}

fn header(sampled: &str) -> (TraceId, EntityId, String) {
    let root = TraceId::new();
    let parent = EntityId::new();
    let h = format!("Root={root};Parent={parent};Sampled={sampled}");
    (root, parent, h)
}

fn server(recorder: Recorder) -> TestServer {
    TestServer::start(XRay::new("shop").with_recorder(recorder), routes)
}

fn exceptions(doc: &xray_core::Document) -> &[xray_core::document::Exception] {
    match &doc.cause {
        Some(Cause::Exceptions(data)) => &data.exceptions,
        other => panic!("expected exceptions in the cause, got {other:?}"),
    }
}

#[tokio::test]
async fn incoming_header_continues_the_trace() {
    let (c, r) = collector();
    let s = server(r);
    let (root, parent, h) = header("1");
    let res = client()
        .get(s.url("/ok"))
        .header("x-amzn-trace-id", h)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let returned = res.headers()["x-amzn-trace-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        returned,
        format!("Root={root}"),
        "Sampled is only echoed when asked"
    );
    let doc = segment_of(&c, &root.to_string());
    assert_eq!(doc.parent_id, Some(parent));
    assert_eq!(doc.name, "shop");
    assert!(doc.end_time.is_some() && !doc.in_progress);
}

#[tokio::test]
async fn request_without_header_starts_a_new_trace() {
    let (c, r) = collector();
    let s = server(r);
    let res = client().get(s.url("/ok")).send().await.unwrap();
    let root = response_root(&res);
    let doc = segment_of(&c, &root);
    assert_eq!(doc.parent_id, None);
}

#[tokio::test]
async fn malformed_trace_header_starts_a_new_trace() {
    let (c, r) = collector();
    let s = server(r);
    let res = client()
        .get(s.url("/ok"))
        .header("x-amzn-trace-id", "Root=1-zzzz;Parent=;Sampled=1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let root = response_root(&res);
    assert!(
        root.starts_with("1-") && root.len() == 35,
        "fresh trace id: {root}"
    );
    let doc = segment_of(&c, &root);
    assert_eq!(doc.parent_id, None);
}

#[tokio::test]
async fn sampled_zero_sends_nothing_and_keeps_the_root() {
    let (c, r) = collector();
    let s = server(r);
    let (root, _, h) = header("0");
    let res = client()
        .get(s.url("/ok"))
        .header("x-amzn-trace-id", h)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(response_root(&res), root.to_string());
    // A sampled request afterwards: once it arrives, anything sent before it has arrived too.
    let (later, _, h) = header("1");
    client()
        .get(s.url("/ok"))
        .header("x-amzn-trace-id", h)
        .send()
        .await
        .unwrap();
    segment_of(&c, &later.to_string());
    let docs = c.documents();
    assert_eq!(docs.len(), 1, "only the sampled request was sent: {docs:?}");
}

#[tokio::test]
async fn sampled_question_mark_is_answered_in_response_header() {
    let (c, r) = collector();
    let s = server(r);
    let (root, _, h) = header("?");
    let res = client()
        .get(s.url("/ok"))
        .header("x-amzn-trace-id", h)
        .send()
        .await
        .unwrap();
    let returned = res.headers()["x-amzn-trace-id"].to_str().unwrap();
    assert_eq!(returned, format!("Root={root};Sampled=1"));
    segment_of(&c, &root.to_string());
}

#[tokio::test]
async fn sampled_question_mark_answered_with_zero_when_sampler_declines() {
    let (c, _) = collector();
    let never = Recorder::builder()
        .daemon_address(c.daemon_address())
        .sampler(xray_core::sampling::NeverSample)
        .ignore_env()
        .build()
        .unwrap();
    let s = server(never);
    let (root, _, h) = header("?");
    let res = client()
        .get(s.url("/ok"))
        .header("x-amzn-trace-id", h)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let returned = res.headers()["x-amzn-trace-id"].to_str().unwrap();
    assert_eq!(returned, format!("Root={root};Sampled=0"));
    let docs = c.wait_for_documents(1, Duration::from_millis(300));
    assert!(docs.is_empty(), "unsampled requests send nothing: {docs:?}");
}

#[tokio::test]
async fn http_request_records_method_url_user_agent_and_peer_address() {
    let (c, r) = collector();
    let s = server(r);
    let res = client()
        .get(s.url("/ok?token=secret"))
        .header("user-agent", "probe/1.0")
        .send()
        .await
        .unwrap();
    let doc = segment_of(&c, &response_root(&res));
    let req = doc.http.request.expect("http.request");
    assert_eq!(req.method.as_deref(), Some("GET"));
    assert_eq!(
        req.url,
        Some(format!("http://{}/ok", s.addr)),
        "no query string by default"
    );
    assert_eq!(req.user_agent.as_deref(), Some("probe/1.0"));
    assert_eq!(req.client_ip.as_deref(), Some("127.0.0.1"));
    assert!(!req.x_forwarded_for);
}

#[tokio::test]
async fn query_string_is_recorded_when_asked() {
    let (c, r) = collector();
    let s = TestServer::start(
        XRay::new("shop").with_recorder(r).record_query(true),
        routes,
    );
    let res = client().get(s.url("/ok?page=2")).send().await.unwrap();
    let doc = segment_of(&c, &response_root(&res));
    let url = doc.http.request.unwrap().url.unwrap();
    assert_eq!(url, format!("http://{}/ok?page=2", s.addr));
}

#[tokio::test]
async fn client_ip_comes_from_first_x_forwarded_for_address() {
    let (c, r) = collector();
    let s = server(r);
    let res = client()
        .get(s.url("/ok"))
        .header("x-forwarded-for", "203.0.113.9, 10.0.0.2")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let doc = segment_of(&c, &response_root(&res));
    let req = doc.http.request.unwrap();
    assert_eq!(req.client_ip.as_deref(), Some("203.0.113.9"));
    assert!(req.x_forwarded_for);
    assert!(req.url.unwrap().starts_with("https://"));
}

#[tokio::test]
async fn dynamic_naming_uses_the_host_without_port_when_it_matches() {
    let (c, r) = collector();
    let s = TestServer::start(
        XRay::new("fallback")
            .with_recorder(r)
            .with_dynamic_naming("*.example.com"),
        routes,
    );
    let matching = client()
        .get(s.url("/ok"))
        .header("host", "API.example.com:8443")
        .send()
        .await
        .unwrap();
    let other = client()
        .get(s.url("/ok"))
        .header("host", "internal.local")
        .send()
        .await
        .unwrap();
    assert_eq!(
        segment_of(&c, &response_root(&matching)).name,
        "API.example.com"
    );
    assert_eq!(segment_of(&c, &response_root(&other)).name, "fallback");
}

#[tokio::test]
async fn status_flags_follow_the_response_status() {
    let (c, r) = collector();
    let s = server(r);
    // (status, error, throttle, fault)
    let cases = [
        (200, false, false, false),
        (404, true, false, false),
        (429, true, true, false),
        (500, false, false, true),
        (503, false, false, true),
    ];
    for (code, error, throttle, fault) in cases {
        let res = client()
            .get(s.url(&format!("/status/{code}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), code);
        let doc = segment_of(&c, &response_root(&res));
        let response = doc.http.response.as_ref().unwrap();
        assert_eq!(response.status, Some(code));
        assert_eq!(response.content_length, Some(7));
        assert_eq!(
            (doc.error, doc.throttle, doc.fault),
            (error, throttle, fault),
            "flags for {code}"
        );
        assert!(doc.cause.is_none(), "a status alone records no cause");
    }
}

#[tokio::test]
async fn unrouted_request_is_recorded_as_404() {
    let (c, r) = collector();
    let s = server(r);
    let res = client().get(s.url("/nowhere")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let doc = segment_of(&c, &response_root(&res));
    assert_eq!(doc.http.response.unwrap().status, Some(404));
    assert!(doc.error && !doc.fault);
}

#[tokio::test]
async fn client_error_from_handler_sets_error_with_a_cause() {
    let (c, r) = collector();
    let s = server(r);
    let res = client().get(s.url("/bad")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let doc = segment_of(&c, &response_root(&res));
    assert!(doc.error && !doc.fault);
    let ex = exceptions(&doc);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].message.as_deref(), Some("nope"));
    assert_eq!(
        ex[0].kind.as_deref(),
        Some("Bad Request"),
        "no type name in the error's Debug"
    );
}

#[tokio::test]
async fn server_error_from_handler_sets_fault_with_a_cause() {
    let (c, r) = collector();
    let s = server(r);
    let res = client().get(s.url("/broken")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    let doc = segment_of(&c, &response_root(&res));
    assert!(doc.fault && !doc.error);
    let ex = exceptions(&doc);
    assert_eq!(ex[0].message.as_deref(), Some("database is down"));
}

#[tokio::test]
async fn response_error_type_is_named_after_its_debug_output() {
    let (c, r) = collector();
    let s = server(r);
    let res = client().get(s.url("/custom")).send().await.unwrap();
    assert_eq!(res.status(), 409);
    let doc = segment_of(&c, &response_root(&res));
    assert!(doc.error && !doc.fault);
    let ex = exceptions(&doc);
    assert_eq!(ex[0].message.as_deref(), Some("item 7 is out of stock"));
    assert_eq!(ex[0].kind.as_deref(), Some("OutOfStock"));
}

#[tokio::test]
async fn handler_panic_records_fault_once_and_server_keeps_serving() {
    let (c, r) = collector();
    let s = server(r);
    let (root, _, h) = header("1");
    let res = client()
        .get(s.url("/panic"))
        .header("x-amzn-trace-id", h)
        .send()
        .await;
    assert!(
        res.is_err(),
        "actix drops the connection of a panicking handler: {res:?}"
    );

    let after = client().get(s.url("/ok")).send().await.unwrap();
    assert_eq!(after.status(), 200, "the worker keeps serving");
    let after_root = response_root(&after);
    segment_of(&c, &after_root);

    let doc = segment_of(&c, &root.to_string());
    assert!(doc.fault);
    assert!(doc.end_time.is_some() && !doc.in_progress);
    let ex = exceptions(&doc);
    assert_eq!(ex.len(), 1, "the panic is recorded once: {ex:?}");
    assert_eq!(ex[0].message.as_deref(), Some("panicked: boom in handler"));
    assert_eq!(ex[0].kind.as_deref(), Some("panic"));
}

#[tokio::test]
async fn body_stream_panic_records_fault_once() {
    let (c, r) = collector();
    let s = server(r);
    let (root, _, h) = header("1");
    let res = client()
        .get(s.url("/body-panic"))
        .header("x-amzn-trace-id", h)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "the head was sent before the body panicked"
    );
    assert!(res.bytes().await.is_err(), "the body is cut short");
    let doc = segment_of(&c, &root.to_string());
    assert!(doc.fault && !doc.in_progress);
    let ex = exceptions(&doc);
    assert_eq!(ex.len(), 1, "the panic is recorded once: {ex:?}");
    assert_eq!(ex[0].message.as_deref(), Some("panicked: boom in body"));
    assert_eq!(
        doc.http.response.unwrap().content_length,
        Some(5),
        "bytes sent before"
    );
    let after = client().get(s.url("/ok")).send().await.unwrap();
    assert_eq!(after.status(), 200, "the worker keeps serving");
}

#[tokio::test]
async fn streamed_body_ends_the_segment_after_the_last_chunk() {
    let (c, r) = collector();
    let s = server(r);
    let res = client().get(s.url("/stream/4")).send().await.unwrap();
    let root = response_root(&res);
    let body = res.bytes().await.unwrap();
    assert_eq!(body.len(), 40);
    let doc = segment_of(&c, &root);
    let duration = doc.end_time.unwrap().as_secs_f64() - doc.start_time.as_secs_f64();
    assert!(
        duration >= 0.19,
        "the segment covers the whole stream: {duration}"
    );
    let response = doc.http.response.unwrap();
    assert_eq!(response.status, Some(200));
    assert_eq!(
        response.content_length,
        Some(40),
        "bytes counted while streaming"
    );
}

#[tokio::test]
async fn body_stream_runs_with_the_segment_current() {
    let (c, r) = collector();
    let s = server(r);
    let res = client().get(s.url("/stream/3")).send().await.unwrap();
    let root = response_root(&res);
    res.bytes().await.unwrap();
    let doc = segment_of(&c, &root);
    let names: Vec<&str> = doc.subsegments.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["chunk", "chunk", "chunk"]);
}

#[tokio::test]
async fn client_disconnecting_mid_body_ends_the_segment() {
    let (c, r) = collector();
    let s = server(r);
    let (root, _, h) = header("1");
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let request = format!("GET /forever HTTP/1.1\r\nHost: test\r\nx-amzn-trace-id: {h}\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut received = 0;
    let mut buf = [0u8; 4096];
    while received < 4096 {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream never ends by itself");
        received += n;
    }
    drop(conn);
    // The body is infinite: only the disconnect can end the segment, as abandoned mid-body
    // (the same rule as in xray-tower).
    let doc = segment_of(&c, &root.to_string());
    assert!(doc.end_time.is_some() && !doc.in_progress);
    assert!(doc.error && !doc.fault, "the client went away: {doc:?}");
    assert_eq!(exceptions(&doc)[0].kind.as_deref(), Some("Cancelled"));
    let response = doc.http.response.unwrap();
    assert_eq!(response.status, Some(200));
    assert!(
        response.content_length.unwrap() >= 1024,
        "bytes sent before the disconnect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_keep_their_own_segments() {
    let (c, r) = collector();
    let s = server(r);
    let http = client();
    let mut tasks = Vec::new();
    for n in 0..24u32 {
        let http = http.clone();
        let url = s.url(&format!("/work/{n}"));
        tasks.push(tokio::spawn(async move {
            let res = http.get(url).send().await.unwrap();
            (n, response_root(&res))
        }));
    }
    for t in tasks {
        let (n, root) = t.await.unwrap();
        let doc = segment_of(&c, &root);
        assert_eq!(doc.annotations["before"], n);
        assert_eq!(
            doc.annotations["after"], n,
            "still its own segment after awaiting"
        );
        assert_eq!(doc.subsegments.len(), 1);
        assert_eq!(doc.subsegments[0].name, format!("step-{n}"));
        assert!(doc
            .http
            .request
            .unwrap()
            .url
            .unwrap()
            .ends_with(&format!("/work/{n}")));
    }
    assert_eq!(c.documents().len(), 24);
}

#[tokio::test]
async fn subsegments_from_handler_and_spawned_task_attach_to_the_segment() {
    let (c, r) = collector();
    let s = server(r);
    let res = client().get(s.url("/spawned")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let doc = segment_of(&c, &response_root(&res));
    let mut names: Vec<&str> = doc.subsegments.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["inline", "spawned"]);
    for sub in &doc.subsegments {
        assert!(sub.end_time.is_some());
        assert!(
            sub.namespace.is_none(),
            "local subsegments carry no namespace"
        );
    }
}

#[tokio::test]
async fn segment_extractor_gives_the_request_segment() {
    let (c, r) = collector();
    let s = server(r);
    let res = client().get(s.url("/extract")).send().await.unwrap();
    let root = response_root(&res);
    let id = res.text().await.unwrap();
    let doc = segment_of(&c, &root);
    assert_eq!(doc.id.to_string(), id);
    assert_eq!(doc.annotations["via_extractor"], true);
}

#[tokio::test]
async fn segment_extractor_fails_without_the_middleware() {
    let s = TestServer::start_plain(|cfg| {
        cfg.route("/extract", web::get().to(extract)).route(
            "/optional",
            web::get().to(|seg: Option<Segment>| async move {
                HttpResponse::Ok().body(seg.is_some().to_string())
            }),
        );
    });
    let res = client().get(s.url("/extract")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    let res = client().get(s.url("/optional")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "false");
}

#[tokio::test]
async fn middleware_on_a_scope_traces_only_that_scope() {
    let (c, r) = collector();
    let xray = XRay::new("api").with_recorder(r);
    let s = TestServer::start_plain(move |cfg| {
        cfg.service(web::scope("/api").wrap(xray.clone()).route(
            "/items/{id}",
            web::get().to(|| async { HttpResponse::Ok().finish() }),
        ))
        .route(
            "/health",
            web::get().to(|| async { HttpResponse::Ok().finish() }),
        );
    });
    let health = client().get(s.url("/health")).send().await.unwrap();
    assert!(health.headers().get("x-amzn-trace-id").is_none());
    let item = client().get(s.url("/api/items/3")).send().await.unwrap();
    let doc = segment_of(&c, &response_root(&item));
    assert_eq!(doc.name, "api");
    assert!(doc
        .http
        .request
        .unwrap()
        .url
        .unwrap()
        .ends_with("/api/items/3"));
    assert_eq!(c.documents().len(), 1, "the unwrapped route sent nothing");
}

#[tokio::test]
async fn nested_middleware_records_one_segment() {
    let (c, r) = collector();
    let inner = XRay::new("inner").with_recorder(r.clone());
    let s = TestServer::start(XRay::new("outer").with_recorder(r), move |cfg| {
        cfg.service(web::scope("/api").wrap(inner.clone()).route(
            "/x",
            web::get().to(|| async {
                xray_core::capture("work", || ());
                HttpResponse::Ok().finish()
            }),
        ));
    });
    let res = client().get(s.url("/api/x")).send().await.unwrap();
    let doc = segment_of(&c, &response_root(&res));
    assert_eq!(doc.name, "outer");
    assert_eq!(doc.subsegments.len(), 1);
    c.wait_for_documents(2, Duration::from_millis(300));
    assert_eq!(c.documents().len(), 1);
}

#[tokio::test]
async fn trace_header_is_returned_on_handler_errors_too() {
    let (_c, r) = collector();
    let s = server(r);
    let (root, _, h) = header("?");
    let res = client()
        .get(s.url("/broken"))
        .header("x-amzn-trace-id", h)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let returned = res.headers()["x-amzn-trace-id"].to_str().unwrap();
    assert_eq!(root_of(returned), root.to_string());
    assert!(returned.ends_with(";Sampled=1"));
    let _ = WAIT;
}

#[tokio::test]
async fn disabled_sdk_records_nothing_and_the_extractor_still_works() {
    let (c, _) = collector();
    let off = Recorder::builder()
        .daemon_address(c.daemon_address())
        .sampler(xray_core::sampling::AlwaysSample)
        .enabled(false)
        .ignore_env()
        .build()
        .unwrap();
    let s = server(off.clone());
    // Without a trace header: no segment, no response header, a no-op segment for handlers.
    let res = client().get(s.url("/extract")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-amzn-trace-id").is_none());
    // With one: it is kept for the response (and for calls the handler would make).
    let (root, _, h) = header("1");
    let res = client()
        .get(s.url("/extract"))
        .header("x-amzn-trace-id", h)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(response_root(&res), root.to_string());
    assert!(off.flush(std::time::Duration::from_secs(2)));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(c.received().is_empty());
}
