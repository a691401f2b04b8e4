//! The security checks of `security.rs` that depend on how an adapter reads the request,
//! repeated on actix-web (which builds its `IncomingRequest` from its own types).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use xray_actix::XRay;
use xray_local::Collector;

const SECRET: &str = "s3cr3t-value";

/// Serves `/page` with the X-Ray middleware on its own thread; returns the address.
fn start(recorder: xray_core::Recorder) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(XRay::new("faults").with_recorder(recorder.clone()))
                    .route("/page", web::get().to(|| async { "page" }))
                    .route("/login", web::post().to(|body: String| async move { body }))
            })
            .workers(1)
            .disable_signals()
            .shutdown_timeout(0)
            .bind(("127.0.0.1", 0))
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        })
    });
    rx.recv().unwrap()
}

fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn wire(collector: &Collector) -> String {
    let docs = collector.wait_for_documents(1, Duration::from_secs(10));
    assert!(!docs.is_empty(), "no document arrived");
    collector
        .received()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
        .collect()
}

#[test]
fn actix_never_records_authorization_cookies_bodies_or_query() {
    let collector = Collector::start().unwrap();
    let addr = start(collector.recorder("faults"));
    let body = format!("password={SECRET}");
    let reply = raw(
        addr,
        &format!(
            "POST /login?token={SECRET} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {SECRET}\r\n\
             Cookie: session={SECRET}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let wire = wire(&collector);
    assert!(!wire.contains(SECRET), "a secret reached the wire: {wire}");
}

#[test]
fn actix_userinfo_in_the_request_authority_without_host_header_is_not_recorded() {
    let collector = Collector::start().unwrap();
    let addr = start(collector.recorder("faults"));
    raw(
        addr,
        &format!("GET http://user:{SECRET}@example.com/page HTTP/1.0\r\n\r\n"),
    );
    let wire = wire(&collector);
    assert!(!wire.contains(SECRET), "userinfo recorded: {wire}");
}
