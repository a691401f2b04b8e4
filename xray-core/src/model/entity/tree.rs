//! The tree of one segment: every handle of the segment points into it.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::document::{Cause, Document, Exception};
use crate::id::{EntityId, TraceId};
use crate::recorder::Recorder;

pub(super) const NO_PARENT: u32 = u32::MAX;
pub(super) const ROOT: u32 = 0;

pub(crate) struct Trace {
    pub(crate) recorder: Recorder,
    pub(crate) trace_id: TraceId,
    /// The segment's id (the facade's id for Lambda invocations).
    pub(crate) segment_id: EntityId,
    pub(crate) sampled: bool,
    /// The caller sent `Sampled=?` and wants the decision back.
    pub(crate) sampled_requested: bool,
    /// Header pairs to forward (`Lineage`, unknown keys).
    pub(crate) extra: Vec<(Box<str>, Box<str>)>,
    /// The W3C `tracestate` received with the trace, forwarded with `traceparent`.
    pub(crate) tracestate: Option<Box<str>>,
    pub(super) state: Option<Mutex<State>>,
}

pub(super) struct State {
    pub(super) nodes: Nodes,
    pub(super) free: Vec<u32>,
    /// Subsegment nodes held in the tree.
    pub(super) held: usize,
    /// The segment's own document has been handed to the emitter (or never will be: facade).
    pub(super) root_emitted: bool,
    /// Documents taken out of the tree as independent subsegments because they sat deeper
    /// than [`MAX_EMBEDDED_DEPTH`](super::emission::MAX_EMBEDDED_DEPTH) in the document being
    /// built; sent right after it. Empty (and unallocated) but for very deep trees.
    pub(super) spilled: Vec<Document>,
}

pub(super) struct Node {
    pub(super) doc: Document,
    pub(super) parent: u32,
    pub(super) children: Vec<u32>,
    pub(super) ended: bool,
    pub(super) live: bool,
    /// Entities in this subtree, this one included, that have not ended.
    pub(super) open: u32,
}

/// The nodes of a tree, indexed from [`ROOT`]: the segment's node is held inline, so a
/// segment without subsegments needs no allocation for them.
pub(super) struct Nodes {
    root: Node,
    rest: Vec<Node>,
}

impl Nodes {
    pub(super) fn new(root: Node) -> Self {
        Nodes {
            root,
            rest: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        1 + self.rest.len()
    }

    pub(super) fn get(&self, idx: usize) -> Option<&Node> {
        match idx {
            0 => Some(&self.root),
            i => self.rest.get(i - 1),
        }
    }

    pub(super) fn push(&mut self, node: Node) {
        self.rest.push(node);
    }
}

impl std::ops::Index<usize> for Nodes {
    type Output = Node;
    #[inline]
    fn index(&self, idx: usize) -> &Node {
        match idx {
            0 => &self.root,
            i => &self.rest[i - 1],
        }
    }
}

impl std::ops::IndexMut<usize> for Nodes {
    #[inline]
    fn index_mut(&mut self, idx: usize) -> &mut Node {
        match idx {
            0 => &mut self.root,
            i => &mut self.rest[i - 1],
        }
    }
}

impl Node {
    /// A node that has not ended, with an empty document.
    #[inline]
    pub(super) fn open(parent: u32) -> Node {
        Node {
            doc: Document::default(),
            parent,
            children: Vec::new(),
            ended: false,
            live: true,
            open: 1,
        }
    }
}

/// What an entity knows about its trace.
#[derive(Clone)]
pub(super) enum TraceRef {
    /// A sampled trace: the segment's tree and what every handle shares, behind one pointer.
    Shared(Arc<Trace>),
    /// An unsampled trace records nothing: only what trace headers need, held inline, so that
    /// an unsampled request allocates nothing for its segment.
    Light(Light),
}

#[derive(Clone)]
pub(super) struct Light {
    pub(super) recorder: Recorder,
    pub(super) trace_id: TraceId,
    pub(super) segment_id: EntityId,
    pub(super) sampled_requested: bool,
    /// Header pairs and `tracestate` to forward, only when the incoming header had any.
    pub(super) carried: Option<Arc<Carried>>,
}

pub(super) struct Carried {
    pub(super) extra: Vec<(Box<str>, Box<str>)>,
    pub(super) tracestate: Option<Box<str>>,
}

impl TraceRef {
    pub(super) fn trace_id(&self) -> TraceId {
        match self {
            TraceRef::Shared(t) => t.trace_id,
            TraceRef::Light(l) => l.trace_id,
        }
    }

    pub(super) fn segment_id(&self) -> EntityId {
        match self {
            TraceRef::Shared(t) => t.segment_id,
            TraceRef::Light(l) => l.segment_id,
        }
    }

    pub(super) fn sampled(&self) -> bool {
        match self {
            TraceRef::Shared(t) => t.sampled,
            TraceRef::Light(_) => false,
        }
    }

    pub(super) fn sampled_requested(&self) -> bool {
        match self {
            TraceRef::Shared(t) => t.sampled_requested,
            TraceRef::Light(l) => l.sampled_requested,
        }
    }

    pub(super) fn recorder(&self) -> &Recorder {
        match self {
            TraceRef::Shared(t) => &t.recorder,
            TraceRef::Light(l) => &l.recorder,
        }
    }

    pub(super) fn extra(&self) -> &[(Box<str>, Box<str>)] {
        match self {
            TraceRef::Shared(t) => &t.extra,
            TraceRef::Light(l) => l.carried.as_deref().map_or(&[], |c| &c.extra),
        }
    }

    pub(super) fn tracestate(&self) -> Option<&str> {
        match self {
            TraceRef::Shared(t) => t.tracestate.as_deref(),
            TraceRef::Light(l) => l.carried.as_deref()?.tracestate.as_deref(),
        }
    }

    pub(super) fn state(&self) -> Option<&Mutex<State>> {
        match self {
            TraceRef::Shared(t) => t.state.as_ref(),
            TraceRef::Light(_) => None,
        }
    }

    /// Tells traces apart: the shared tree's address, or the trace id's random bits for an
    /// unsampled trace (whose entities are then told apart by their random ids).
    pub(super) fn address(&self) -> usize {
        match self {
            TraceRef::Shared(t) => Arc::as_ptr(t) as usize,
            TraceRef::Light(l) => l.trace_id.random_bits() as usize,
        }
    }
}

pub(super) fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    pub(super) fn is_live(&self, idx: u32, id: EntityId) -> bool {
        self.nodes
            .get(idx as usize)
            .is_some_and(|n| n.live && n.doc.id == id)
    }

    /// Adds an open node under `parent` with an empty document and returns its index; the
    /// caller fills the document in place (a `Document` is large: building it elsewhere and
    /// moving it in costs a copy of it each move).
    pub(super) fn insert_open(&mut self, parent: u32) -> u32 {
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = Node::open(parent);
            i
        } else {
            self.nodes.push(Node::open(parent));
            (self.nodes.len() - 1) as u32
        }
    }

    /// Adds `delta` to the open count of `idx` and all its ancestors.
    pub(super) fn add_open(&mut self, mut idx: u32, delta: i32) {
        while idx != NO_PARENT {
            let n = &mut self.nodes[idx as usize];
            n.open = n.open.saturating_add_signed(delta);
            idx = n.parent;
        }
    }

    /// Looks in the subtree of `idx` for an exception with the same message as one of `new`.
    pub(super) fn find_recorded_exception(&self, idx: u32, new: &[Exception]) -> Option<EntityId> {
        let messages: Vec<&str> = new.iter().filter_map(|e| e.message.as_deref()).collect();
        let mut stack: Vec<u32> = self.nodes[idx as usize].children.clone();
        while let Some(i) = stack.pop() {
            let n = &self.nodes[i as usize];
            if let Some(Cause::Exceptions(data)) = &n.doc.cause {
                if let Some(first) = data.exceptions.first() {
                    if first
                        .message
                        .as_deref()
                        .is_some_and(|m| messages.contains(&m))
                    {
                        return Some(first.id);
                    }
                }
            }
            stack.extend(&n.children);
        }
        None
    }

    pub(super) fn release(&mut self, idx: u32) {
        let n = &mut self.nodes[idx as usize];
        n.live = false;
        self.held = self.held.saturating_sub(1);
        self.free.push(idx);
    }
}
