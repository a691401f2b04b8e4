//! A traced gRPC service and client on tonic.
//!
//! `cargo run -p examples --example minimal_tonic` serves a small `greet.Greeter` service with
//! tonic's own server, calls it from a traced job (once successfully, once for a name it does
//! not know) and prints the trace an in-process collector received.
//!
//! What is recorded:
//! - the server's segment, named as usual, with `http.request` `POST` and the
//!   `/greet.Greeter/SayHello` path; the outcome is the call's `grpc-status`, not HTTP 200:
//!   `NOT_FOUND` is `error`, `INTERNAL` would be `fault`, `RESOURCE_EXHAUSTED` `throttle`;
//!   the code goes to the metadata (`rpc.grpc.status_code`) and, when not `OK`, to the
//!   annotation `grpc_status`, so `annotation.grpc_status = "NOT_FOUND"` finds such calls;
//! - the client's `remote` subsegment, with the same mapping, ended when the status arrives
//!   (in the trailers) and carrying the trace header, so the server's segment is its child.
//!
//! This example writes by hand, without `protoc`, what `tonic-build` generates (the
//! messages, the server's routing, the client's call). With generated code the layers go in
//! the same places: `Server::builder().layer(..)` and
//! `GreeterClient::with_origin(ServiceBuilder::new().layer(XRayClientLayer::new()).service(channel), origin)`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use tonic::transport::server::{TcpConnectInfo, TcpIncoming};
use tonic::transport::{Endpoint, Server};
use tonic::Status;
use tonic_prost::ProstCodec;
use xray_local::{render_trace, Collector, RenderOptions};
use xray_tower::{ClientAddr, XRayClientLayer, XRayLayer};

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

const SAY_HELLO: &str = "/greet.Greeter/SayHello";

async fn say_hello(
    req: tonic::Request<HelloRequest>,
) -> Result<tonic::Response<HelloReply>, Status> {
    // The request's segment is current here, as in any handler behind `XRayLayer`.
    xray_core::put_metadata("name", &req.get_ref().name);
    match req.into_inner().name.as_str() {
        "nobody" => Err(Status::not_found("nobody is not here")),
        name => Ok(tonic::Response::new(HelloReply {
            message: format!("hello, {name}"),
        })),
    }
}

/// `greet.Greeter`, routed by hand.
#[derive(Clone)]
struct Greeter;

impl tonic::server::NamedService for Greeter {
    const NAME: &'static str = "greet.Greeter";
}

impl tower::Service<http::Request<tonic::body::Body>> for Greeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::new());
            Ok(match req.uri().path() {
                SAY_HELLO => grpc.unary(tower::service_fn(say_hello), req).await,
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// tonic keeps the peer address in `TcpConnectInfo`: hand it to the layer as `ClientAddr`,
/// recorded as `http.request.client_ip`.
fn client_addr(mut req: http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> {
    let peer = req
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr);
    if let Some(peer) = peer {
        req.extensions_mut().insert(ClientAddr(peer));
    }
    req
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in for the X-Ray daemon; in production leave out `with_recorder`.
    let collector = Collector::start()?;

    // The server: `XRayLayer` on tonic's `Server`, like any tower layer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let layer = tower::ServiceBuilder::new()
        .map_request(client_addr)
        .layer(XRayLayer::new("greeter").with_recorder(collector.recorder("greeter")));
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(Greeter)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    // The client: `XRayClientLayer` around the channel. `Channel` adds the origin itself;
    // giving it to the client too lets the layer record the full URL and name the
    // subsegment after the host.
    let origin: http::Uri = format!("http://{addr}").parse()?;
    let channel = Endpoint::from(origin.clone()).connect().await?;
    let traced = tower::ServiceBuilder::new()
        .layer(XRayClientLayer::new())
        .service(channel);
    let mut client = tonic::client::Grpc::with_origin(traced, origin);

    // A background job opens its own segment; inside a traced request it is already there.
    let recorder = collector.recorder("greet-client");
    recorder
        .in_segment_async("greet-client", async {
            for name in ["alice", "nobody"] {
                client.ready().await?;
                let reply = client
                    .unary(
                        tonic::Request::new(HelloRequest { name: name.into() }),
                        PathAndQuery::from_static(SAY_HELLO),
                        ProstCodec::<HelloRequest, HelloReply>::new(),
                    )
                    .await;
                match reply {
                    Ok(r) => println!("SayHello({name}) → {:?}", r.into_inner().message),
                    Err(status) => println!("SayHello({name}) → {:?}", status.code()),
                }
            }
            Ok::<_, tonic::transport::Error>(())
        })
        .await?;
    println!();

    // The job's segment and the greeter's two segments.
    let trace = collector
        .wait_for_trace(|t| t.segments().len() >= 3, Duration::from_secs(5))
        .ok_or("no trace arrived")?;
    print!("{}", render_trace(&trace, &RenderOptions::default()));
    Ok(())
}
