//! A peer service as a child process, killed by its pid when dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A running peer service that announced its port with a `PORT <n>` line on stdout.
///
/// Everything it writes (stdout and stderr) is kept for failure messages. Dropping it kills
/// the child, by its pid, and reaps it, also when the test panics.
#[derive(Debug)]
pub struct PeerProcess {
    name: String,
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl PeerProcess {
    /// Starts `command` and waits (at most `timeout`) for its `PORT <n>` line. Panics, with
    /// the peer's output, when it exits or stays silent.
    pub fn start(name: &str, mut command: Command, timeout: Duration) -> PeerProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} peer ({command:?}): {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        // The guard exists before anything can fail, so the child is always killed.
        let mut peer = PeerProcess {
            name: name.to_string(),
            child,
            port: 0,
            log: log.clone(),
        };
        let out_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.trim().strip_prefix("PORT ") {
                    let _ = port_tx.send(port.parse::<u16>().ok());
                }
                append(&out_log, &line);
            }
        });
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    append(&log, String::from_utf8_lossy(&line).trim_end());
                }
            }
            if !buf.is_empty() {
                append(&log, &String::from_utf8_lossy(&buf));
            }
        });
        match port_rx.recv_timeout(timeout) {
            Ok(Some(port)) => {
                peer.port = port;
                peer
            }
            Ok(None) => panic!("the {name} peer printed a bad PORT line:\n{}", peer.log()),
            Err(_) => panic!(
                "the {name} peer did not report its port within {timeout:?}:\n{}",
                peer.log()
            ),
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the peer printed so far.
    pub fn log(&self) -> String {
        format!(
            "--- {} output ---\n{}\n--- end of {} output ---",
            self.name,
            self.log.lock().unwrap_or_else(|p| p.into_inner()),
            self.name
        )
    }
}

fn append(log: &Mutex<String>, line: &str) {
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.push_str(line);
    log.push('\n');
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        // `Child::kill` signals this child's own pid; nothing else is touched.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
