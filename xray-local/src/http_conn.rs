//! One HTTP/1.1 connection of xray-local's servers (the sampling API and the OTLP receiver),
//! served by hyper under a deadline per request.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// hyper's read buffer per connection.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Serves `stream` with `handle`. Every request must be answered within `deadline` of the
/// connection's start or of the previous answer, whatever the pace of its bytes; when the
/// deadline passes, the connection is dropped and `on_cut` is called. `max_head` bounds a
/// request's head; `what` names the server in debug logs.
pub(crate) async fn serve<H, F>(
    stream: TcpStream,
    deadline: Duration,
    max_head: usize,
    what: &'static str,
    handle: H,
    on_cut: impl FnOnce(),
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send,
{
    let until = Arc::new(Mutex::new(Instant::now() + deadline));
    let service = {
        let until = until.clone();
        service_fn(move |req| {
            let until = until.clone();
            let handle = handle.clone();
            async move {
                let response = handle(req).await;
                // The next request (and writing this answer) gets a deadline of its own.
                *until.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now() + deadline;
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(deadline)
        .max_header_size(max_head)
        .max_buf_size(READ_BUFFER_BYTES);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    loop {
        let at = *until.lock().unwrap_or_else(|p| p.into_inner());
        tokio::select! {
            done = &mut connection => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "xray-local: {what} connection ended");
                }
                return;
            }
            _ = tokio::time::sleep_until(at) => {
                let now = *until.lock().unwrap_or_else(|p| p.into_inner());
                if now <= Instant::now() {
                    on_cut();
                    return;
                }
            }
        }
    }
}
