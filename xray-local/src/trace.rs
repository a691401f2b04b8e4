//! Trace assembly: from the documents that arrived to one tree per trace.
//!
//! The documents of a trace arrive as separate datagrams, in any order: segments of each
//! service, independent subsegments (streamed or split off a large segment, pointing at their
//! parent through `parent_id`), and in-progress versions that are later sent again complete.
//! [`Trace::assemble`] flattens them into entities, keeps one version per id (a complete one
//! wins over an in-progress one, a later one over an earlier one) and links each entity to its
//! parent. A segment whose `parent_id` names a subsegment of the same trace (the outbound call
//! of its caller) hangs below that subsegment, so a multi-service trace reads as one tree.
//!
//! ```
//! use xray_core::Document;
//! use xray_local::Trace;
//!
//! let segment: Document = serde_json::from_str(
//!     r#"{"name":"web","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979",
//!         "start_time":1478293361.271,"end_time":1478293361.449,
//!         "subsegments":[{"name":"db","id":"70de5b6f19ff9a0b","start_time":1478293361.3,"in_progress":true}]}"#,
//! ).unwrap();
//! let late: Document = serde_json::from_str(
//!     r#"{"type":"subsegment","name":"db","id":"70de5b6f19ff9a0b","parent_id":"70de5b6f19ff9a0a",
//!         "trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1478293361.3,"end_time":1478293361.4}"#,
//! ).unwrap();
//!
//! let trace = Trace::assemble(&[segment.clone()]);
//! assert!(!trace.is_complete()); // `db` is still in progress
//! let trace = Trace::assemble(&[segment, late]);
//! assert!(trace.is_complete());
//! assert_eq!(trace.outline(), "web\n  db\n");
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};
use xray_core::document::Cause;
use xray_core::time::Timestamp;
use xray_core::{Document, EntityId, TraceId};

use crate::escape::escape_control;
use crate::limits::MAX_NESTING;

/// Levels of indentation in [`Trace::outline`]; deeper lines show their depth instead.
pub const OUTLINE_MAX_DEPTH: usize = 64;

/// One segment or subsegment of an assembled trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEntity {
    document: Document,
    parent: Option<EntityId>,
    claimed_parent: Option<EntityId>,
    segment: bool,
    independent: bool,
    depth: usize,
}

impl TraceEntity {
    /// The entity's own document, with its `subsegments` left out (they are entities of
    /// their own; see [`Trace::children_of`]).
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// The entity's id.
    pub fn id(&self) -> EntityId {
        self.document.id
    }

    /// The entity's name.
    pub fn name(&self) -> &str {
        &self.document.name
    }

    /// True for a segment (a top-level document without `type`).
    pub fn is_segment(&self) -> bool {
        self.segment
    }

    /// True when this version of the entity arrived as its own document (a segment or an
    /// independent subsegment) rather than embedded in its parent.
    pub fn is_independent(&self) -> bool {
        self.independent
    }

    /// The parent in this trace's tree; `None` for a root.
    pub fn parent_id(&self) -> Option<EntityId> {
        self.parent
    }

    /// The parent the document names (`parent_id`, or the enclosing entity), whether or not
    /// it is part of the trace.
    pub fn claimed_parent_id(&self) -> Option<EntityId> {
        self.claimed_parent
    }

    /// Depth in the tree; roots are at 0.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// True while the entity has not ended (`in_progress` or no `end_time`).
    pub fn is_in_progress(&self) -> bool {
        self.document.in_progress || self.document.end_time.is_none()
    }

    /// When it started.
    pub fn start_time(&self) -> Timestamp {
        self.document.start_time
    }

    /// When it ended, if it did.
    pub fn end_time(&self) -> Option<Timestamp> {
        self.document
            .end_time
            .filter(|_| !self.document.in_progress)
    }

    /// `end_time - start_time`, once ended.
    pub fn duration(&self) -> Option<Duration> {
        self.end_time().map(|e| {
            Duration::from_micros(
                e.as_micros()
                    .saturating_sub(self.document.start_time.as_micros()),
            )
        })
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        self.document.annotations.get(key)
    }

    /// The HTTP method of the recorded request.
    pub fn http_method(&self) -> Option<&str> {
        self.document.http.request.as_ref()?.method.as_deref()
    }

    /// The URL of the recorded request.
    pub fn http_url(&self) -> Option<&str> {
        self.document.http.request.as_ref()?.url.as_deref()
    }

    /// The HTTP response status.
    pub fn http_status(&self) -> Option<u16> {
        self.document.http.response.as_ref()?.status
    }

    /// The AWS operation (`aws.operation`) of an AWS SDK subsegment.
    pub fn aws_operation(&self) -> Option<&str> {
        self.document.aws.get("operation")?.as_str()
    }

    /// The message of the first exception recorded in `cause`, if any.
    pub fn exception_message(&self) -> Option<&str> {
        match self.document.cause.as_ref()? {
            Cause::Exceptions(data) => data.exceptions.first()?.message.as_deref(),
            Cause::Reference(_) => None,
        }
    }
}

/// A node of [`Trace::tree`].
///
/// Cloning and dropping walk the tree without recursion, so a tree thousands of levels deep is
/// safe on any thread; `Debug` shows the entity and the number of children.
pub struct TreeNode<'a> {
    /// The entity.
    pub entity: &'a TraceEntity,
    /// Its children, ordered by start time.
    pub children: Vec<TreeNode<'a>>,
}

impl Drop for TreeNode<'_> {
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.children);
        while let Some(mut node) = stack.pop() {
            stack.append(&mut node.children);
        }
    }
}

impl<'a> Clone for TreeNode<'a> {
    fn clone(&self) -> Self {
        // Depth first, with each node's number of children...
        let mut order = Vec::new();
        let mut stack: Vec<&TreeNode<'a>> = vec![self];
        while let Some(node) = stack.pop() {
            order.push((node.entity, node.children.len()));
            stack.extend(node.children.iter().rev());
        }
        // ...then rebuilt from the end: a node's children are the last ones built.
        let mut built: Vec<TreeNode<'a>> = Vec::new();
        for (entity, n) in order.into_iter().rev() {
            let children = built.drain(built.len() - n..).rev().collect();
            built.push(TreeNode { entity, children });
        }
        built.pop().expect("the root is built last")
    }
}

impl std::fmt::Debug for TreeNode<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeNode")
            .field("entity", self.entity)
            .field("children", &self.children.len())
            .finish()
    }
}

/// One step of [`Trace::walk`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct WalkStep<'a> {
    pub(crate) entity: &'a TraceEntity,
    pub(crate) depth: usize,
    /// The last of its parent's children (always true for a root).
    pub(crate) last: bool,
    pub(crate) has_children: bool,
}

/// The assembled documents of one trace.
#[derive(Clone, Debug)]
pub struct Trace {
    trace_id: Option<TraceId>,
    /// Entities in depth-first tree order.
    entities: Vec<TraceEntity>,
    index: HashMap<EntityId, usize>,
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
    documents: Vec<Document>,
    orphans: usize,
}

/// One flattened entity before versions are merged.
struct Candidate {
    doc: Document,
    claimed_parent: Option<EntityId>,
    segment: bool,
    independent: bool,
    /// (complete, arrival): the highest wins.
    rank: (bool, usize),
}

/// Adds one top-level document and every subsegment embedded in it, parents first, without
/// recursion and copying each entity once.
fn flatten(doc: &Document, seq: usize, out: &mut Vec<Candidate>) {
    let independent = doc.kind.as_deref() == Some("subsegment");
    let mut stack: Vec<(Document, Option<EntityId>, bool)> = vec![(doc.clone(), None, true)];
    while let Some((mut own, enclosing, top)) = stack.pop() {
        let subsegments = std::mem::take(&mut own.subsegments);
        let id = own.id;
        let complete = !own.in_progress && own.end_time.is_some();
        out.push(Candidate {
            claimed_parent: if top { own.parent_id } else { enclosing },
            segment: top && !independent,
            independent: top,
            rank: (complete, seq),
            doc: own,
        });
        stack.extend(subsegments.into_iter().rev().map(|s| (s, Some(id), false)));
    }
}

impl Trace {
    /// Assembles top-level documents (in arrival order) into a trace. Documents are expected
    /// to share one trace id; the first one found names the trace.
    pub fn assemble(documents: &[Document]) -> Trace {
        Self::assemble_owned(documents.to_vec())
    }

    /// [`Trace::assemble`], keeping the documents given instead of copying them.
    pub(crate) fn assemble_owned(documents: Vec<Document>) -> Trace {
        let mut candidates = Vec::new();
        for (seq, d) in documents.iter().enumerate() {
            flatten(d, seq, &mut candidates);
        }

        // One version per id: complete beats in progress, later beats earlier.
        let mut best: HashMap<EntityId, Candidate> = HashMap::new();
        let mut first_seen: Vec<EntityId> = Vec::new();
        for c in candidates {
            match best.get(&c.doc.id) {
                Some(old) if old.rank > c.rank => {}
                Some(_) => {
                    best.insert(c.doc.id, c);
                }
                None => {
                    first_seen.push(c.doc.id);
                    best.insert(c.doc.id, c);
                }
            }
        }

        let mut entities: Vec<TraceEntity> = first_seen
            .iter()
            .filter_map(|id| best.remove(id))
            .map(|c| TraceEntity {
                parent: None,
                claimed_parent: c.claimed_parent,
                segment: c.segment,
                independent: c.independent,
                depth: 0,
                document: c.doc,
            })
            .collect();
        let pos: HashMap<EntityId, usize> = entities
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id(), i))
            .collect();

        // Link to parents that are part of the trace.
        let mut orphans = 0;
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); entities.len()];
        let mut parent_of: Vec<Option<usize>> = vec![None; entities.len()];
        for (i, e) in entities.iter().enumerate() {
            match e.claimed_parent.and_then(|p| pos.get(&p)) {
                Some(&p) if p != i => {
                    parent_of[i] = Some(p);
                    children[p].push(i);
                }
                _ => {
                    if !e.segment && e.claimed_parent.is_some() {
                        orphans += 1;
                    }
                }
            }
        }
        let order_key = |i: &usize| (entities[*i].document.start_time, *i);
        for c in &mut children {
            c.sort_by_key(order_key);
        }

        // Depth-first order from the roots; an entity caught in a parent cycle (only
        // possible with bad input) becomes a root itself.
        let mut roots: Vec<usize> = (0..entities.len())
            .filter(|&i| parent_of[i].is_none())
            .collect();
        roots.sort_by_key(order_key);
        let mut visited = vec![false; entities.len()];
        let mut order: Vec<(usize, usize)> = Vec::with_capacity(entities.len());
        fn visit(
            children: &[Vec<usize>],
            root: usize,
            visited: &mut [bool],
            order: &mut Vec<(usize, usize)>,
        ) {
            let mut stack = vec![(root, 0usize)];
            while let Some((i, depth)) = stack.pop() {
                if visited[i] {
                    continue;
                }
                visited[i] = true;
                order.push((i, depth));
                for &c in children[i].iter().rev() {
                    stack.push((c, depth + 1));
                }
            }
        }
        for &r in &roots {
            visit(&children, r, &mut visited, &mut order);
        }
        // What is left hangs from parent cycles. Walk up from each such entity to the first
        // entity seen twice (one of the cycle), cut the cycle there and take the whole
        // component from it: every entity is walked at most once, so this stays linear
        // however wide the component.
        let mut walked = vec![usize::MAX; entities.len()];
        for i in 0..entities.len() {
            if visited[i] {
                continue;
            }
            let mut x = i;
            walked[x] = i;
            while let Some(p) = parent_of[x] {
                let seen = walked[p] == i;
                x = p;
                if seen {
                    break;
                }
                walked[x] = i;
            }
            if let Some(p) = parent_of[x].take() {
                children[p].retain(|&c| c != x);
            }
            roots.push(x);
            visit(&children, x, &mut visited, &mut order);
        }

        // Re-index everything in tree order.
        let mut new_index = vec![0usize; entities.len()];
        for (n, (old, _)) in order.iter().enumerate() {
            new_index[*old] = n;
        }
        let ids: Vec<EntityId> = entities.iter().map(TraceEntity::id).collect();
        let mut slots: Vec<Option<TraceEntity>> = entities.drain(..).map(Some).collect();
        let mut sorted = Vec::with_capacity(slots.len());
        let mut sorted_children = vec![Vec::new(); slots.len()];
        for (old, depth) in &order {
            if let Some(mut e) = slots[*old].take() {
                e.depth = *depth;
                e.parent = parent_of[*old].map(|p| ids[p]);
                sorted_children[new_index[*old]] =
                    children[*old].iter().map(|c| new_index[*c]).collect();
                sorted.push(e);
            }
        }
        let roots = roots.iter().map(|r| new_index[*r]).collect();
        let index = sorted
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id(), i))
            .collect();
        let trace_id = documents.iter().find_map(|d| d.trace_id);
        Trace {
            trace_id,
            entities: sorted,
            index,
            children: sorted_children,
            roots,
            documents,
            orphans,
        }
    }

    /// The documents, given back (see [`Trace::assemble_owned`]).
    pub(crate) fn into_documents(self) -> Vec<Document> {
        self.documents
    }

    /// The trace id, from the first document that carries one.
    pub fn trace_id(&self) -> Option<TraceId> {
        self.trace_id
    }

    /// Every entity, depth first in tree order.
    pub fn entities(&self) -> &[TraceEntity] {
        &self.entities
    }

    /// The segments, in tree order.
    pub fn segments(&self) -> Vec<&TraceEntity> {
        self.entities.iter().filter(|e| e.segment).collect()
    }

    /// The first entity (in tree order) with this name.
    pub fn find(&self, name: &str) -> Option<&TraceEntity> {
        self.entities.iter().find(|e| e.name() == name)
    }

    /// Every entity with this name, in tree order.
    pub fn find_all(&self, name: &str) -> Vec<&TraceEntity> {
        self.entities.iter().filter(|e| e.name() == name).collect()
    }

    /// The entity with this id.
    pub fn entity(&self, id: EntityId) -> Option<&TraceEntity> {
        self.index.get(&id).map(|&i| &self.entities[i])
    }

    /// The children of an entity, ordered by start time.
    pub fn children_of(&self, id: EntityId) -> Vec<&TraceEntity> {
        self.index
            .get(&id)
            .map(|&i| {
                self.children[i]
                    .iter()
                    .map(|&c| &self.entities[c])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The parent of an entity within the trace.
    pub fn parent_of(&self, id: EntityId) -> Option<&TraceEntity> {
        self.entity(id)?.parent.and_then(|p| self.entity(p))
    }

    /// Entities without a parent in the trace, ordered by start time.
    pub fn roots(&self) -> Vec<&TraceEntity> {
        self.roots.iter().map(|&r| &self.entities[r]).collect()
    }

    /// The top-level documents the trace was assembled from, in arrival order (including
    /// in-progress versions that were later replaced).
    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    /// Number of distinct entities.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// True when the trace has no entity.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// True when nothing is in progress and every independent subsegment found its parent.
    /// (The collector also waits for a quiet period before it reports a trace complete.)
    pub fn is_complete(&self) -> bool {
        !self.entities.is_empty()
            && self.orphans == 0
            && self.entities.iter().all(|e| !e.is_in_progress())
    }

    /// Independent subsegments whose parent has not arrived.
    pub fn orphan_count(&self) -> usize {
        self.orphans
    }

    /// Earliest start time.
    pub fn start_time(&self) -> Option<Timestamp> {
        self.entities.iter().map(|e| e.start_time()).min()
    }

    /// Latest start or end time.
    pub fn end_time(&self) -> Option<Timestamp> {
        self.entities
            .iter()
            .map(|e| e.end_time().unwrap_or(e.start_time()))
            .max()
    }

    /// From the earliest start to the latest end.
    pub fn duration(&self) -> Duration {
        match (self.start_time(), self.end_time()) {
            (Some(s), Some(e)) => {
                Duration::from_micros(e.as_micros().saturating_sub(s.as_micros()))
            }
            _ => Duration::ZERO,
        }
    }

    /// The tree, from the roots down. Built without recursion (and dropped without recursion),
    /// however deep the trace.
    pub fn tree(&self) -> Vec<TreeNode<'_>> {
        // Entities are in depth-first order: children come after their parent, so building
        // from the end finds every child already built.
        let mut built: Vec<Option<TreeNode<'_>>> = (0..self.entities.len()).map(|_| None).collect();
        for i in (0..self.entities.len()).rev() {
            let children = self.children[i]
                .iter()
                .filter_map(|&c| built[c].take())
                .collect();
            built[i] = Some(TreeNode {
                entity: &self.entities[i],
                children,
            });
        }
        self.roots.iter().filter_map(|&r| built[r].take()).collect()
    }

    /// Every entity in tree order with what drawing the tree needs, without recursion.
    pub(crate) fn walk(&self) -> impl Iterator<Item = WalkStep<'_>> {
        let mut last = vec![true; self.entities.len()];
        for c in &self.children {
            if let Some((_, init)) = c.split_last() {
                for &i in init {
                    last[i] = false;
                }
            }
        }
        self.entities
            .iter()
            .enumerate()
            .map(move |(i, entity)| WalkStep {
                entity,
                depth: entity.depth,
                last: last[i],
                has_children: !self.children[i].is_empty(),
            })
    }

    /// The tree as indented names, two spaces per level, one entity per line; handy in
    /// assertions. Control characters in a name are written as escapes
    /// ([`escape_control`]), so a name never breaks the line.
    ///
    /// Indentation stops growing at [`OUTLINE_MAX_DEPTH`] levels; deeper lines start with
    /// their depth (`(depth 65) name`), so a very deep trace does not make a huge text.
    pub fn outline(&self) -> String {
        let mut s = String::new();
        for e in &self.entities {
            let name = escape_control(e.name());
            if e.depth <= OUTLINE_MAX_DEPTH {
                let _ = writeln!(s, "{:width$}{name}", "", width = e.depth * 2);
            } else {
                let width = OUTLINE_MAX_DEPTH * 2;
                let _ = writeln!(s, "{:width$}(depth {}) {name}", "", e.depth);
            }
        }
        s
    }

    /// One document per segment (and per orphan subsegment) with every subsegment merged
    /// back in, as the X-Ray console would show it. Segments of other services stay separate.
    ///
    /// At most [`MAX_NESTING`] levels of subsegments are embedded in one document; a deeper
    /// subsegment starts a document of its own, an independent subsegment (`type`,
    /// `trace_id` and `parent_id` set), listed after the document it hangs from. Built without
    /// recursion.
    pub fn segment_documents(&self) -> Vec<Document> {
        let n = self.entities.len();
        // Which entities start a document, and how deep the others sit in theirs. Parents
        // come before their children.
        let mut level = vec![0usize; n];
        let mut starts_document = vec![false; n];
        for (i, e) in self.entities.iter().enumerate() {
            let parent = e.parent.and_then(|p| self.index.get(&p).copied());
            match parent {
                Some(p) if !e.segment && level[p] < MAX_NESTING => level[i] = level[p] + 1,
                _ => starts_document[i] = true,
            }
        }
        // Children come after their parent: build from the end.
        let mut built: Vec<Option<Document>> = (0..n).map(|_| None).collect();
        for (i, e) in self.entities.iter().enumerate().rev() {
            let mut d = e.document.clone();
            d.subsegments = self.children[i]
                .iter()
                .filter(|&&c| !starts_document[c])
                .filter_map(|&c| built[c].take())
                .collect();
            if !starts_document[i] {
                d.kind = None;
                d.trace_id = None;
                d.parent_id = None;
            } else if !e.segment && e.parent.is_some() {
                d.kind = Some("subsegment".to_string());
                d.trace_id = d.trace_id.or(self.trace_id);
                d.parent_id = e.parent;
            }
            built[i] = Some(d);
        }
        (0..n)
            .filter(|&i| starts_document[i])
            .filter_map(|i| built[i].take())
            .collect()
    }

    /// The trace as one JSON object: `trace_id`, `complete`, `start_time`, `end_time`,
    /// `duration` (seconds) and `segments` ([`Trace::segment_documents`]).
    pub fn to_json(&self) -> Value {
        json!({
            "trace_id": self.trace_id.map(|t| t.to_string()),
            "complete": self.is_complete(),
            "start_time": self.start_time(),
            "end_time": self.end_time(),
            "duration": self.duration().as_secs_f64(),
            "segments": self.segment_documents(),
        })
    }
}
