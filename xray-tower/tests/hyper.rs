//! The layer around a plain hyper 1 server (hyper-util), and the client layer.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use xray_local::Collector;
use xray_tower::{ClientAddr, XRayClientLayer, XRayLayer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves a tower service on hyper, inserting `ClientAddr` per connection.
async fn serve_hyper<H, Fut>(layer: XRayLayer, handler: H) -> SocketAddr
where
    H: Fn(http::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<http::Response<Full<Bytes>>, BoxError>>
        + Send
        + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (socket, peer) = listener.accept().await.unwrap();
            let svc = tower::ServiceBuilder::new()
                .map_request(move |mut req: http::Request<Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    req
                })
                .layer(layer.clone())
                .service_fn(handler.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_server_records_client_addr_and_gives_handlers_the_segment() {
    let collector = Collector::start().unwrap();
    let layer = XRayLayer::new("plain-hyper").with_recorder(collector.recorder("svc"));
    let addr = serve_hyper(layer, |req: http::Request<Incoming>| async move {
        let segment = xray_tower::segment(&req).expect("the layer's segment is current");
        segment.put_annotation("via", "segment(&req)");
        // Inside a subsegment, `segment` still names the request's segment.
        xray_core::capture("inner", || {
            assert_eq!(
                xray_tower::segment(&req).map(|s| s.id()),
                Some(segment.id())
            );
        });
        assert_eq!(xray_core::current().map(|c| c.id()), Some(segment.id()));
        Ok(http::Response::new(Full::new(Bytes::from_static(b"hello"))))
    })
    .await;
    let reply = get(addr, "/hi", &[]).await;
    assert_eq!(reply.body, "hello");
    let doc = &segments(&collector, 1)[0];
    assert_eq!(doc.name, "plain-hyper");
    assert_eq!(doc.annotations["via"], "segment(&req)");
    let req = doc.http.request.as_ref().unwrap();
    assert_eq!(req.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(doc.http.response.as_ref().unwrap().content_length, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_service_error_is_a_fault_with_the_error_as_cause() {
    let collector = Collector::start().unwrap();
    let layer = XRayLayer::new("svc").with_recorder(collector.recorder("svc"));
    let addr = serve_hyper(layer, |_req| async move {
        Err::<http::Response<Full<Bytes>>, BoxError>("database unreachable".into())
    })
    .await;
    assert!(try_get(addr, "/", &[]).await.is_err());
    let doc = &segments(&collector, 1)[0];
    assert!(doc.fault && !doc.error);
    assert_eq!(doc.http.response, None);
    assert_eq!(
        cause_messages(doc),
        vec!["database unreachable".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_layer_records_a_remote_subsegment_and_continues_the_trace_downstream() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("svc");
    // Downstream service, traced too.
    let downstream = serve_axum(
        axum::Router::new()
            .route(
                "/items",
                axum::routing::get(|| async { (axum::http::StatusCode::NOT_FOUND, "none") }),
            )
            .layer(XRayLayer::new("downstream").with_recorder(recorder.clone())),
    )
    .await;
    // Front service calling it through the client layer.
    let front = serve_hyper(
        XRayLayer::new("front").with_recorder(recorder.clone()),
        move |_req| async move {
            let mut client = tower::ServiceBuilder::new()
                .layer(XRayClientLayer::new())
                .service(client());
            let req = http::Request::get(format!("http://{downstream}/items?q=1"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let res = tower::ServiceExt::oneshot(&mut client, req).await?;
            Ok(http::Response::new(Full::new(Bytes::from(
                res.status().as_str().to_string(),
            ))))
        },
    )
    .await;
    assert_eq!(get(front, "/", &[]).await.body, "404");

    let docs = segments(&collector, 2);
    let front_doc = docs.iter().find(|d| d.name == "front").unwrap();
    let down_doc = docs.iter().find(|d| d.name == "downstream").unwrap();
    assert_eq!(front_doc.subsegments.len(), 1);
    let call = &front_doc.subsegments[0];
    assert_eq!(call.name, "127.0.0.1");
    assert_eq!(call.namespace.as_deref(), Some("remote"));
    let req = call.http.request.as_ref().unwrap();
    assert_eq!(
        req.url.as_deref(),
        Some(format!("http://{downstream}/items?q=1").as_str())
    );
    assert!(req.traced);
    assert_eq!(status_of(call), Some(404));
    assert!(call.error && !front_doc.error);
    // The downstream segment hangs below the call's subsegment, in the same trace.
    assert_eq!(down_doc.trace_id, front_doc.trace_id);
    assert_eq!(down_doc.parent_id, Some(call.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_layer_records_connection_failures_as_remote_faults() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("svc");
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let segment = recorder.begin_segment("caller", None);
    let mut traced = tower::ServiceBuilder::new()
        .layer(XRayClientLayer::new().with_name("inventory"))
        .service(client());
    let req = http::Request::get(format!("http://{closed}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let result = xray_core::context::scope(
        segment.clone(),
        tower::ServiceExt::oneshot(&mut traced, req),
    )
    .await;
    assert!(result.is_err());
    segment.end();

    let doc = &segments(&collector, 1)[0];
    let call = &doc.subsegments[0];
    assert_eq!(call.name, "inventory");
    assert!(call.fault);
    let Some(xray_core::document::Cause::Exceptions(data)) = &call.cause else {
        panic!("no cause: {call:#?}")
    };
    assert!(data.exceptions[0].remote);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_layer_call_dropped_before_the_answer_ends_as_cancelled() {
    let collector = Collector::start().unwrap();
    let recorder = collector.recorder("svc");
    let slow = serve_axum(axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    ))
    .await;
    let segment = recorder.begin_segment("caller", None);
    let mut traced = tower::ServiceBuilder::new()
        .layer(XRayClientLayer::new())
        .service(client());
    let req = http::Request::get(format!("http://{slow}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let call = xray_core::context::scope(
        segment.clone(),
        tower::ServiceExt::oneshot(&mut traced, req),
    );
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
    segment.end();

    let doc = &segments(&collector, 1)[0];
    let call = &doc.subsegments[0];
    assert!(call.error && !call.fault && call.end_time.is_some());
    assert!(cause_messages(call)[0].contains("dropped before its response arrived"));
}
