//! The CI stand-in for `cargo fuzz`: replays the stored fuzz corpus (`fuzz/corpus/<target>/`)
//! and a few thousand generated inputs per target through the very harness functions the fuzz
//! targets call (`fuzz/src/harness.rs`), on stable Rust. See `FUZZING.md`.

#[allow(dead_code)]
#[path = "../../fuzz/src/harness.rs"]
mod harness;

use std::path::PathBuf;

/// Generated inputs per target, on top of the corpus.
const GENERATED: usize = 3000;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!inputs.is_empty(), "empty corpus for {target}");
    inputs.sort();
    inputs
}

/// Random bytes, and corpus entries with bytes flipped, inserted, removed or spliced, from a
/// fixed seed so a failure reproduces.
fn generated(seeds: &[Vec<u8>], alphabet: &[u8]) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(0x5eed_f022);
    let mut out = Vec::with_capacity(GENERATED);
    for i in 0..GENERATED {
        let mut input = if i % 4 == 0 {
            let len = rng.usize(0..128);
            (0..len).map(|_| rng.u8(..)).collect()
        } else {
            seeds[rng.usize(..seeds.len())].clone()
        };
        for _ in 0..rng.usize(1..6) {
            let at = rng.usize(..=input.len());
            match rng.u8(0..5) {
                0 if at < input.len() => input[at] = rng.u8(..),
                1 => input.insert(at, alphabet[rng.usize(..alphabet.len())]),
                2 if at < input.len() => {
                    input.remove(at);
                }
                3 => {
                    let other = &seeds[rng.usize(..seeds.len())];
                    let from = rng.usize(..=other.len());
                    input.splice(at..at, other[from..].iter().copied());
                }
                _ => input.truncate(at),
            }
        }
        out.push(input);
    }
    out
}

fn replay(target: &str, alphabet: &[u8], run: fn(&[u8])) {
    let stored = corpus(target);
    let extra = generated(&stored, alphabet);
    for input in stored.iter().chain(&extra) {
        run(input);
    }
}

#[test]
fn trace_header_corpus_replays_without_failure() {
    replay(
        "trace_header",
        b"=; Root=Parent=Sampled=1?0-abcdef0123456789",
        harness::trace_header,
    );
}

#[test]
fn traceparent_corpus_replays_without_failure() {
    replay(
        "traceparent",
        b"-0123456789abcdefABff ",
        harness::traceparent,
    );
}

#[test]
fn daemon_address_corpus_replays_without_failure() {
    replay(
        "daemon_address",
        b":[]. tcp:udp:0123456789%",
        harness::daemon_address,
    );
}

#[test]
fn sampling_rules_corpus_replays_without_failure() {
    replay(
        "sampling_rules",
        b"{}[]\":,.-0123456789e*?",
        harness::sampling_rules,
    );
}

#[test]
fn sampling_api_response_corpus_replays_without_failure() {
    replay(
        "sampling_api_response",
        b"{}[]\":,.-0123456789e",
        harness::sampling_api_response,
    );
}

/// Found by the `daemon_address` fuzz target: `[udp]:2` was accepted (host `udp`) but written
/// back as `udp:2`, which was refused. Fixed in xray-core: `udp:2` alone is a host and a port.
#[test]
fn daemon_address_with_a_host_named_udp_round_trips() {
    use xray_core::daemon::DaemonAddress;
    for input in ["[udp]:2", "[tcp]:2000"] {
        let a = DaemonAddress::parse(input).unwrap();
        let shown = a.to_string();
        assert_eq!(DaemonAddress::parse(&shown), Ok(a), "{input} -> {shown}");
    }
}
