//! The CI stand-in for `cargo fuzz` on this crate's targets: replays the stored corpus
//! (`fuzz/corpus/datagram_validation/`, `fuzz/corpus/trace_assembly/`,
//! `fuzz/corpus/otlp_request/`) and a few thousand
//! generated inputs through the very harness functions the fuzz targets call
//! (`fuzz/src/local_harness.rs`), on stable Rust. See `FUZZING.md`.

#[allow(dead_code)]
#[path = "../../fuzz/src/local_harness.rs"]
mod local_harness;

// The OTLP receiver's decoder: in xray-core, compiled in with the `otlp` feature (on by
// default here).
#[cfg(feature = "otlp")]
#[path = "../../fuzz/src/otlp_harness.rs"]
mod otlp_harness;

use std::path::PathBuf;

/// Generated inputs per target, on top of the corpus.
const GENERATED: usize = 2000;

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

/// xorshift64*, from a fixed seed so that a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Random bytes, and corpus entries with bytes flipped, inserted, removed or spliced.
fn generated(seeds: &[Vec<u8>], alphabet: &[u8]) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_10ca_1f22);
    let mut out = Vec::with_capacity(GENERATED);
    for i in 0..GENERATED {
        let mut input: Vec<u8> = if i % 4 == 0 {
            (0..rng.below(128)).map(|_| rng.next() as u8).collect()
        } else {
            seeds[rng.below(seeds.len())].clone()
        };
        for _ in 0..1 + rng.below(5) {
            let at = rng.below(input.len() + 1);
            match rng.below(5) {
                0 if at < input.len() => input[at] = rng.next() as u8,
                1 => input.insert(at, alphabet[rng.below(alphabet.len())]),
                2 if at < input.len() => {
                    input.remove(at);
                }
                3 => {
                    let other = &seeds[rng.below(seeds.len())];
                    let from = rng.below(other.len() + 1);
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
fn datagram_validation_corpus_replays_without_failure() {
    replay(
        "datagram_validation",
        b"{}[]\":,.-0123456789abcdefe\n\x1b\x7f",
        local_harness::datagram_validation,
    );
}

#[test]
fn trace_assembly_corpus_replays_without_failure() {
    replay(
        "trace_assembly",
        b"{}[]\":,.-0123456789abcdef\xff\x1b",
        local_harness::trace_assembly,
    );
}

#[cfg(feature = "otlp")]
#[test]
fn otlp_request_corpus_replays_without_failure() {
    // The seeds are real requests (written with the OpenTelemetry project's Python
    // classes): they must decode, or the replay exercises nothing but the protobuf parser.
    let readable: usize = corpus("otlp_request")
        .iter()
        .filter_map(|input| xray_core::emitter::otlp::decode_request(input).ok())
        .map(|docs| docs.into_iter().filter(Result::is_ok).count())
        .sum();
    assert!(readable >= 5, "{readable} spans read from the corpus");
    // Protobuf tags, lengths and the bytes that end varints.
    replay(
        "otlp_request",
        b"\x0a\x12\x1a\x22\x2a\x08\x10\x18\x39\x41\x80\xff\x00\x01\x10",
        otlp_harness::otlp_request,
    );
}
