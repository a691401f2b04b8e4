//! gRPC through the layers: a real tonic server and client on loopback (HTTP/2), checked on
//! the documents that reach a real UDP collector.
//!
//! No `protoc`: the messages are written by hand with prost's derive, the server is a
//! hand-written `Service` + `NamedService` over `tonic::server::Grpc`, and the client is
//! `tonic::client::Grpc`, which is what generated code does.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use futures_util::stream::{self, Stream, StreamExt};
use http::uri::PathAndQuery;
use tonic::transport::server::{TcpConnectInfo, TcpIncoming};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use xray_core::document::Cause;
use xray_core::lifecycle::{GRPC_STATUS_ANNOTATION, GRPC_STATUS_METADATA};
use xray_core::{Document, Recorder};
use xray_local::Collector;
use xray_tower::{ClientAddr, XRayClientLayer, XRayLayer};

// ===== the service =====

/// What the test asks the server for.
#[derive(Clone, PartialEq, prost::Message)]
struct Ask {
    /// The gRPC status to end with (0 = OK).
    #[prost(int32, tag = "1")]
    code: i32,
    /// Server streaming: how many replies before the end.
    #[prost(uint32, tag = "2")]
    count: u32,
    /// Server streaming: wait for the test's go-ahead before the last reply.
    #[prost(bool, tag = "3")]
    hold_last: bool,
    /// Server streaming: pause this long between replies.
    #[prost(uint64, tag = "4")]
    pause_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(uint32, tag = "1")]
    n: u32,
    /// The `x-amzn-trace-id` the server received.
    #[prost(string, tag = "2")]
    trace_header: String,
}

const UNARY: &str = "/test.Echo/Unary";
const STREAM: &str = "/test.Echo/Stream";
const COLLECT: &str = "/test.Echo/Collect";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type ReplyStream = Pin<Box<dyn Stream<Item = Result<Reply, Status>> + Send>>;

/// `test.Echo`, written by hand the way tonic's generated servers are.
#[derive(Clone)]
struct Echo {
    /// Permits for held last replies (`Ask::hold_last`).
    go_ahead: Arc<tokio::sync::Semaphore>,
}

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = "test.Echo";
}

fn status(code: i32) -> Status {
    Status::new(Code::from_i32(code), format!("asked for {code}"))
}

fn trace_header_of<T>(req: &tonic::Request<T>) -> String {
    req.metadata()
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn unary(req: tonic::Request<Ask>) -> Result<tonic::Response<Reply>, Status> {
    let trace_header = trace_header_of(&req);
    match req.into_inner().code {
        0 => Ok(tonic::Response::new(Reply { n: 1, trace_header })),
        code => Err(status(code)),
    }
}

/// Replies `n = 0, 1, ...` (`n: 0` encodes to nothing, the others to 2 bytes), then ends with
/// the asked status.
fn server_stream(
    go_ahead: Arc<tokio::sync::Semaphore>,
    req: tonic::Request<Ask>,
) -> Result<tonic::Response<ReplyStream>, Status> {
    let ask = req.into_inner();
    let replies = stream::unfold(0u32, move |n| {
        let go_ahead = go_ahead.clone();
        async move {
            if n > ask.count {
                return None;
            }
            if n == ask.count {
                // After the last reply: the status, in the trailers.
                return (ask.code != 0).then(|| (Err(status(ask.code)), n + 1));
            }
            if ask.pause_ms > 0 && n > 0 {
                tokio::time::sleep(Duration::from_millis(ask.pause_ms)).await;
            }
            if ask.hold_last && n + 1 == ask.count {
                go_ahead.acquire().await.unwrap().forget();
            }
            let reply = Reply {
                n,
                trace_header: String::new(),
            };
            Some((Ok(reply), n + 1))
        }
    });
    Ok(tonic::Response::new(Box::pin(replies) as ReplyStream))
}

/// Client streaming: counts the messages until the client's stream ends.
async fn collect(
    req: tonic::Request<tonic::Streaming<Ask>>,
) -> Result<tonic::Response<Reply>, Status> {
    let mut asks = req.into_inner();
    let mut n = 0;
    while asks.message().await?.is_some() {
        n += 1;
    }
    Ok(tonic::Response::new(Reply {
        n,
        trace_header: String::new(),
    }))
}

impl tower::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let go_ahead = self.go_ahead.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Reply, Ask>::default());
            Ok(match req.uri().path() {
                UNARY => grpc.unary(tower::service_fn(unary), req).await,
                STREAM => {
                    let svc = tower::service_fn(move |r| {
                        std::future::ready(server_stream(go_ahead.clone(), r))
                    });
                    grpc.server_streaming(svc, req).await
                }
                COLLECT => grpc.client_streaming(tower::service_fn(collect), req).await,
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// The peer address tonic puts in the request extensions, handed to the layer.
fn client_addr(mut req: http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> {
    if let Some(peer) = req
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
    {
        req.extensions_mut().insert(ClientAddr(peer));
    }
    req
}

struct Server {
    addr: SocketAddr,
    go_ahead: Arc<tokio::sync::Semaphore>,
}

/// Serves `test.Echo` with tonic's own server on an ephemeral loopback port, behind
/// `XRayLayer` (service name `grpc-svc`).
async fn serve(collector: &Collector) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let go_ahead = Arc::new(tokio::sync::Semaphore::new(0));
    let echo = Echo {
        go_ahead: go_ahead.clone(),
    };
    let layer = tower::ServiceBuilder::new()
        .map_request(client_addr)
        .layer(XRayLayer::new("grpc-svc").with_recorder(collector.recorder("grpc-svc")));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(echo)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    Server { addr, go_ahead }
}

async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A plain tonic client (no X-Ray layer).
async fn plain_client(addr: SocketAddr) -> tonic::client::Grpc<Channel> {
    tonic::client::Grpc::new(channel(addr).await)
}

fn codec() -> ProstCodec<Ask, Reply> {
    ProstCodec::default()
}

fn ask(code: Code) -> Ask {
    Ask {
        code: code as i32,
        ..Ask::default()
    }
}

// ===== reading documents =====

fn grpc_annotation(doc: &Document) -> Option<&str> {
    doc.annotations
        .get(GRPC_STATUS_ANNOTATION)
        .and_then(|v| v.as_str())
}

fn grpc_metadata(doc: &Document) -> Option<i64> {
    doc.metadata
        .get("default")
        .and_then(|m| m.get(GRPC_STATUS_METADATA))
        .and_then(|v| v.as_i64())
}

fn flags(doc: &Document) -> String {
    [(doc.error, 'e'), (doc.throttle, 't'), (doc.fault, 'f')]
        .into_iter()
        .filter_map(|(on, c)| on.then_some(c))
        .collect()
}

fn cause_types(doc: &Document) -> Vec<String> {
    match &doc.cause {
        Some(Cause::Exceptions(c)) => c.exceptions.iter().filter_map(|e| e.kind.clone()).collect(),
        _ => Vec::new(),
    }
}

/// The status was recorded as code `code`: the metadata always, the annotation unless OK.
fn assert_grpc_status(doc: &Document, code: Code, what: &str) {
    assert_eq!(grpc_metadata(doc), Some(code as i64), "{what}: {doc:#?}");
    let name = xray_core::http::grpc::GrpcCode::from_i32(code as i32).as_str();
    let want = (code != Code::Ok).then_some(name);
    assert_eq!(grpc_annotation(doc), want, "{what}: {doc:#?}");
}

fn assert_valid(collector: &Collector) {
    let violations = collector.violations();
    assert!(violations.is_empty(), "{violations:#?}");
}

// ===== a traced caller =====

/// Runs `f` with a tonic client behind `XRayClientLayer` inside a `caller` segment; returns
/// what `f` returned.
async fn as_caller<T, F, Fut>(caller: &Recorder, addr: SocketAddr, f: F) -> T
where
    F: FnOnce(tonic::client::Grpc<xray_tower::XRayClient<Channel>>) -> Fut,
    Fut: Future<Output = T>,
{
    let traced = tower::ServiceBuilder::new()
        .layer(XRayClientLayer::new())
        .service(channel(addr).await);
    // `Channel` adds the origin itself; given here too, the layer records the full URL.
    let origin: http::Uri = format!("http://{addr}").parse().unwrap();
    let client = tonic::client::Grpc::with_origin(traced, origin);
    caller.in_segment_async("caller", f(client)).await
}

// ===== server side =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_ok_is_a_segment_for_the_post_to_the_method_path_with_no_flags() {
    let collector = Collector::start().unwrap();
    let server = serve(&collector).await;
    let mut client = plain_client(server.addr).await;
    client.ready().await.unwrap();
    let res = client
        .unary(
            tonic::Request::new(ask(Code::Ok)),
            PathAndQuery::from_static(UNARY),
            codec(),
        )
        .await
        .unwrap();
    assert_eq!(res.get_ref().n, 1);

    let doc = &segments(&collector, 1)[0];
    assert_eq!(doc.name, "grpc-svc");
    let req = doc.http.request.as_ref().unwrap();
    assert_eq!(req.method.as_deref(), Some("POST"));
    assert_eq!(
        req.url.as_deref(),
        Some(format!("http://{}{UNARY}", server.addr).as_str())
    );
    assert_eq!(req.client_ip.as_deref(), Some("127.0.0.1"));
    let response = doc.http.response.as_ref().unwrap();
    assert_eq!(response.status, Some(200));
    // One length-prefixed message: 5 bytes of prefix, 2 of `n: 1`.
    assert_eq!(response.content_length, Some(7));
    assert_eq!(flags(doc), "");
    assert!(doc.cause.is_none());
    assert_grpc_status(doc, Code::Ok, "unary OK");
    assert!(doc.end_time.is_some() && !doc.in_progress);
    // The trace header comes back in the response metadata, as for HTTP.
    let trace_id = doc.trace_id.unwrap().to_string();
    assert_eq!(
        res.metadata()
            .get("x-amzn-trace-id")
            .and_then(|v| v.to_str().ok()),
        Some(format!("Root={trace_id}").as_str())
    );
    assert_valid(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_error_statuses_set_the_flags_of_their_code_not_of_http_200() {
    let collector = Collector::start().unwrap();
    let server = serve(&collector).await;
    let mut client = plain_client(server.addr).await;
    let rows = [
        (Code::ResourceExhausted, "et"),
        (Code::NotFound, "e"),
        (Code::InvalidArgument, "e"),
        (Code::PermissionDenied, "e"),
        (Code::Unauthenticated, "e"),
        (Code::Cancelled, "e"),
        (Code::Internal, "f"),
        (Code::Unavailable, "f"),
        (Code::DeadlineExceeded, "f"),
        (Code::Unknown, "f"),
        (Code::Unimplemented, "f"),
    ];
    for (i, (code, want)) in rows.into_iter().enumerate() {
        client.ready().await.unwrap();
        let err = client
            .unary(
                tonic::Request::new(ask(code)),
                PathAndQuery::from_static(UNARY),
                codec(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
        let docs = segments(&collector, i + 1);
        let doc = &docs[i];
        let what = format!("{code:?}");
        assert_eq!(flags(doc), want, "{what}");
        assert_eq!(
            doc.http.response.as_ref().unwrap().status,
            Some(200),
            "{what}"
        );
        assert!(doc.cause.is_none(), "{what}: a status is not an exception");
        assert_grpc_status(doc, code, &what);
    }
    assert_valid(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_only_error_is_read_from_the_response_head() {
    let collector = Collector::start().unwrap();
    let server = serve(&collector).await;
    // Watch what arrives on the wire, below tonic's client.
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    let watched = tower::ServiceBuilder::new()
        .map_response(move |res: http::Response<tonic::body::Body>| {
            seen.lock()
                .unwrap()
                .push(res.headers().get("grpc-status").cloned());
            res
        })
        .service(channel(server.addr).await);
    let mut client = tonic::client::Grpc::new(watched);
    client.ready().await.unwrap();
    let err = client
        .unary(
            tonic::Request::new(ask(Code::NotFound)),
            PathAndQuery::from_static(UNARY),
            codec(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        heads.lock().unwrap().as_slice(),
        [Some(http::HeaderValue::from_static("5"))],
        "the server answered trailers-only: the status is in the head"
    );

    let doc = &segments(&collector, 1)[0];
    assert_eq!(flags(doc), "e");
    assert_grpc_status(doc, Code::NotFound, "trailers-only NOT_FOUND");
    assert_eq!(doc.http.response.as_ref().unwrap().content_length, Some(0));
    assert_valid(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_segment_ends_at_the_end_of_the_stream() {
    let collector = Collector::start().unwrap();
    let server = serve(&collector).await;
    let mut client = plain_client(server.addr).await;
    client.ready().await.unwrap();
    let held = Ask {
        count: 3,
        hold_last: true,
        ..Ask::default()
    };
    let mut replies = client
        .server_streaming(
            tonic::Request::new(held),
            PathAndQuery::from_static(STREAM),
            codec(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replies.message().await.unwrap().unwrap().n, 0);
    assert_eq!(replies.message().await.unwrap().unwrap().n, 1);
    // The response head and two messages are out, the stream is not over: no segment yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        collector.documents().is_empty(),
        "{:#?}",
        collector.documents()
    );

    server.go_ahead.add_permits(1);
    assert_eq!(replies.message().await.unwrap().unwrap().n, 2);
    assert!(replies.message().await.unwrap().is_none());
    assert!(replies.trailers().await.unwrap().is_some());

    let doc = &segments(&collector, 1)[0];
    assert_eq!(flags(doc), "");
    assert_grpc_status(doc, Code::Ok, "stream OK");
    // Three messages of 5 + 2 bytes (the first, `n: 0`, is 5 + 0).
    assert_eq!(doc.http.response.as_ref().unwrap().content_length, Some(19));
    let took = doc.end_time.unwrap().as_secs_f64() - doc.start_time.as_secs_f64();
    assert!(
        took >= 0.3,
        "ended at the end of the stream, {took} s after the start"
    );
    assert_valid(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_error_status_is_read_from_the_trailers() {
    let collector = Collector::start().unwrap();
    let server = serve(&collector).await;
    let mut client = plain_client(server.addr).await;
    for (i, (code, want)) in [(Code::Unavailable, "f"), (Code::ResourceExhausted, "et")]
        .into_iter()
        .enumerate()
    {
        client.ready().await.unwrap();
        let failing = Ask {
            code: code as i32,
            count: 2,
            ..Ask::default()
        };
        let mut replies = client
            .server_streaming(
                tonic::Request::new(failing),
                PathAndQuery::from_static(STREAM),
                codec(),
            )
            .await
            .expect("the head is a success: the status comes at the end")
            .into_inner();
        assert_eq!(replies.message().await.unwrap().unwrap().n, 0);
        assert_eq!(replies.message().await.unwrap().unwrap().n, 1);
        assert_eq!(replies.message().await.unwrap_err().code(), code);

        let doc = &segments(&collector, i + 1)[i];
        assert_eq!(flags(doc), want, "{code:?}");
        assert_grpc_status(doc, code, "error in the trailers");
    }
    assert_valid(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_cancelled_by_the_client_mid_way_ends_by_the_drop_rules() {
    let collector = Collector::start().unwrap();
    let server = serve(&collector).await;
    let caller = collector.recorder("caller");
    as_caller(&caller, server.addr, |mut client| async move {
        client.ready().await.unwrap();
        let endless = Ask {
            count: 1_000,
            pause_ms: 10,
            ..Ask::default()
        };
        let mut replies = client
            .server_streaming(
                tonic::Request::new(endless),
                PathAndQuery::from_static(STREAM),
                codec(),
            )
            .await
            .unwrap()
            .into_inner();
        assert_eq!(replies.message().await.unwrap().unwrap().n, 0);
        assert_eq!(replies.message().await.unwrap().unwrap().n, 1);
        // The caller stops reading: the stream is reset.
        drop(replies);
    })
    .await;

    let segs = segments(&collector, 2);
    let server_doc = segs.iter().find(|d| d.name == "grpc-svc").unwrap();
    assert_eq!(flags(server_doc), "e", "{server_doc:#?}");
    assert_eq!(cause_types(server_doc), ["Cancelled"]);
    assert_eq!(grpc_metadata(server_doc), None, "no status was sent");
    let caller_doc = segs.iter().find(|d| d.name == "caller").unwrap();
    let call = &caller_doc.subsegments[0];
    assert_eq!(flags(call), "e", "{call:#?}");
    assert_eq!(cause_types(call), ["Cancelled"]);
    assert_eq!(grpc_metadata(call), None, "no status arrived");
    assert_eq!(call.http.response.as_ref().unwrap().status, Some(200));
    assert_valid(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stream_given_up_before_the_answer_is_cancelled_on_both_sides() {
    let collector = Collector::start().unwrap();
    let server = serve(&collector).await;
    let caller = collector.recorder("caller");
    let gave_up = as_caller(&caller, server.addr, |mut client| async move {
        client.ready().await.unwrap();
        // One message, then a stream that never ends: the server never answers.
        let asks = stream::iter([Ask::default()]).chain(stream::pending());
        let call = client.client_streaming(
            tonic::Request::new(asks),
            PathAndQuery::from_static(COLLECT),
            codec(),
        );
        tokio::time::timeout(Duration::from_millis(200), call)
            .await
            .is_err()
    })
    .await;
    assert!(gave_up, "the caller timed out");

    let segs = segments(&collector, 2);
    let server_doc = segs.iter().find(|d| d.name == "grpc-svc").unwrap();
    assert_eq!(flags(server_doc), "e", "{server_doc:#?}");
    assert_eq!(cause_types(server_doc), ["Cancelled"]);
    // Whether the server had produced its answer (tonic's handler may see the reset as the
    // end of the client's stream and answer) or not, it never went out: no status recorded.
    assert_eq!(grpc_metadata(server_doc), None, "{server_doc:#?}");
    let caller_doc = segs.iter().find(|d| d.name == "caller").unwrap();
    let call = &caller_doc.subsegments[0];
    assert_eq!(flags(call), "e", "{call:#?}");
    assert_eq!(cause_types(call), ["Cancelled"]);
    assert!(call.http.response.is_none(), "no answer arrived");
    assert_eq!(server_doc.parent_id, Some(call.id));
    assert_valid(&collector);
}

// ===== client side =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_subsegment_maps_the_status_and_carries_the_trace_header() {
    let collector = Collector::start().unwrap();
    let server = serve(&collector).await;
    let caller = collector.recorder("caller");
    let rows = [
        (Code::Ok, ""),
        (Code::NotFound, "e"),
        (Code::ResourceExhausted, "et"),
        (Code::Internal, "f"),
    ];
    for (i, (code, want)) in rows.into_iter().enumerate() {
        let received = as_caller(&caller, server.addr, |mut client| async move {
            client.ready().await.unwrap();
            client
                .unary(
                    tonic::Request::new(ask(code)),
                    PathAndQuery::from_static(UNARY),
                    codec(),
                )
                .await
        })
        .await;
        let what = format!("{code:?}");
        let segs = segments(&collector, 2 * (i + 1));
        let caller_doc = segs.iter().rfind(|d| d.name == "caller").unwrap();
        let server_doc = segs.iter().rfind(|d| d.name == "grpc-svc").unwrap();

        let call = &caller_doc.subsegments[0];
        assert_eq!(call.name, "127.0.0.1", "{what}");
        assert_eq!(call.namespace.as_deref(), Some("remote"), "{what}");
        let req = call.http.request.as_ref().unwrap();
        assert_eq!(req.method.as_deref(), Some("POST"), "{what}");
        assert_eq!(
            req.url.as_deref(),
            Some(format!("http://{}{UNARY}", server.addr).as_str()),
            "{what}"
        );
        assert!(req.traced, "{what}");
        assert_eq!(call.http.response.as_ref().unwrap().status, Some(200));
        assert_eq!(flags(call), want, "{what}");
        assert!(call.cause.is_none(), "{what}");
        assert_grpc_status(call, code, &what);
        assert!(call.end_time.is_some() && !call.in_progress, "{what}");
        // The caller segment itself is not marked by its call's status.
        assert_eq!(flags(caller_doc), "", "{what}");

        // The server continued the caller's trace under the client subsegment.
        assert_eq!(server_doc.trace_id, caller_doc.trace_id, "{what}");
        assert_eq!(server_doc.parent_id, Some(call.id), "{what}");
        assert_eq!(
            flags(server_doc),
            want,
            "{what}: the same mapping on both sides"
        );
        if code == Code::Ok {
            let header = received.unwrap().into_inner().trace_header;
            assert_eq!(
                header,
                format!(
                    "Root={};Parent={};Sampled=1",
                    caller_doc.trace_id.unwrap(),
                    call.id
                )
            );
        } else {
            assert_eq!(received.unwrap_err().code(), code);
        }
    }
    assert_valid(&collector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_subsegment_of_a_stream_ends_with_the_status_in_the_trailers() {
    let collector = Collector::start().unwrap();
    let server = serve(&collector).await;
    let caller = collector.recorder("caller");
    let outcome = as_caller(&caller, server.addr, |mut client| async move {
        client.ready().await.unwrap();
        let failing = Ask {
            code: Code::Unavailable as i32,
            count: 2,
            ..Ask::default()
        };
        let mut replies = client
            .server_streaming(
                tonic::Request::new(failing),
                PathAndQuery::from_static(STREAM),
                codec(),
            )
            .await
            .unwrap()
            .into_inner();
        let mut outcome = Vec::new();
        for _ in 0..3 {
            outcome.push(replies.message().await.map(|m| m.map(|r| r.n)));
        }
        outcome
    })
    .await;
    assert_eq!(outcome[0].as_ref().unwrap(), &Some(0));
    assert_eq!(outcome[1].as_ref().unwrap(), &Some(1));
    assert_eq!(outcome[2].as_ref().unwrap_err().code(), Code::Unavailable);

    let segs = segments(&collector, 2);
    let caller_doc = segs.iter().find(|d| d.name == "caller").unwrap();
    let call = &caller_doc.subsegments[0];
    assert_eq!(flags(call), "f", "{call:#?}");
    assert_grpc_status(call, Code::Unavailable, "client stream");
    // Two messages of 5 + 0 and 5 + 2 bytes.
    assert_eq!(
        call.http.response.as_ref().unwrap().content_length,
        Some(12)
    );
    assert!(call.end_time.is_some() && !call.in_progress);
    assert_valid(&collector);
}
