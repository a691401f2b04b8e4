//! The UDP emitter: a bounded queue and one background thread that serializes and sends.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{encode_datagrams, Counters, Emitter, EmitterStats, MAX_DATAGRAM_BYTES};
use crate::daemon::{DaemonAddress, HostPort};
use crate::document::Document;

// Documents travel unboxed: boxing would add an allocation per request on the request path.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Doc(Document),
    Flush(mpsc::Sender<()>),
}

/// Sends documents to the X-Ray daemon over UDP.
///
/// [`emit`](Emitter::emit) only puts the document on a bounded queue (`try_send`): when the
/// queue is full the document is dropped and counted, so a slow or absent daemon never blocks
/// a request or grows memory. A background thread named `xray-emitter` serializes, splits or
/// trims to fit [`MAX_DATAGRAM_BYTES`], resolves the daemon's address and sends.
#[derive(Debug, Clone)]
pub struct UdpEmitter {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
    address: HostPort,
}

/// Configures a [`UdpEmitter`].
#[derive(Debug, Clone)]
#[must_use]
pub struct UdpEmitterBuilder {
    address: HostPort,
    queue_capacity: usize,
    datagram_budget: usize,
}

impl UdpEmitterBuilder {
    /// The daemon's UDP address (default `127.0.0.1:2000`).
    pub fn address(mut self, address: &DaemonAddress) -> Self {
        self.address = address.udp.clone();
        self
    }

    /// How many documents may wait to be sent (default 2048).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Largest datagram in bytes, header line included (default and maximum 64 000).
    pub fn datagram_budget(mut self, bytes: usize) -> Self {
        self.datagram_budget = bytes.clamp(1024, MAX_DATAGRAM_BYTES);
        self
    }

    /// Starts the background thread.
    pub fn build(self) -> UdpEmitter {
        let (tx, rx) = mpsc::sync_channel(self.queue_capacity);
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            address: self.address.clone(),
            budget: self.datagram_budget,
            counters: counters.clone(),
            target: None,
            socket: None,
            last_resolve: None,
        };
        if let Err(e) = std::thread::Builder::new()
            .name("xray-emitter".into())
            .spawn(move || worker.run(rx))
        {
            // The receiver is gone with the closure: every emit is counted as dropped.
            tracing::error!(error = %e, "could not start the X-Ray emitter thread; segments will be dropped");
        }
        UdpEmitter {
            tx,
            counters,
            address: self.address,
        }
    }
}

impl UdpEmitter {
    /// An emitter sending to `address` with default settings.
    pub fn new(address: &DaemonAddress) -> Self {
        Self::builder().address(address).build()
    }

    /// Configures an emitter.
    pub fn builder() -> UdpEmitterBuilder {
        UdpEmitterBuilder {
            address: DaemonAddress::default().udp,
            queue_capacity: 2048,
            datagram_budget: MAX_DATAGRAM_BYTES,
        }
    }

    /// Where datagrams go.
    pub fn address(&self) -> &HostPort {
        &self.address
    }
}

impl Emitter for UdpEmitter {
    fn emit(&self, document: Document) {
        Counters::add(&self.counters.accepted, 1);
        match self.tx.try_send(Msg::Doc(document)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self
                    .counters
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(
                        dropped = n + 1,
                        "X-Ray emitter queue is full; dropping segments"
                    );
                }
            }
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = mpsc::channel();
        let mut msg = Msg::Flush(ack_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    fn stats(&self) -> EmitterStats {
        self.counters.snapshot()
    }
}

struct Worker {
    address: HostPort,
    budget: usize,
    counters: Arc<Counters>,
    target: Option<SocketAddr>,
    socket: Option<UdpSocket>,
    last_resolve: Option<Instant>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Doc(doc) => self.send_document(doc),
                Msg::Flush(ack) => {
                    let _ = ack.send(());
                }
            }
        }
    }

    fn send_document(&mut self, doc: Document) {
        let enc = encode_datagrams(doc, self.budget);
        if enc.split {
            Counters::add(&self.counters.split, 1);
        }
        Counters::add(&self.counters.trimmed, enc.trimmed);
        Counters::add(&self.counters.errors, enc.failed);
        for d in enc.datagrams {
            match self.send(&d) {
                Ok(()) => Counters::add(&self.counters.sent, 1),
                Err(e) => {
                    let n = self
                        .counters
                        .errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n.is_power_of_two() {
                        tracing::warn!(error = %e, daemon = %self.address, "could not send segment to the X-Ray daemon");
                    }
                }
            }
        }
    }

    fn resolve(&mut self) -> std::io::Result<SocketAddr> {
        if let Some(t) = self.target {
            return Ok(t);
        }
        // Do not hammer a failing resolver: at most one attempt per second.
        if self
            .last_resolve
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return Err(std::io::Error::other("daemon address not resolved yet"));
        }
        self.last_resolve = Some(Instant::now());
        let addr = (self.address.host.as_str(), self.address.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("daemon host resolved to no address"))?;
        self.target = Some(addr);
        self.socket = None;
        Ok(addr)
    }

    fn send(&mut self, datagram: &[u8]) -> std::io::Result<()> {
        let target = self.resolve()?;
        if self.socket.is_none() {
            let bind = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            self.socket = Some(UdpSocket::bind(bind)?);
        }
        let socket = self
            .socket
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no socket"))?;
        match socket.send_to(datagram, target) {
            Ok(_) => Ok(()),
            Err(e) => {
                // Resolve again later: the daemon may have moved (DNS name).
                self.target = None;
                Err(e)
            }
        }
    }
}
