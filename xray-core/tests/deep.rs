//! Deep nesting and endless error chains cannot take the process down: a chain of thousands of
//! nested subsegments (a recursive function traced at every level) is sent whole without
//! overflowing a small stack, and an error whose `source()` chain loops is recorded in bounded
//! time.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use xray_core::emitter::MemoryEmitter;
use xray_core::sampling::AlwaysSample;
use xray_core::{Entity, Recorder};

/// Nested subsegments below the segment.
const DEPTH: usize = 10_000;
/// Levels of subsegments a document may embed (xray-core's bound), plus the entity itself.
const MAX_LEVELS_PER_DOCUMENT: usize = 33;
/// A stack far smaller than a Tokio worker's 2 MiB: before the bound, sending this chain
/// needed several MiB of stack in a debug build.
const STACK: usize = 256 * 1024;

fn recorder(emitter: &MemoryEmitter, streaming_threshold: usize) -> Recorder {
    Recorder::builder()
        .sampler(AlwaysSample)
        .emitter(emitter.clone())
        .streaming_threshold(streaming_threshold)
        .build()
        .unwrap()
}

/// Begins a segment and a chain of `DEPTH` nested subsegments; returns them outermost first.
fn chain(recorder: &Recorder) -> Vec<Entity> {
    let mut entities = vec![recorder.begin_segment("deep", None)];
    for level in 0..DEPTH {
        let next = entities
            .last()
            .unwrap()
            .begin_subsegment(&format!("level-{level}"));
        entities.push(next);
    }
    entities
}

/// Runs `f` on a thread with a small stack and waits for it (a stack overflow aborts the
/// test binary, which fails the test).
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the deep chain was not sent in time");
}

/// Every entity of every datagram: id -> (parent id, levels of embedding in its document).
/// Walks without recursion; checks each datagram's depth.
fn entities(values: &[Value]) -> HashMap<String, Option<String>> {
    let mut out = HashMap::new();
    for doc in values {
        let mut stack: Vec<(&Value, Option<String>, usize)> = vec![(
            doc,
            doc.get("parent_id")
                .and_then(Value::as_str)
                .map(String::from),
            1,
        )];
        while let Some((entity, parent, level)) = stack.pop() {
            assert!(
                level <= MAX_LEVELS_PER_DOCUMENT,
                "a document embeds {level} levels"
            );
            let id = entity["id"].as_str().unwrap().to_string();
            for sub in entity
                .get("subsegments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                stack.push((sub, Some(id.clone()), level + 1));
            }
            // An in-progress stub stands for an entity still open when its parent was sent;
            // the entity follows on its own once it ends.
            if entity.get("in_progress") != Some(&Value::Bool(true)) {
                assert!(
                    out.insert(id.clone(), parent).is_none(),
                    "entity {id} sent twice"
                );
            }
        }
    }
    out
}

/// The documents arrived whole: every entity once (and ended), each the child of the one
/// begun before it.
fn assert_whole_chain(ids: &[String], values: &[Value]) {
    let got = entities(values);
    assert_eq!(got.len(), DEPTH + 1, "entities sent ended");
    assert_eq!(got[&ids[0]], None, "the segment has no parent");
    for pair in ids.windows(2) {
        assert_eq!(
            got[&pair[1]].as_deref(),
            Some(pair[0].as_str()),
            "parent link broken"
        );
    }
}

#[test]
fn a_chain_of_ten_thousand_nested_subsegments_is_sent_whole_with_the_segment() {
    on_small_stack(|| {
        let emitter = MemoryEmitter::new();
        // Nothing streams early: the whole chain leaves with the segment's document.
        let recorder = recorder(&emitter, usize::MAX);
        let entities = chain(&recorder);
        let ids: Vec<String> = entities.iter().map(|e| e.id().to_string()).collect();
        for e in entities.iter().rev() {
            e.end();
        }
        drop(entities);
        let values = emitter.values();
        assert!(
            values.len() >= (DEPTH + 1) / MAX_LEVELS_PER_DOCUMENT,
            "deeper levels travel as independent subsegments ({} documents)",
            values.len()
        );
        assert_whole_chain(&ids, &values);
    });
}

#[test]
fn a_chain_of_ten_thousand_nested_subsegments_ending_outermost_first_is_sent_whole() {
    on_small_stack(|| {
        let emitter = MemoryEmitter::new();
        let recorder = recorder(&emitter, 30);
        let entities = chain(&recorder);
        let ids: Vec<String> = entities.iter().map(|e| e.id().to_string()).collect();
        // The segment and every subsegment but the innermost end first; the innermost one
        // ending completes the whole chain at once, which then leaves as one subtree.
        for e in &entities[..DEPTH] {
            e.end();
        }
        entities[DEPTH].end();
        drop(entities);
        assert_whole_chain(&ids, &emitter.values());
    });
}

/// An error whose source is itself.
#[derive(Debug)]
struct Loop;

impl std::fmt::Display for Loop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("I am my own cause")
    }
}

impl std::error::Error for Loop {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self)
    }
}

#[test]
fn an_error_whose_source_chain_loops_is_recorded_in_bounded_time() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let emitter = MemoryEmitter::new();
        let recorder = recorder(&emitter, 30);
        let segment = recorder.begin_segment("svc", None);
        segment.add_error(&Loop);
        segment.end();
        let _ = tx.send(emitter.values());
    });
    let values = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("recording an error with a cyclic source chain never returned");
    let exceptions = values[0]["cause"]["exceptions"].as_array().unwrap();
    assert_eq!(exceptions.len(), 16, "the recorded part of the chain");
    assert_eq!(exceptions[0]["message"], "I am my own cause");
    assert!(
        exceptions[15]["skipped"].as_u64().unwrap() > 0,
        "the rest is counted as skipped"
    );
    assert_eq!(values[0]["fault"], true);
}
