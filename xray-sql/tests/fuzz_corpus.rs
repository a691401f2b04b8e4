//! The stable-Rust stand-in for the `sql_sanitize` fuzz target: replays its committed corpus
//! (`fuzz/corpus/sql_sanitize/`) and a few thousand generated statements through the very
//! harness the target calls (`fuzz/src/sql_harness.rs`). See `FUZZING.md`.

#[path = "../../fuzz/src/sql_harness.rs"]
mod sql_harness;

use std::path::PathBuf;

#[test]
fn sql_sanitize_corpus_replays_without_failure() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sql_sanitize");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!seeds.is_empty());
    seeds.sort();
    for seed in &seeds {
        sql_harness::sql_sanitize(seed);
    }
    // Mutations from a fixed seed: characters that matter to SQL inserted, bytes flipped,
    // removed, spliced from other seeds, truncated.
    let alphabet = b"'\"`$?:@#-/*\\ \n0123456789eExXnNuU&_.;()[]";
    let mut rng = fastrand::Rng::with_seed(0x05ee_d5a1);
    for _ in 0..5000 {
        let mut input = seeds[rng.usize(..seeds.len())].clone();
        for _ in 0..rng.usize(1..8) {
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
                _ => input.truncate(at.max(1)),
            }
        }
        sql_harness::sql_sanitize(&input);
    }
}
