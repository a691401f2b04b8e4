//! A real actix-web server on loopback, in its own thread and actix system, and a real X-Ray
//! daemon stand-in (UDP) to receive what the middleware sends.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use xray_actix::XRay;
use xray_core::document::Document;
use xray_local::Collector;

pub const WAIT: Duration = Duration::from_secs(5);

/// A running server; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves `configure`'s routes with `xray` wrapping the whole `App`.
    pub fn start<C>(xray: XRay, configure: C) -> TestServer
    where
        C: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        Self::start_with(2, move || {
            App::new().wrap(xray.clone()).configure(configure.clone())
        })
    }

    /// Serves `configure`'s routes with no middleware at the `App` level.
    pub fn start_plain<C>(configure: C) -> TestServer
    where
        C: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        Self::start_with(2, move || App::new().configure(configure.clone()))
    }

    fn start_with<F, T, B>(workers: usize, factory: F) -> TestServer
    where
        F: Fn() -> App<T> + Send + Clone + 'static,
        T: actix_web::dev::ServiceFactory<
                actix_web::dev::ServiceRequest,
                Config = (),
                Response = actix_web::dev::ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: actix_web::body::MessageBody + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(factory)
                    .workers(workers)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .bind(("127.0.0.1", 0))
                    .expect("bind loopback");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).expect("test waits");
                server.await.expect("server runs");
            })
        });
        let (addr, handle) = rx.recv().expect("server started");
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A collector and a recorder that samples everything and sends to it.
pub fn collector() -> (Collector, xray_core::Recorder) {
    let c = Collector::start().expect("collector binds");
    let r = c.recorder("svc");
    (c, r)
}

/// The single segment of the trace `trace_id`, after waiting for it.
pub fn segment_of(c: &Collector, trace_id: &str) -> Document {
    let docs = c.wait_until(WAIT, |d| d.iter().any(|d| is_segment_of(d, trace_id)));
    let mut found: Vec<Document> = docs
        .into_iter()
        .filter(|d| is_segment_of(d, trace_id))
        .collect();
    assert_eq!(found.len(), 1, "exactly one segment for {trace_id}");
    found.remove(0)
}

fn is_segment_of(d: &Document, trace_id: &str) -> bool {
    d.kind.is_none() && d.trace_id.map(|t| t.to_string()).as_deref() == Some(trace_id)
}

/// The `Root=` of a response's trace header.
pub fn response_root(res: &reqwest::Response) -> String {
    let h = res
        .headers()
        .get("x-amzn-trace-id")
        .expect("response carries the trace header")
        .to_str()
        .unwrap();
    root_of(h).to_string()
}

pub fn root_of(header: &str) -> &str {
    header
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Root="))
        .expect("header has a Root")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}
