//! The UDP collector.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use xray_core::emitter::DATAGRAM_HEADER;
use xray_core::sampling::AlwaysSample;
use xray_core::{Document, Recorder};

/// One datagram as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The raw bytes.
    pub bytes: Vec<u8>,
    /// The parsed document, when the datagram was well formed.
    pub document: Option<Document>,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    cond: Condvar,
    garbage: AtomicU64,
    stop: AtomicBool,
}

/// Listens for daemon datagrams on a UDP socket and keeps what arrives.
pub struct Collector {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").field("addr", &self.addr).finish()
    }
}

/// Splits a datagram into its header line and document. `None` when it is not a daemon
/// datagram (missing or wrong header line, or a body that is not a document).
pub fn parse_datagram(bytes: &[u8]) -> Option<Document> {
    let body = bytes.strip_prefix(DATAGRAM_HEADER.as_bytes())?;
    serde_json::from_slice(body).ok()
}

impl Collector {
    /// Listens on an ephemeral loopback port.
    pub fn start() -> io::Result<Self> {
        Self::bind("127.0.0.1:0".parse().map_err(io::Error::other)?)
    }

    /// Listens on `addr`.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::Builder::new()
            .name("xray-local-udp".into())
            .spawn(move || receive_loop(socket, s))?;
        Ok(Self { addr, shared })
    }

    /// The address datagrams should be sent to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as an `AWS_XRAY_DAEMON_ADDRESS` value.
    pub fn daemon_address(&self) -> String {
        self.addr.to_string()
    }

    /// A recorder that samples everything and sends here; environment variables ignored.
    pub fn recorder(&self, service_name: &str) -> Recorder {
        Recorder::builder()
            .service_name(service_name)
            .daemon_address(self.daemon_address())
            .sampler(AlwaysSample)
            .ignore_env()
            .build()
            .expect("a collector's own address is valid")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Received>> {
        self.shared.received.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every datagram received so far.
    pub fn received(&self) -> Vec<Received> {
        self.lock().clone()
    }

    /// Every well-formed document received so far, in arrival order.
    pub fn documents(&self) -> Vec<Document> {
        self.lock().iter().filter_map(|r| r.document.clone()).collect()
    }

    /// Datagrams that were not well-formed daemon datagrams.
    pub fn garbage_count(&self) -> u64 {
        self.shared.garbage.load(Ordering::Relaxed)
    }

    /// Forgets everything received.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Waits until `pred` holds for the documents received, at most `timeout`; returns the
    /// documents either way.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&[Document]) -> bool) -> Vec<Document> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            let docs: Vec<Document> = g.iter().filter_map(|r| r.document.clone()).collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if pred(&docs) || left.is_zero() {
                return docs;
            }
            g = self
                .shared
                .cond
                .wait_timeout(g, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until at least `n` documents arrived.
    pub fn wait_for_documents(&self, n: usize, timeout: Duration) -> Vec<Document> {
        self.wait_until(timeout, |d| d.len() >= n)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

fn receive_loop(socket: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_536];
    while !shared.stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                let bytes = buf[..n].to_vec();
                let document = parse_datagram(&bytes);
                if document.is_none() {
                    shared.garbage.fetch_add(1, Ordering::Relaxed);
                }
                shared
                    .received
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Received {
                        bytes,
                        document,
                        at: Instant::now(),
                    });
                shared.cond.notify_all();
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => {
                tracing::warn!(error = %e, "xray-local: receive failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
