//! The UDP emitter against a real socket.

use std::net::UdpSocket;
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
    let sent = r.emitter_stats().sent as usize;
    let got = reader.join().unwrap();
    assert_eq!(got.len(), sent);
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
