//! A UDP sink standing in for the X-Ray daemon in the load benchmark: reads and discards
//! datagrams, printing how many it got when stopped (SIGTERM) or every 10 s.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2000".into());
    let socket = UdpSocket::bind(&addr)?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = vec![0u8; 65_536];
    let (mut n, mut last) = (0u64, Instant::now());
    loop {
        if socket.recv(&mut buf).is_ok() {
            n += 1;
        }
        if last.elapsed() > Duration::from_secs(10) {
            eprintln!("bench-sink: {n} datagrams");
            last = Instant::now();
        }
    }
}
