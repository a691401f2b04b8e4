//! The blocking HTTP client for the daemon's sampling proxy and the metadata endpoints that
//! plugins read (EC2 instance metadata, ECS task metadata), on `ureq` without TLS.
//!
//! One deadline covers resolving, connecting, sending and reading. Environment proxies are
//! never used (every endpoint is a local address) and redirects are not followed. It blocks,
//! so it only ever runs on background threads (the sampling poller, plugin resolution), never
//! on a request path.

use std::time::Duration;

use crate::daemon::HostPort;

/// The largest response accepted; rule lists are a few kilobytes.
const MAX_RESPONSE: u64 = 4 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no complete answer from {0} in time")]
    Timeout(String),
    #[error("answer from {0} is larger than 4 MiB")]
    TooLarge(String),
    #[error("HTTP exchange with {addr} failed: {source}")]
    Http {
        addr: String,
        #[source]
        source: ureq::Error,
    },
}

/// A status code and a body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Sends `POST path` with a JSON `body` to `addr` and reads the answer, all within `timeout`.
pub(crate) fn post_json(
    addr: &HostPort,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, ClientError> {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body,
        timeout,
    )
}

/// Sends `method path` with extra `headers` and `body` to `addr` and reads the answer, all
/// within `timeout`.
pub(crate) fn request(
    addr: &HostPort,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, ClientError> {
    let shown = addr.to_string();
    let host = if addr.host.contains(':') && !addr.host.starts_with('[') {
        format!("[{}]", addr.host)
    } else {
        addr.host.clone()
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(concat!("xray-rust/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://{host}:{}{path}", addr.port));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let failed = |source: ureq::Error| classify(&shown, source);
    let request = builder
        .body(body.to_vec())
        .map_err(|e| failed(ureq::Error::Http(e)))?;
    let mut response = agent.run(request).map_err(failed)?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec()
        .map_err(failed)?;
    Ok(Response { status, body })
}

fn classify(addr: &str, source: ureq::Error) -> ClientError {
    let addr = addr.to_string();
    match source {
        ureq::Error::Timeout(_) => ClientError::Timeout(addr),
        ureq::Error::HostNotFound => ClientError::Resolve(addr),
        ureq::Error::BodyExceedsLimit(_) => ClientError::TooLarge(addr),
        ureq::Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::NotConnected
                    | std::io::ErrorKind::AddrNotAvailable
            ) =>
        {
            ClientError::Connect { addr, source: e }
        }
        ureq::Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            ClientError::Timeout(addr)
        }
        other => ClientError::Http {
            addr,
            source: other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    /// A server that answers one connection with `raw` bytes after reading the request head,
    /// then closes (or, with `hang`, keeps the connection open without answering).
    fn serve_once(raw: &'static [u8], hang: bool) -> HostPort {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            if hang {
                std::thread::sleep(Duration::from_secs(3));
                return;
            }
            let _ = s.write_all(raw);
        });
        HostPort {
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn call(addr: &HostPort) -> Result<Response, ClientError> {
        post_json(addr, "/GetSamplingRules", b"{}", Duration::from_millis(500))
    }

    #[test]
    fn content_length_and_chunked_bodies_are_read() {
        let r = call(&serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            false,
        ))
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = call(&serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n5\r\n\":1}\n\r\n0\r\n\r\n",
            false,
        ))
        .unwrap();
        assert_eq!(r.body, b"{\"a\":1}\n");
    }

    #[test]
    fn error_statuses_are_answers_not_failures() {
        let r = call(&serve_once(
            b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\nConnection: close\r\n\r\nboom",
            false,
        ))
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, &b"boom"[..]));
    }

    #[test]
    fn garbage_a_closed_port_and_a_hang_fail_cleanly_within_the_deadline() {
        assert!(call(&serve_once(b"garbage\r\n\r\n", false)).is_err());
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = HostPort {
            host: "127.0.0.1".into(),
            port: closed.local_addr().unwrap().port(),
        };
        drop(closed);
        assert!(matches!(call(&addr), Err(ClientError::Connect { .. })));
        let started = Instant::now();
        assert!(matches!(
            call(&serve_once(b"", true)),
            Err(ClientError::Timeout(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
