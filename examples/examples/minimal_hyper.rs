//! A traced service on plain hyper 1 + hyper-util, without a framework.
//!
//! `cargo run -p examples --example minimal_hyper` serves one request to itself and prints the
//! trace an in-process collector received.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use xray_local::{render_trace, Collector, RenderOptions};
use xray_tower::{ClientAddr, XRayLayer};

async fn hello(req: http::Request<Incoming>) -> Result<http::Response<Full<Bytes>>, Infallible> {
    xray_core::put_metadata("path", req.uri().path());
    let total = xray_core::capture("sum", || (1..=100u32).sum::<u32>());
    Ok(http::Response::new(Full::new(Bytes::from(format!(
        "{total}"
    )))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in for the X-Ray daemon; in production leave out `with_recorder`.
    let collector = Collector::start()?;
    let layer = XRayLayer::new("minimal-hyper").with_recorder(collector.recorder("minimal-hyper"));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((socket, peer)) = listener.accept().await else {
                continue;
            };
            let svc = tower::ServiceBuilder::new()
                // hyper has no standard peer-address extension: hand it to the layer.
                .map_request(move |mut req: http::Request<Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    req
                })
                .layer(layer.clone())
                .service_fn(hello);
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });

    let body = reqwest::get(format!("http://{addr}/"))
        .await?
        .text()
        .await?;
    println!("GET / → {body}\n");
    let trace = collector
        .wait_for_trace(|_| true, Duration::from_secs(5))
        .ok_or("no trace arrived")?;
    print!("{}", render_trace(&trace, &RenderOptions::default()));
    Ok(())
}
