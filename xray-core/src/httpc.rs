//! A minimal HTTP/1.1 client for the daemon's sampling proxy and the metadata endpoints that
//! plugins read (EC2 instance metadata, ECS task metadata).
//!
//! One request per connection (`Connection: close`), with a deadline covering connect, write
//! and read. It understands `Content-Length`, chunked and read-to-close bodies. It blocks, so
//! it only ever runs on background threads (the sampling poller, plugin resolution), never on a
//! request path. No TLS: every endpoint it talks to is plain HTTP on a local address.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::daemon::HostPort;

/// The largest response accepted; rule lists are a few kilobytes.
const MAX_RESPONSE: usize = 4 << 20;

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
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no complete answer from {0} in time")]
    Timeout(String),
    #[error("malformed HTTP answer from {addr}: {problem}")]
    Malformed { addr: String, problem: &'static str },
    #[error("answer from {0} is larger than 4 MiB")]
    TooLarge(String),
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
    let deadline = Instant::now() + timeout;
    let shown = addr.to_string();
    let addrs: Vec<_> = (addr.host.as_str(), addr.port)
        .to_socket_addrs()
        .map_err(|_| ClientError::Resolve(shown.clone()))?
        .collect();
    if addrs.is_empty() {
        return Err(ClientError::Resolve(shown));
    }
    let mut last_err = None;
    let mut stream = None;
    for a in &addrs {
        let left = remaining(deadline).ok_or_else(|| ClientError::Timeout(shown.clone()))?;
        match TcpStream::connect_timeout(a, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let mut stream = match stream {
        Some(s) => s,
        None => {
            return Err(ClientError::Connect {
                addr: shown,
                source: last_err.unwrap_or_else(|| std::io::ErrorKind::NotConnected.into()),
            })
        }
    };
    let io = |source: std::io::Error| {
        if matches!(
            source.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            ClientError::Timeout(shown.clone())
        } else {
            ClientError::Io {
                addr: shown.clone(),
                source,
            }
        }
    };
    let _ = stream.set_nodelay(true);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {shown}\r\nUser-Agent: xray-rust/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.set_write_timeout(remaining(deadline)).map_err(&io)?;
    stream.write_all(&request).map_err(&io)?;

    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(resp) =
            parse_response(&buf, false).map_err(|problem| ClientError::Malformed {
                addr: shown.clone(),
                problem,
            })?
        {
            return Ok(resp);
        }
        let left = remaining(deadline).ok_or_else(|| ClientError::Timeout(shown.clone()))?;
        stream.set_read_timeout(Some(left)).map_err(&io)?;
        let n = stream.read(&mut chunk).map_err(&io)?;
        if n == 0 {
            return parse_response(&buf, true)
                .map_err(|problem| ClientError::Malformed {
                    addr: shown.clone(),
                    problem,
                })?
                .ok_or(ClientError::Malformed {
                    addr: shown,
                    problem: "connection closed before the answer was complete",
                });
        }
        if buf.len() + n > MAX_RESPONSE {
            return Err(ClientError::TooLarge(shown));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Parses a complete response from `buf`; `Ok(None)` when more bytes are needed. `closed`
/// says the peer closed the connection, which ends a body without framing.
fn parse_response(buf: &[u8], closed: bool) -> Result<Option<Response>, &'static str> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err("header section too large");
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "header is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err("not an HTTP/1.x status line");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or("invalid status code")?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err("header line without a colon");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| "invalid Content-Length")?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let rest = &buf[head_end + 4..];
    if chunked {
        return decode_chunked(rest).map(|b| b.map(|body| Response { status, body }));
    }
    match content_length {
        Some(n) if rest.len() >= n => Ok(Some(Response {
            status,
            body: rest[..n].to_vec(),
        })),
        Some(_) if closed => Err("connection closed before Content-Length bytes arrived"),
        Some(_) => Ok(None),
        None if closed || status == 204 || status == 304 => Ok(Some(Response {
            status,
            body: rest.to_vec(),
        })),
        None => Ok(None),
    }
}

fn decode_chunked(mut rest: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| "invalid chunk size")?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "invalid chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers are not used; the answer is complete once the size-0 line arrived.
            return Ok(Some(body));
        }
        if rest.len() < size.saturating_add(2) {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        if &rest[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF");
        }
        rest = &rest[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_body_is_read_exactly() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}xx", false)
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", false)
                .unwrap()
                .is_none()
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", true).is_err());
    }

    #[test]
    fn chunked_body_is_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n5;x=y\r\n\":1}\n\r\n0\r\n\r\n";
        let r = parse_response(raw, false).unwrap().unwrap();
        assert_eq!(r.body, b"{\"a\":1}\n");
        assert!(parse_response(&raw[..raw.len() - 7], false)
            .unwrap()
            .is_none());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false
        )
        .is_err());
    }

    #[test]
    fn body_without_framing_ends_at_close() {
        let raw = b"HTTP/1.0 500 Oops\r\nServer: x\r\n\r\nboom";
        assert!(parse_response(raw, false).unwrap().is_none());
        let r = parse_response(raw, true).unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, &b"boom"[..]));
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(parse_response(bad, true).is_err(), "{bad:?}");
        }
    }
}
