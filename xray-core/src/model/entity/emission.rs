//! Emission: which documents leave a segment's tree, and when.
//!
//! The segment's document leaves when the segment ends, carrying every completed subtree; open
//! subtrees stay behind as in-progress stubs and follow on their own when they complete. A
//! completed subtree leaves early, as an independent subsegment, when nothing will carry it
//! later (its parent was already sent) or when the segment holds more subsegments than the
//! recorder's streaming threshold.
//!
//! A document embeds at most [`MAX_EMBEDDED_DEPTH`] levels of subsegments; deeper subtrees
//! leave with it as independent subsegments (X-Ray joins them by `parent_id`). Every walk of a
//! document (serializing, trimming, dropping) is recursive, so this bound is what keeps a
//! chain of thousands of nested subsegments (a recursive function traced at each level) from
//! overflowing a thread's stack.

use crate::document::Document;
use crate::id::EntityId;
use crate::time::Timestamp;

use super::tree::{lock, State, Trace, NO_PARENT, ROOT};

/// Most levels of subsegments one document embeds; deeper subtrees are sent on their own.
pub(crate) const MAX_EMBEDDED_DEPTH: usize = 32;

impl Trace {
    /// Ends node `idx` (entity `id`) at `at`, and hands to the emitter whatever can leave the
    /// tree now. Ending twice, or ending an entity already sent, does nothing.
    pub(super) fn end_node(&self, idx: u32, id: EntityId, at: Timestamp) {
        let Some(state) = &self.state else {
            return;
        };
        let out = {
            let mut s = lock(state);
            if !s.is_live(idx, id) || s.nodes[idx as usize].ended {
                return;
            }
            let node = &mut s.nodes[idx as usize];
            node.ended = true;
            node.doc.end_time = Some(at.max(node.doc.start_time));
            s.add_open(idx, -1);
            // A segment without subsegments (most requests) is serialized where it lies,
            // under this segment's lock, instead of being taken out of the tree, when the
            // emitter can work that way.
            if idx == ROOT && !s.root_emitted && s.nodes[ROOT as usize].children.is_empty() {
                let doc = &mut s.nodes[ROOT as usize].doc;
                if doc.kind.is_none() {
                    self.recorder.decorate_segment(doc);
                }
                if self.recorder.emit_borrowed(doc) {
                    s.root_emitted = true;
                    drop(s);
                    // What the emitter had to say, said now that the lock is released.
                    crate::emitter::report_deferred();
                    return;
                }
            }
            let threshold = self.recorder.streaming_threshold();
            let out = s.after_end(idx, threshold);
            (out, std::mem::take(&mut s.spilled))
        };
        let (out, spilled) = out;
        if let Some(mut doc) = out {
            // A segment offered in place above is decorated already.
            if doc.kind.is_none() && doc.decoration.is_none() {
                self.recorder.decorate_segment(&mut doc);
            }
            self.recorder.emit(doc);
        }
        for doc in spilled {
            self.recorder.emit(doc);
        }
    }
}

impl State {
    /// The document that can be sent now that `idx` has ended, if any.
    pub(super) fn after_end(&mut self, idx: u32, threshold: usize) -> Option<Document> {
        if idx == ROOT {
            if self.root_emitted {
                return None;
            }
            self.root_emitted = true;
            return Some(self.build_root());
        }
        // Only a completed subtree can leave the tree: find the largest one containing `idx`
        // that hangs below the segment.
        if self.nodes[idx as usize].open != 0 {
            return None;
        }
        let mut cand = idx;
        loop {
            let p = self.nodes[cand as usize].parent;
            if p == NO_PARENT || p == ROOT || self.nodes[p as usize].open != 0 {
                break;
            }
            cand = p;
        }
        // Send it now if nothing will carry it later: its parent was already sent (or is the
        // facade), or the segment holds too many subsegments. Otherwise it travels embedded
        // in its parent.
        let parent = self.nodes[cand as usize].parent;
        let ready =
            parent == NO_PARENT || (parent == ROOT && self.root_emitted) || self.held > threshold;
        ready.then(|| self.detach_independent(cand))
    }

    /// Takes the subtree at `idx` out of the tree as an independent subsegment document.
    pub(super) fn detach_independent(&mut self, idx: u32) -> Document {
        let parent = self.nodes[idx as usize].parent;
        let parent_id = if parent == NO_PARENT {
            self.nodes[idx as usize].doc.parent_id
        } else {
            let p = &mut self.nodes[parent as usize];
            p.children.retain(|&c| c != idx);
            Some(p.doc.id)
        };
        let mut doc = self.take_subtree(idx, 0);
        doc.kind = Some("subsegment".to_string());
        doc.trace_id = self.nodes[ROOT as usize].doc.trace_id;
        doc.parent_id = parent_id;
        doc
    }

    /// Moves a completed subtree out of the tree, to be embedded `depth` levels deep in the
    /// document being built. Levels deeper than [`MAX_EMBEDDED_DEPTH`] go to `self.spilled`
    /// as independent subsegments.
    pub(super) fn take_subtree(&mut self, idx: u32, depth: usize) -> Document {
        let mut deeper = Vec::new();
        let doc = self.take_levels(idx, depth, &mut deeper);
        // Each subtree left behind is taken the same way, from depth 0: the recursion above
        // never goes deeper than MAX_EMBEDDED_DEPTH, however deep the tree.
        while let Some((idx, parent_id)) = deeper.pop() {
            let mut sub = self.take_levels(idx, 0, &mut deeper);
            sub.kind = Some("subsegment".to_string());
            sub.trace_id = self.nodes[ROOT as usize].doc.trace_id;
            sub.parent_id = Some(parent_id);
            self.spilled.push(sub);
        }
        doc
    }

    /// Moves node `idx` and its subtree down to [`MAX_EMBEDDED_DEPTH`] levels below `depth`
    /// out of the tree; the children found at that depth are left in the tree and listed in
    /// `deeper` with their parent's id.
    fn take_levels(
        &mut self,
        idx: u32,
        depth: usize,
        deeper: &mut Vec<(u32, EntityId)>,
    ) -> Document {
        let children = std::mem::take(&mut self.nodes[idx as usize].children);
        let mut doc = std::mem::take(&mut self.nodes[idx as usize].doc);
        if depth >= MAX_EMBEDDED_DEPTH {
            deeper.extend(children.into_iter().map(|c| (c, doc.id)));
        } else {
            doc.subsegments = children
                .into_iter()
                .map(|c| self.take_levels(c, depth + 1, deeper))
                .collect();
        }
        self.release(idx);
        doc
    }

    /// Builds the segment document. Completed subtrees are moved in; subtrees with open
    /// entities appear as in-progress stubs and stay in the tree, to be sent on their own.
    pub(super) fn build_root(&mut self) -> Document {
        let children = std::mem::take(&mut self.nodes[ROOT as usize].children);
        let mut kept = Vec::new();
        let mut subs = Vec::with_capacity(children.len());
        for c in children {
            if self.nodes[c as usize].open == 0 {
                subs.push(self.take_subtree(c, 1));
            } else {
                let n = &self.nodes[c as usize].doc;
                subs.push(Document {
                    name: n.name.clone(),
                    id: n.id,
                    start_time: n.start_time,
                    in_progress: true,
                    namespace: n.namespace.clone(),
                    ..Document::default()
                });
                kept.push(c);
            }
        }
        let root = &mut self.nodes[ROOT as usize];
        root.children = kept;
        // Keep a husk with the ids that late subsegments still need.
        let mut doc = std::mem::take(&mut root.doc);
        root.doc.id = doc.id;
        root.doc.trace_id = doc.trace_id;
        if !root.ended {
            doc.in_progress = true;
        }
        doc.subsegments = subs;
        doc
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        // Every handle is gone. A segment that was never ended would otherwise be lost:
        // send what was recorded, marked in progress.
        let Some(state) = &self.state else { return };
        let mut s = lock(state);
        if s.root_emitted {
            return;
        }
        s.root_emitted = true;
        let mut doc = s.build_root();
        let spilled = std::mem::take(&mut s.spilled);
        drop(s);
        tracing::debug!(id = %doc.id, "segment dropped without being ended; sending it as in progress");
        self.recorder.decorate_segment(&mut doc);
        self.recorder.emit(doc);
        for doc in spilled {
            self.recorder.emit(doc);
        }
    }
}
