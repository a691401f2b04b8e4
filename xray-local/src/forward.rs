//! Forwarding every datagram, unchanged, to another daemon.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};

/// Sends datagrams on to another address (typically a real X-Ray daemon).
#[derive(Debug)]
pub struct Forwarder {
    socket: UdpSocket,
    target: SocketAddr,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl Forwarder {
    /// A forwarder to `target`, sending from an ephemeral port of the matching address family.
    pub fn new(target: SocketAddr) -> io::Result<Self> {
        let local: SocketAddr = if target.is_ipv4() {
            "0.0.0.0:0".parse().map_err(io::Error::other)?
        } else {
            "[::]:0".parse().map_err(io::Error::other)?
        };
        let socket = UdpSocket::bind(local)?;
        Ok(Self {
            socket,
            target,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// Where datagrams go.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Sends one datagram as is. A failure is counted and logged, never returned: forwarding
    /// must not stop the collector.
    pub fn forward(&self, datagram: &[u8]) {
        match self.socket.send_to(datagram, self.target) {
            Ok(_) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let n = self.failed.fetch_add(1, Ordering::Relaxed);
                if n == 0 || n.is_power_of_two() {
                    tracing::warn!(target = %self.target, error = %e, failures = n + 1, "xray-local: forwarding failed");
                }
            }
        }
    }

    /// Datagrams forwarded.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Datagrams that could not be forwarded.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}
