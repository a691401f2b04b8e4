//! The UDP emitter against a real socket.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use xray_core::emitter::{Emitter, UdpEmitter, DATAGRAM_HEADER};
use xray_core::sampling::AlwaysSample;
use xray_core::{Document, Recorder};

fn receiver() -> (UdpSocket, String) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A daemon-sized receive buffer, so a burst is not lost while this test's reader waits
    // for a busy CPU (the kernel caps it at net.core.rmem_max).
    let _ = socket2::SockRef::from(&s).set_recv_buffer_size(4 << 20);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = s.local_addr().unwrap().to_string();
    (s, addr)
}

fn recv_all(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while out.len() < n {
        match s.recv(&mut buf) {
            Ok(k) => out.push(buf[..k].to_vec()),
            Err(_) => break,
        }
    }
    out
}

fn recorder(addr: &str) -> Recorder {
    Recorder::builder()
        .service_name("udp-test")
        .daemon_address(addr)
        .sampler(AlwaysSample)
        .ignore_env()
        .build()
        .unwrap()
}

#[test]
fn each_datagram_is_the_header_line_and_one_document() {
    let (sock, addr) = receiver();
    let r = recorder(&addr);
    let seg = r.begin_segment("udp-test", None);
    seg.begin_subsegment("child").end();
    seg.end();
    assert!(r.flush(Duration::from_secs(5)));
    let got = recv_all(&sock, 1);
    assert_eq!(got.len(), 1);
    let text = std::str::from_utf8(&got[0]).unwrap();
    let (head, body) = text.split_once('\n').unwrap();
    assert_eq!(format!("{head}\n"), DATAGRAM_HEADER);
    assert!(!body.contains('\n'), "one compact document");
    assert!(!body.contains(": "), "compact JSON");
    let d: Document = serde_json::from_str(body).unwrap();
    assert_eq!(d.name, "udp-test");
    assert_eq!(d.subsegments.len(), 1);
    assert_eq!(r.emitter_stats().sent, 1);
}

#[test]
fn thousand_subsegments_arrive_whole_over_udp() {
    let (sock, addr) = receiver();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // Read while the emitter sends, as a daemon does, so the socket buffer never overflows.
    let reader = std::thread::spawn(move || recv_all(&sock, usize::MAX));
    let r = recorder(&addr);
    let seg = r.begin_segment("udp-test", None);
    for i in 0..1000 {
        seg.begin_subsegment(&format!("step-{i}")).end();
    }
    seg.end();
    assert!(r.flush(Duration::from_secs(10)));
    // Completed subsegments were streamed as documents of their own.
    let stats = r.emitter_stats();
    assert_eq!(stats.sent, stats.accepted, "{stats:?}");
    let got = reader.join().unwrap();
    assert_eq!(got.len() as u64, stats.datagrams);
    let mut ids = std::collections::HashSet::new();
    for g in &got {
        assert!(g.len() <= 64_000);
        let d: Document = serde_json::from_slice(&g[DATAGRAM_HEADER.len()..]).unwrap();
        d.walk(&mut |x| {
            if x.kind.is_some() || x.id != seg.id() {
                ids.insert(x.id);
            }
        });
    }
    ids.remove(&seg.id());
    assert_eq!(ids.len(), 1000);
}

#[test]
fn absent_daemon_neither_blocks_nor_fails() {
    // Bind then drop to get a port nobody listens on.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = recorder(&format!("127.0.0.1:{port}"));
    let start = Instant::now();
    for _ in 0..200 {
        r.begin_segment("udp-test", None).end();
    }
    let spent = start.elapsed();
    assert!(r.flush(Duration::from_secs(5)));
    let s = r.emitter_stats();
    assert_eq!(s.accepted, 200);
    assert_eq!(s.sent + s.errors + s.dropped, 200);
    // Not a timing assertion on the happy path: only a guard against a blocking send.
    assert!(spent < Duration::from_secs(5));
}

#[test]
fn full_queue_drops_and_counts() {
    let (_sock, addr) = receiver();
    let emitter = UdpEmitter::builder()
        .address(&addr.parse().unwrap())
        .queue_capacity(1)
        .build();
    let mut big = Document::new("x");
    big.metadata =
        serde_json::from_value(serde_json::json!({"default": {"k": "z".repeat(30_000)}})).unwrap();
    for _ in 0..2000 {
        emitter.emit(big.clone());
    }
    assert!(emitter.flush(Duration::from_secs(10)));
    let s = emitter.stats();
    assert_eq!(s.accepted, 2000);
    assert!(s.dropped > 0, "{s:?}");
    assert_eq!(s.sent + s.dropped + s.errors, 2000, "{s:?}");
}

#[test]
fn unresolvable_daemon_host_counts_errors() {
    let r = recorder("no-such-host.invalid:2000");
    r.begin_segment("udp-test", None).end();
    assert!(r.flush(Duration::from_secs(10)));
    assert_eq!(r.emitter_stats().errors, 1);
}

/// Warnings logged by any thread of this test process (the emitter's included).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .init();
        logs
    })
    .clone()
}

fn closed_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn segment_with(name: &str, f: impl FnOnce(&mut Document)) -> Document {
    let mut d = Document::new(name);
    d.trace_id = Some(xray_core::TraceId::new());
    d.end_time = Some(d.start_time);
    f(&mut d);
    d
}

#[test]
fn refusals_by_a_port_nobody_listens_on_are_counted_apart_and_warned_about_once() {
    let logs = captured_logs();
    let port = closed_port();
    let address = format!("127.0.0.1:{port}");
    // One datagram per buffer: each is answered on its own.
    let emitter = UdpEmitter::builder()
        .address(&address.parse().unwrap())
        .segmentation_offload(false)
        .build();
    for round in 0..5 {
        for i in 0..20 {
            emitter.emit(segment_with(&format!("doc-{round}-{i}"), |_| {}));
        }
        assert!(emitter.flush(Duration::from_secs(5)));
    }
    let s = emitter.stats();
    // The kernel took every datagram: sent, as far as this process can tell, and refused.
    assert_eq!(
        (s.accepted, s.sent, s.dropped, s.errors),
        (100, 100, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.datagrams, 100, "{s:?}");
    assert!(s.refused >= 1 && s.refused <= s.datagrams, "{s:?}");
    // Linux queues each ICMP answer on the socket (loopback is not rate-limited): nearly all
    // are counted, where counting the reports that reach a send finds one per round at most.
    #[cfg(target_os = "linux")]
    assert!(s.refused > 50, "{s:?}");
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let warnings = text
        .lines()
        .filter(|l| l.contains("refused datagrams") && l.contains(&address))
        .count();
    assert_eq!(warnings, 1, "warned once, not per refusal:\n{text}");
}

#[test]
fn every_document_is_counted_once_in_sent_dropped_or_errors() {
    let (sock, addr) = receiver();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let reader = std::thread::spawn(move || recv_all(&sock, usize::MAX));
    let emitter = UdpEmitter::builder()
        .address(&addr.parse().unwrap())
        .queue_capacity(1)
        .build();
    let flushed = |e: &UdpEmitter| assert!(e.flush(Duration::from_secs(10)));
    // Normal: one datagram each.
    for i in 0..5 {
        emitter.emit(segment_with(&format!("normal-{i}"), |_| {}));
        flushed(&emitter);
    }
    // Split: 401 datagrams, one document.
    emitter.emit(segment_with("split", |d| {
        for i in 0..400 {
            let mut child = Document::new(format!("child-{i}"));
            child
                .annotations
                .insert("pad".into(), "x".repeat(300).into());
            d.subsegments.push(child);
        }
    }));
    flushed(&emitter);
    // Trimmed: its metadata goes.
    emitter.emit(segment_with("trimmed", |d| {
        d.metadata.insert(
            "default".into(),
            serde_json::json!({"blob": "y".repeat(100_000)}),
        );
    }));
    flushed(&emitter);
    // Too large: a name no trimming shortens.
    emitter.emit(segment_with(&"n".repeat(70_000), |_| {}));
    flushed(&emitter);
    // Split, with one part too large: the rest is sent, the document is an error.
    emitter.emit(segment_with("partly", |d| {
        d.subsegments.push(Document::new("fits"));
        d.subsegments.push(Document::new("m".repeat(70_000)));
    }));
    flushed(&emitter);
    let s = emitter.stats();
    assert_eq!(
        (s.accepted, s.sent, s.errors, s.dropped, s.split, s.trimmed),
        (9, 7, 2, 0, 2, 1),
        "{s:?}"
    );
    // 5 + 401 + 1 + 0 + 2 ("fits" and "partly" itself).
    assert_eq!(s.datagrams, 409, "{s:?}");
    // Queue full: a one-document queue, filled faster than it empties.
    for i in 0..2000 {
        emitter.emit(segment_with(&format!("burst-{i}"), |_| {}));
    }
    flushed(&emitter);
    let s = emitter.stats();
    assert_eq!(s.accepted, 2009, "{s:?}");
    assert!(s.dropped > 0, "the queue never filled: {s:?}");
    assert_eq!(s.errors, 2, "{s:?}");
    assert_eq!(s.sent + s.dropped + s.errors, s.accepted, "{s:?}");
    let got = reader.join().unwrap();
    assert_eq!(got.len() as u64, s.datagrams, "what went over the wire");
}

#[test]
fn a_name_resolving_to_two_addresses_reaches_a_receiver_on_the_second() {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in ("localhost", 0).to_socket_addrs().unwrap() {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.len() < 2 {
        eprintln!("skipped: localhost resolves to {addrs:?} only here");
        return;
    }
    // Listening on the address tried second only (::1 or 127.0.0.1, as the resolver orders).
    let rx = UdpSocket::bind(SocketAddr::new(addrs[1].ip(), 0)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = rx.local_addr().unwrap().port();
    let r = recorder(&format!("localhost:{port}"));
    // The first go to the first address and are refused; the emitter moves on.
    let mut probes = 0;
    while r.emitter_stats().refused == 0 {
        assert!(probes < 10, "no refusal seen: {:?}", r.emitter_stats());
        r.begin_segment("probe", None).end();
        assert!(r.flush(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(20));
        probes += 1;
    }
    for _ in 0..9 {
        r.begin_segment("udp-test", None).end();
    }
    assert!(r.flush(Duration::from_secs(5)));
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let got: Vec<Document> = recv_all(&rx, 9 + probes)
        .iter()
        .map(|g| serde_json::from_slice(&g[DATAGRAM_HEADER.len()..]).unwrap())
        .filter(|d: &Document| d.name == "udp-test")
        .collect();
    assert_eq!(got.len(), 9, "{:?}", r.emitter_stats());
}
