//! `Recorder::shutdown(timeout)`: the sampling poller stopped and the emitter's queue sent,
//! all within the one timeout.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xray_core::daemon::DaemonAddress;
use xray_core::emitter::DATAGRAM_HEADER;
use xray_core::sampling::{CentralizedSampler, LocalSampler, Sampler};
use xray_core::{Document, Recorder};

/// What a busy machine may add to a deadline.
const SLACK: Duration = Duration::from_millis(300);

/// A sampling API that accepts connections and never answers; each connection is announced
/// on the receiver and held open.
fn hanging_sampling_api() -> (String, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            held.push(stream);
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

fn closed_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A recorder whose centralized sampler (every request sampled until rules arrive) polls
/// `daemon`'s TCP address with a 2 s call timeout, and whose emitter sends to its UDP address.
fn recorder(daemon: &str) -> (Recorder, Arc<CentralizedSampler>) {
    let address = DaemonAddress::parse(daemon).unwrap();
    let sampler = Arc::new(
        CentralizedSampler::new(&address, LocalSampler::new(0, 1.0))
            .with_timeout(Duration::from_secs(2)),
    );
    sampler.start();
    let recorder = Recorder::builder()
        .service_name("shutdown-test")
        .daemon_address(daemon)
        .sampler_arc(sampler.clone() as Arc<dyn Sampler>)
        .ignore_env()
        .build()
        .unwrap();
    (recorder, sampler)
}

#[test]
fn shutdown_returns_within_its_timeout_with_a_hanging_sampling_api_and_a_dead_daemon() {
    let (api, calls) = hanging_sampling_api();
    let daemon = format!("tcp:{api} udp:127.0.0.1:{}", closed_udp_port());
    let (recorder, sampler) = recorder(&daemon);
    // The poller fetches the rules at start: that call now hangs for its 2 s timeout.
    calls
        .recv_timeout(Duration::from_secs(5))
        .expect("the poller called the sampling API");
    for _ in 0..100 {
        recorder.begin_segment("shutdown-test", None).end();
    }
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    recorder.shutdown(timeout);
    let spent = started.elapsed();
    assert!(
        spent < timeout + SLACK,
        "shutdown took {spent:?} for a timeout of {timeout:?}"
    );
    let s = recorder.emitter_stats();
    assert_eq!(s.accepted, 100, "{s:?}");
    assert_eq!(s.sent + s.dropped + s.errors, s.accepted, "{s:?}");
    // The poller was told to stop: its call in flight times out, and no other call starts.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sampler.is_running() {
        assert!(Instant::now() < deadline, "the poller did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        calls.recv_timeout(Duration::from_millis(200)).is_err(),
        "the poller called again after shutdown"
    );
}

#[test]
fn shutdown_sends_every_queued_document_to_a_live_daemon_within_the_timeout() {
    let (api, calls) = hanging_sampling_api();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = socket2::SockRef::from(&rx).set_recv_buffer_size(4 << 20);
    rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let daemon = format!("tcp:{api} udp:{}", rx.local_addr().unwrap());
    let reader = std::thread::spawn(move || {
        let mut names = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = rx.recv(&mut buf) {
            let d: Document = serde_json::from_slice(&buf[DATAGRAM_HEADER.len()..n]).unwrap();
            names.push(d.name);
        }
        names
    });
    let (recorder, _sampler) = recorder(&daemon);
    calls
        .recv_timeout(Duration::from_secs(5))
        .expect("the poller called the sampling API");
    // Queued faster than the emitter thread's 10 ms rounds take them.
    for i in 0..1000 {
        recorder.begin_segment(&format!("doc-{i}"), None).end();
    }
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    assert!(recorder.shutdown(timeout), "every document sent in time");
    let spent = started.elapsed();
    assert!(spent < timeout + SLACK, "shutdown took {spent:?}");
    let s = recorder.emitter_stats();
    assert_eq!(
        (s.accepted, s.sent, s.dropped, s.errors),
        (1000, 1000, 0, 0),
        "{s:?}"
    );
    let mut names = reader.join().unwrap();
    names.sort_by_key(|n| n[4..].parse::<u32>().unwrap());
    let want: Vec<String> = (0..1000).map(|i| format!("doc-{i}")).collect();
    assert_eq!(names, want, "every queued document arrived, once");
}
