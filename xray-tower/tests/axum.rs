//! The layer on real axum servers, checked on the documents that reach a real UDP collector.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get as route_get;
use axum::Router;
use bytes::Bytes;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xray_core::sampling::NeverSample;
use xray_core::{FutureExt, Recorder};
use xray_local::Collector;
use xray_tower::{Segment, XRayLayer};

fn layer(collector: &Collector) -> XRayLayer {
    XRayLayer::new("svc").with_recorder(collector.recorder("svc"))
}

fn app(collector: &Collector) -> Router {
    Router::new()
        .route("/", route_get(|| async { "ok" }))
        .route("/users/{id}", route_get(|| async { "user" }))
        .layer(layer(collector))
}

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
const PARENT: &str = "53995c3f42cd8ad8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_trace_records_request_and_response_blocks() {
    let collector = Collector::start().unwrap();
    let addr = serve_axum(app(&collector)).await;
    let reply = get(
        addr,
        "/users/7?token=secret",
        &[("user-agent", "probe/1.0")],
    )
    .await;
    assert_eq!(reply.status, 200);

    let doc = &segments(&collector, 1)[0];
    assert_eq!(doc.name, "svc");
    assert_eq!(doc.parent_id, None);
    let req = doc.http.request.as_ref().unwrap();
    assert_eq!(req.method.as_deref(), Some("GET"));
    assert_eq!(
        req.url.as_deref(),
        Some(format!("http://{addr}/users/7").as_str())
    );
    assert_eq!(req.user_agent.as_deref(), Some("probe/1.0"));
    assert_eq!(req.client_ip.as_deref(), Some("127.0.0.1"));
    assert!(!req.x_forwarded_for);
    let res = doc.http.response.as_ref().unwrap();
    assert_eq!(res.status, Some(200));
    assert_eq!(res.content_length, Some(4));
    assert!(doc.end_time.is_some() && !doc.in_progress);
    assert!(!doc.error && !doc.fault && !doc.throttle);
    // A new trace: the response names it, without a sampling decision nobody asked for.
    let trace_id = doc.trace_id.unwrap().to_string();
    assert_eq!(
        reply.trace_header(),
        Some(format!("Root={trace_id}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_header_continues_the_callers_trace() {
    let collector = Collector::start().unwrap();
    let addr = serve_axum(app(&collector)).await;
    let header = format!("Root={ROOT};Parent={PARENT};Sampled=1");
    let reply = get(addr, "/", &[("x-amzn-trace-id", &header)]).await;

    let doc = &segments(&collector, 1)[0];
    assert_eq!(doc.trace_id.unwrap().to_string(), ROOT);
    assert_eq!(doc.parent_id.unwrap().to_string(), PARENT);
    assert_eq!(reply.trace_header(), Some(format!("Root={ROOT}").as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_zero_emits_nothing_but_answers_with_the_root() {
    let collector = Collector::start().unwrap();
    let addr = serve_axum(app(&collector)).await;
    let header = format!("Root={ROOT};Parent={PARENT};Sampled=0");
    let reply = get(addr, "/users/1", &[("x-amzn-trace-id", &header)]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.trace_header(), Some(format!("Root={ROOT}").as_str()));

    // A sampled request after it: once its document is in, the unsampled one would be too.
    get(addr, "/", &[]).await;
    let docs = segments(&collector, 1);
    std::thread::sleep(Duration::from_millis(100));
    let docs_later = collector.documents();
    assert_eq!(docs.len(), 1, "{docs:#?}");
    assert_eq!(docs_later.len(), 1, "{docs_later:#?}");
    assert_eq!(url_of(&docs[0]), format!("http://{addr}/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_question_mark_is_answered_in_response_header() {
    let collector = Collector::start().unwrap();
    let addr = serve_axum(app(&collector)).await;
    let header = format!("Root={ROOT};Sampled=?");
    let reply = get(addr, "/", &[("x-amzn-trace-id", &header)]).await;
    assert_eq!(
        reply.trace_header(),
        Some(format!("Root={ROOT};Sampled=1").as_str())
    );
    let doc = &segments(&collector, 1)[0];
    assert_eq!(doc.trace_id.unwrap().to_string(), ROOT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_question_mark_gets_the_samplers_no() {
    let collector = Collector::start().unwrap();
    let never = Recorder::builder()
        .daemon_address(collector.daemon_address())
        .sampler(NeverSample)
        .ignore_env()
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", route_get(|| async { "ok" }))
        .layer(XRayLayer::new("svc").with_recorder(never.clone()));
    let addr = serve_axum(app).await;
    let header = format!("Root={ROOT};Sampled=?");
    let reply = get(addr, "/", &[("x-amzn-trace-id", &header)]).await;
    assert_eq!(
        reply.trace_header(),
        Some(format!("Root={ROOT};Sampled=0").as_str())
    );
    assert!(never.flush(WAIT));
    std::thread::sleep(Duration::from_millis(100));
    assert!(collector.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_sdk_builds_nothing_and_still_answers_the_header() {
    let collector = Collector::start().unwrap();
    let off = Recorder::builder()
        .daemon_address(collector.daemon_address())
        .sampler(xray_core::sampling::AlwaysSample)
        .enabled(false)
        .ignore_env()
        .build()
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen2 = seen.clone();
    let app = Router::new()
        .route(
            "/",
            route_get(|segment: Segment| async move {
                assert!(!segment.is_sampled());
                "ok"
            }),
        )
        .layer(XRayLayer::new("svc").with_recorder(off.clone()).on_request(
            move |_: &http::Request<Body>, _: &xray_core::Entity| {
                seen2.store(true, std::sync::atomic::Ordering::SeqCst)
            },
        ));
    let addr = serve_axum(app).await;
    let header = format!("Root={ROOT};Parent={PARENT};Sampled=1");
    let reply = get(addr, "/", &[("x-amzn-trace-id", &header)]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.trace_header(), Some(format!("Root={ROOT}").as_str()));
    assert!(
        !seen.load(std::sync::atomic::Ordering::SeqCst),
        "hook ran for an unsampled request"
    );
    assert!(off.flush(WAIT));
    std::thread::sleep(Duration::from_millis(100));
    assert!(collector.received().is_empty());
}

/// Counts the events at ERROR level logged while it is the thread's subscriber.
#[derive(Clone, Default)]
struct ErrorCount(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorCount {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl ErrorCount {
    /// Errors `f` logs.
    fn during(&self, f: impl FnOnce()) -> usize {
        use tracing_subscriber::layer::SubscriberExt;
        let before = self.0.load(std::sync::atomic::Ordering::SeqCst);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(self.clone()), f);
        self.0.load(std::sync::atomic::Ordering::SeqCst) - before
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_sdk_without_a_trace_header_does_nothing_and_handlers_still_work() {
    let collector = Collector::start().unwrap();
    let off = Recorder::builder()
        .daemon_address(collector.daemon_address())
        .sampler(xray_core::sampling::AlwaysSample)
        .enabled(false)
        .ignore_env()
        .build()
        .unwrap();
    let errors = ErrorCount::default();
    // Outside any request, a call on the current segment is a context-missing error (the
    // process-wide recorder is enabled here): the check below can fail.
    assert_eq!(errors.during(|| xray_core::put_annotation("outside", 1)), 1);
    let errors2 = errors.clone();
    let app = Router::new()
        .route(
            "/",
            route_get(move |segment: Segment| {
                let errors = errors2.clone();
                async move {
                    assert!(!segment.is_sampled());
                    segment.put_annotation("ignored", 1);
                    assert!(xray_core::current().is_none());
                    assert!(xray_core::context::in_disabled_request());
                    // Not a context-missing error inside a request the disabled SDK serves,
                    // nor in a task spawned from it.
                    let logged = errors.during(|| xray_core::put_annotation("k", 1));
                    let spawned = tokio::spawn(
                        async { xray_core::context::in_disabled_request() }.in_current_segment(),
                    );
                    assert!(spawned.await.unwrap());
                    format!("{logged}")
                }
            }),
        )
        .layer(XRayLayer::new("svc").with_recorder(off.clone()));
    let addr = serve_axum(app).await;
    let reply = get(addr, "/", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], b"0", "errors logged by the handler");
    assert_eq!(reply.trace_header(), None, "nothing to answer with");
    assert!(!xray_core::context::in_disabled_request());
    assert!(off.flush(WAIT));
    std::thread::sleep(Duration::from_millis(100));
    assert!(collector.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_naming_follows_matching_hosts_only() {
    let collector = Collector::start().unwrap();
    let app = Router::new()
        .route("/", route_get(|| async { "ok" }))
        .layer(layer(&collector).with_dynamic_naming("*mysite.com*"));
    let addr = serve_axum(app).await;
    for host in [
        "api.mysite.com:8080",
        "WWW.MySite.com",
        "other.org",
        "mysite.org",
    ] {
        get(addr, "/", &[("host", host)]).await;
    }
    let docs = segments(&collector, 4);
    let mut names: Vec<(String, String)> = docs
        .iter()
        .map(|d| (url_of(d), d.name.to_string()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("http://WWW.MySite.com/".into(), "WWW.MySite.com".into()),
            (
                "http://api.mysite.com:8080/".into(),
                "api.mysite.com".into()
            ),
            ("http://mysite.org/".into(), "svc".into()),
            ("http://other.org/".into(), "svc".into()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_set_error_throttle_and_fault() {
    let collector = Collector::start().unwrap();
    let app = Router::new()
        .route("/ok", route_get(|| async { "ok" }))
        .route(
            "/slow-down",
            route_get(|| async { StatusCode::TOO_MANY_REQUESTS }),
        )
        .route(
            "/broken",
            route_get(|| async { Err::<&str, _>((StatusCode::INTERNAL_SERVER_ERROR, "db down")) }),
        )
        .layer(layer(&collector));
    let addr = serve_axum(app).await;
    for (path, status) in [
        ("/ok", 200),
        ("/missing", 404),
        ("/slow-down", 429),
        ("/broken", 500),
    ] {
        assert_eq!(get(addr, path, &[]).await.status, status);
    }
    let docs = segments(&collector, 4);
    let flags = |path: &str| {
        let d = docs
            .iter()
            .find(|d| url_of(d).ends_with(path))
            .unwrap_or_else(|| panic!("no document for {path}"));
        (status_of(d).unwrap(), d.error, d.throttle, d.fault)
    };
    assert_eq!(flags("/ok"), (200, false, false, false));
    assert_eq!(flags("/missing"), (404, true, false, false));
    assert_eq!(flags("/slow-down"), (429, true, true, false));
    assert_eq!(flags("/broken"), (500, false, false, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_is_a_fault_and_the_panic_keeps_unwinding() {
    let collector = Collector::start().unwrap();
    let app = Router::new()
        .route(
            "/panic",
            route_get(|| async {
                if true {
                    panic!("boom in handler");
                }
                "unreachable"
            }),
        )
        .route("/", route_get(|| async { "ok" }))
        .layer(layer(&collector));
    let addr = serve_axum(app).await;
    // The panic reaches the connection task, which hyper drops: no response at all.
    assert!(try_get(addr, "/panic", &[]).await.is_err());
    // The server itself goes on.
    assert_eq!(get(addr, "/", &[]).await.status, 200);

    let docs = segments(&collector, 2);
    let doc = docs.iter().find(|d| url_of(d).ends_with("/panic")).unwrap();
    assert!(doc.fault);
    assert!(doc.end_time.is_some());
    assert_eq!(doc.http.response, None);
    assert_eq!(
        cause_messages(doc),
        vec!["panicked: boom in handler".to_string()]
    );
    // Emitted exactly once.
    std::thread::sleep(Duration::from_millis(100));
    let all = collector.documents();
    assert_eq!(all.iter().filter(|d| d.id == doc.id).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_body_ends_the_segment_after_the_last_chunk() {
    let collector = Collector::start().unwrap();
    let app = Router::new()
        .route(
            "/stream",
            route_get(|| async {
                let chunks = futures_util::stream::unfold(0u32, |i| async move {
                    if i == 3 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // Polled by hyper outside the handler: the segment is still current.
                    xray_core::capture(&format!("chunk-{i}"), || ());
                    Some((Ok::<_, Infallible>(Bytes::from("0123456789")), i + 1))
                });
                Body::from_stream(chunks)
            }),
        )
        .layer(layer(&collector));
    let addr = serve_axum(app).await;
    let reply = get(addr, "/stream", &[]).await;
    assert_eq!(reply.body.len(), 30);

    let doc = &segments(&collector, 1)[0];
    let took = doc.end_time.unwrap().as_secs_f64() - doc.start_time.as_secs_f64();
    assert!(
        took >= 0.3,
        "segment ended before the body was sent: {took}s"
    );
    assert_eq!(doc.http.response.as_ref().unwrap().content_length, Some(30));
    let names: Vec<&str> = doc.subsegments.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["chunk-0", "chunk-1", "chunk-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_mid_body_ends_the_segment_with_error() {
    let collector = Collector::start().unwrap();
    let app = Router::new()
        .route(
            "/endless",
            route_get(|| async {
                let chunks = futures_util::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((Ok::<_, Infallible>(Bytes::from_static(b"tick\n")), ()))
                });
                Body::from_stream(chunks)
            }),
        )
        .layer(layer(&collector));
    let addr = serve_axum(app).await;

    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /endless HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("tick") {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    drop(socket);

    let doc = &segments(&collector, 1)[0];
    assert_eq!(status_of(doc), Some(200));
    assert!(doc.error && !doc.fault);
    assert!(doc.end_time.is_some());
    let causes = cause_messages(doc);
    assert_eq!(causes.len(), 1);
    assert!(
        causes[0].contains("dropped before it was fully sent"),
        "{causes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_keep_their_own_segments() {
    let collector = Collector::start().unwrap();
    let app = Router::new()
        .route(
            "/work/{n}",
            route_get(
                |axum::extract::Path(n): axum::extract::Path<u32>| async move {
                    xray_core::put_annotation("n", n);
                    xray_core::capture_async(&format!("work-{n}"), async move {
                        tokio::time::sleep(Duration::from_millis(u64::from(20 - n) * 3)).await;
                    })
                    .await;
                    xray_core::put_annotation("n_after_await", n);
                    n.to_string()
                },
            ),
        )
        .layer(layer(&collector));
    let addr = serve_axum(app).await;
    let replies = futures_util::future::join_all(
        (0..20).map(|n| async move { get(addr, &format!("/work/{n}"), &[]).await }),
    )
    .await;
    let mut trace_ids = std::collections::HashSet::new();
    for (n, r) in replies.iter().enumerate() {
        assert_eq!(r.body, n.to_string());
        assert!(trace_ids.insert(r.trace_header().unwrap().to_string()));
    }
    let docs = segments(&collector, 20);
    assert_eq!(docs.len(), 20);
    for doc in &docs {
        let n = url_of(doc)
            .rsplit('/')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap();
        assert_eq!(doc.annotations["n"], n);
        assert_eq!(doc.annotations["n_after_await"], n);
        assert_eq!(doc.subsegments.len(), 1);
        assert_eq!(doc.subsegments[0].name, format!("work-{n}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subsegments_from_handler_and_spawned_task_attach_to_the_segment() {
    let collector = Collector::start().unwrap();
    let app = Router::new()
        .route(
            "/",
            route_get(|| async {
                xray_core::capture_async("in-handler", async {}).await;
                tokio::spawn(
                    async { xray_core::capture_async("in-spawned-task", async {}).await }
                        .in_current_segment(),
                )
                .await
                .unwrap();
                "ok"
            }),
        )
        .layer(layer(&collector));
    let addr = serve_axum(app).await;
    get(addr, "/", &[]).await;
    let doc = &segments(&collector, 1)[0];
    let names: Vec<&str> = doc.subsegments.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["in-handler", "in-spawned-task"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_extractor_and_hooks_record_on_the_segment() {
    let collector = Collector::start().unwrap();
    let app = Router::new()
        .route(
            "/",
            route_get(|segment: Segment, maybe: Option<Segment>| async move {
                assert_eq!(maybe.map(|s| s.id()), Some(segment.id()));
                segment.set_user("alice");
                segment.put_metadata("cart", serde_json::json!({"items": 3}));
                "ok"
            }),
        )
        .layer(
            layer(&collector)
                .on_request(|req: &http::Request<Body>, seg: &xray_core::Entity| {
                    if let Some(t) = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()) {
                        seg.put_annotation("tenant", t);
                    }
                })
                .on_response(|res: &http::Response<Body>, seg: &xray_core::Entity| {
                    seg.put_annotation(
                        "had_trace_header",
                        res.headers().contains_key("x-amzn-trace-id"),
                    );
                }),
        );
    let addr = serve_axum(app).await;
    get(addr, "/", &[("x-tenant", "acme")]).await;
    let doc = &segments(&collector, 1)[0];
    assert_eq!(doc.user.as_deref(), Some("alice"));
    assert_eq!(doc.annotations["tenant"], "acme");
    assert_eq!(doc.annotations["had_trace_header"], true);
    assert_eq!(doc.metadata["default"]["cart"]["items"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_x_forwarded_for_address_is_the_client_ip() {
    let collector = Collector::start().unwrap();
    let addr = serve_axum(app(&collector)).await;
    get(addr, "/", &[("x-forwarded-for", "203.0.113.7, 10.0.0.1")]).await;
    let doc = &segments(&collector, 1)[0];
    let req = doc.http.request.as_ref().unwrap();
    assert_eq!(req.client_ip.as_deref(), Some("203.0.113.7"));
    assert!(req.x_forwarded_for);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_as_route_layer_and_around_the_whole_router() {
    let collector = Collector::start().unwrap();
    // route_layer: only matched routes are traced.
    let routed = Router::new()
        .route("/traced", route_get(|| async { "ok" }))
        .route_layer(layer(&collector));
    let addr = serve_axum(routed).await;
    get(addr, "/traced", &[]).await;
    assert_eq!(get(addr, "/nowhere", &[]).await.status, 404);

    // ServiceBuilder around the router: every request, 404s included.
    let outer = tower::ServiceBuilder::new()
        .map_response(|res: http::Response<_>| res.map(Body::new))
        .layer(layer(&collector))
        .service(Router::new().route("/inner", route_get(|| async { "ok" })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr2 = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let make = axum::ServiceExt::<axum::extract::Request>::into_make_service(outer);
        axum::serve(listener, make).await.unwrap();
    });
    get(addr2, "/inner", &[]).await;
    assert_eq!(get(addr2, "/nowhere", &[]).await.status, 404);

    let docs = segments(&collector, 3);
    std::thread::sleep(Duration::from_millis(100));
    let mut urls: Vec<String> = collector.documents().iter().map(url_of).collect();
    urls.sort();
    let mut expected = vec![
        format!("http://{addr}/traced"),
        format!("http://{addr2}/inner"),
        format!("http://{addr2}/nowhere"),
    ];
    expected.sort();
    assert_eq!(urls, expected, "{docs:#?}");
}

fn panicking_app(collector: &Collector, catch_inside: bool) -> Router {
    let router = Router::new().route(
        "/panic",
        route_get(|| async {
            if true {
                panic!("boom under catch-panic");
            }
            "unreachable"
        }),
    );
    if catch_inside {
        router
            .layer(tower_http::catch_panic::CatchPanicLayer::new())
            .layer(layer(collector))
    } else {
        router
            .layer(layer(collector))
            .layer(tower_http::catch_panic::CatchPanicLayer::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_panic_inside_the_layer_is_recorded_as_a_500() {
    let collector = Collector::start().unwrap();
    let addr = serve_axum(panicking_app(&collector, true)).await;
    assert_eq!(get(addr, "/panic", &[]).await.status, 500);
    let doc = &segments(&collector, 1)[0];
    assert_eq!(status_of(doc), Some(500));
    assert!(doc.fault);
    assert!(cause_messages(doc).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_panic_outside_the_layer_keeps_the_panic_message() {
    let collector = Collector::start().unwrap();
    let addr = serve_axum(panicking_app(&collector, false)).await;
    let reply = get(addr, "/panic", &[]).await;
    assert_eq!(reply.status, 500);
    let doc = &segments(&collector, 1)[0];
    assert_eq!(status_of(doc), None);
    assert!(doc.fault);
    assert_eq!(
        cause_messages(doc),
        vec!["panicked: boom under catch-panic".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_request_completes_without_waiting_for_a_body() {
    let collector = Collector::start().unwrap();
    let addr = serve_axum(app(&collector)).await;
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"HEAD /users/7 HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    socket.read_to_end(&mut reply).await.unwrap();
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"));

    let doc = &segments(&collector, 1)[0];
    assert_eq!(
        doc.http.request.as_ref().unwrap().method.as_deref(),
        Some("HEAD")
    );
    assert_eq!(status_of(doc), Some(200));
    assert!(!doc.error && !doc.fault, "nothing was abandoned: {doc:?}");
    assert!(doc.cause.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_recorded_from_a_hostile_request_are_capped() {
    let collector = Collector::start().unwrap();
    let addr = serve_axum(app(&collector)).await;
    let long_agent = "A".repeat(10_000);
    let long_path = format!("/users/{}", "7".repeat(10_000));
    let header = format!("Root={ROOT};Parent={PARENT};Sampled=1");
    let reply = get(
        addr,
        &long_path,
        &[("x-amzn-trace-id", &header), ("user-agent", &long_agent)],
    )
    .await;
    assert_eq!(reply.status, 200);

    let doc = &segments(&collector, 1)[0];
    let req = doc.http.request.as_ref().unwrap();
    assert_eq!(req.user_agent.as_deref().map(str::len), Some(2048));
    assert_eq!(req.url.as_deref().map(str::len), Some(2048));
}
