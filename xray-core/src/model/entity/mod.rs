//! Live segments and subsegments: the handle API.
//!
//! An [`Entity`] is a cheap, cloneable handle to a segment or subsegment that is being
//! recorded. All entities of one segment share a tree guarded by one mutex (per segment, never
//! global). When the segment ends, the tree becomes a
//! [`Document`](crate::document::Document) and is handed to the recorder's emitter, on the
//! thread that ended it.
//!
//! Subsegments that end after their segment was sent (work spawned by a request that outlives
//! it) are sent on their own as independent subsegments. When a segment holds more subsegments
//! than the streaming threshold, completed subsegments are sent early the same way, so memory
//! stays bounded for long requests.
//!
//! An unsampled entity holds no tree: it only carries ids so that trace headers keep
//! propagating, and every recording call on it returns at once.
//!
//! The parts, one concept each:
//! - this module: the handle ([`Entity`]), beginning subsegments, ending;
//! - `record`: what handlers record on an entity (annotations, metadata, HTTP, AWS, SQL,
//!   flags, causes);
//! - `tree`: the per-segment tree the handles point into;
//! - `emission`: which documents leave the tree, and when;
//! - `guard`: [`EntityGuard`], ending an entity when a scope ends.
//!
//! How a request or call ends (flags and causes for each way of ending) is not decided here
//! but in [`crate::lifecycle`].

mod emission;
mod guard;
mod record;
mod tree;

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::document::{HttpRequest, SmolStr};
use crate::header::{Sampled, TraceHeader};
use crate::id::{EntityId, TraceId};
use crate::naming::sanitize_name;
use crate::recorder::Recorder;
use crate::time::Timestamp;

pub use guard::EntityGuard;
pub(crate) use tree::Trace;
use tree::{lock, Carried, Light, Node, Nodes, State, TraceRef, NO_PARENT, ROOT};

/// What kind of entity a handle refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityKind {
    /// A segment: the work one service did for one request.
    Segment,
    /// A subsegment: a unit of work inside a segment.
    Subsegment,
}

/// The namespace of a subsegment that records a downstream call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// A call to an AWS service through an AWS SDK.
    Aws,
    /// Any other downstream call (HTTP, database, ...).
    Remote,
}

impl Namespace {
    /// `aws` or `remote`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Namespace::Aws => "aws",
            Namespace::Remote => "remote",
        }
    }
}

/// A handle to a segment or subsegment being recorded.
///
/// Handles are cheap to clone (one reference count). Ending an entity is explicit
/// ([`Entity::end`]) or tied to a guard ([`Entity::guard`]); dropping a handle does not end it.
#[derive(Clone)]
pub struct Entity {
    trace: TraceRef,
    idx: u32,
    id: EntityId,
    kind: EntityKind,
    sampled: bool,
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entity")
            .field("kind", &self.kind)
            .field("trace_id", &self.trace.trace_id())
            .field("id", &self.id)
            .field("sampled", &self.sampled)
            .finish()
    }
}

/// Parameters of a new segment.
pub(crate) struct NewSegment<'a> {
    /// Copied into the document only when the segment is sampled.
    pub(crate) name: &'a str,
    pub(crate) trace_id: TraceId,
    pub(crate) parent_id: Option<EntityId>,
    pub(crate) sampled: bool,
    pub(crate) sampled_requested: bool,
    pub(crate) extra: Vec<(Box<str>, Box<str>)>,
    pub(crate) tracestate: Option<Box<str>>,
    /// A facade segment (Lambda) is never sent; its subsegments are sent on their own.
    pub(crate) facade: bool,
    /// Use this id for the segment (facade segments take the id from the header).
    pub(crate) id: Option<EntityId>,
}

impl Entity {
    /// A new segment; a sampled one starts with the `http.request` block `http` returns (asked
    /// only then).
    #[inline]
    pub(crate) fn new_segment(
        recorder: Recorder,
        p: NewSegment<'_>,
        http: impl FnOnce() -> Option<HttpRequest>,
    ) -> Entity {
        let id = p.id.unwrap_or_default();
        let sampled = p.sampled;
        let trace = if sampled {
            Self::new_tree(recorder, p, id, http())
        } else {
            // Most requests: nothing to record, so nothing to allocate.
            TraceRef::Light(Light {
                recorder,
                trace_id: p.trace_id,
                segment_id: id,
                sampled_requested: p.sampled_requested,
                carried: (!p.extra.is_empty() || p.tracestate.is_some()).then(|| {
                    Arc::new(Carried {
                        extra: p.extra,
                        tracestate: p.tracestate,
                    })
                }),
            })
        };
        Entity {
            trace,
            idx: ROOT,
            id,
            kind: EntityKind::Segment,
            sampled,
        }
    }

    /// An unsampled segment of a new trace, with nothing carried from an incoming header: what
    /// most requests get under the default rule, built without the general path's parameters.
    #[inline]
    pub(crate) fn new_light_segment(recorder: Recorder, trace_id: TraceId) -> Entity {
        let id = EntityId::new();
        Entity {
            trace: TraceRef::Light(Light {
                recorder,
                trace_id,
                segment_id: id,
                sampled_requested: false,
                carried: None,
            }),
            idx: ROOT,
            id,
            kind: EntityKind::Segment,
            sampled: false,
        }
    }

    /// The shared tree of a sampled segment: one allocation, the segment's document started
    /// now.
    #[inline(never)]
    fn new_tree(
        recorder: Recorder,
        p: NewSegment<'_>,
        id: EntityId,
        http: Option<HttpRequest>,
    ) -> TraceRef {
        let (name, parent_id) = (p.name, p.parent_id);
        let mut trace = Arc::new(Trace {
            recorder,
            trace_id: p.trace_id,
            segment_id: id,
            sampled: true,
            sampled_requested: p.sampled_requested,
            extra: p.extra,
            tracestate: p.tracestate,
            state: Some(Mutex::new(State {
                nodes: Nodes::new(Node::open(NO_PARENT)),
                free: Vec::new(),
                held: 0,
                root_emitted: p.facade,
                spilled: Vec::new(),
            })),
        });
        // The document is filled in place (a `Document` is large: each move copies it). Nothing
        // else holds the new trace yet, so `get_mut` cannot fail.
        if let Some(state) = Arc::get_mut(&mut trace).and_then(|t| t.state.as_mut()) {
            let state = state.get_mut().unwrap_or_else(|p| p.into_inner());
            let doc = &mut state.nodes[ROOT as usize].doc;
            doc.name = SmolStr::new(sanitize_name(name, 200));
            doc.id = id;
            doc.trace_id = Some(p.trace_id);
            doc.parent_id = parent_id;
            doc.start_time = Timestamp::now();
            doc.http.request = http;
        }
        TraceRef::Shared(trace)
    }

    /// A no-op segment: unsampled, of a disabled recorder, so nothing recorded on it is kept.
    pub(crate) fn disabled() -> Entity {
        Recorder::disabled().begin_segment("disabled", None)
    }

    /// True when both handles refer to the same entity.
    pub fn same_as(&self, other: &Entity) -> bool {
        self.key() == other.key()
    }

    /// What tells this entity apart from every other live one: its id and its trace's
    /// address. Lets the context stack find an entity it holds without cloning it.
    pub(crate) fn key(&self) -> (EntityId, usize) {
        (self.id, self.trace.address())
    }

    /// `self.key() == key`, comparing the id first: it tells entities apart in almost every
    /// case, without working out the trace's address.
    #[inline]
    pub(crate) fn has_key(&self, key: (EntityId, usize)) -> bool {
        self.id == key.0 && self.trace.address() == key.1
    }

    /// The entity's id.
    pub fn id(&self) -> EntityId {
        self.id
    }

    /// The trace this entity belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace.trace_id()
    }

    /// Segment or subsegment.
    pub fn kind(&self) -> EntityKind {
        self.kind
    }

    /// True for a segment.
    pub fn is_segment(&self) -> bool {
        self.kind == EntityKind::Segment
    }

    /// Whether this entity is recorded and sent. Check it before computing costly annotations.
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// The recorder this entity reports to.
    pub fn recorder(&self) -> &Recorder {
        self.trace.recorder()
    }

    /// A handle to the segment this entity belongs to (the entity itself for a segment).
    pub fn segment(&self) -> Entity {
        if self.kind == EntityKind::Segment {
            return self.clone();
        }
        Entity {
            trace: self.trace.clone(),
            idx: ROOT,
            id: self.trace.segment_id(),
            kind: EntityKind::Segment,
            sampled: self.trace.sampled(),
        }
    }

    /// The id of the segment this entity belongs to (lock-free).
    pub fn segment_id(&self) -> EntityId {
        self.trace.segment_id()
    }

    /// The trace header to send on an outbound call made from this entity:
    /// `Root=<trace>;Parent=<this id>;Sampled=<0|1>` plus the pairs kept from the incoming header.
    pub fn outbound_header(&self) -> TraceHeader {
        let mut h = TraceHeader::new(
            self.trace.trace_id(),
            Some(self.id),
            Some(Sampled::from_bool(self.sampled)),
        );
        h.extra.extend_from_slice(self.trace.extra());
        h
    }

    /// The W3C `tracestate` that arrived with this trace (only kept when the server accepts W3C
    /// Trace Context and the `traceparent` named the same trace). Outbound calls that send
    /// `traceparent` send it along unchanged.
    pub fn tracestate(&self) -> Option<&str> {
        self.trace.tracestate()
    }

    /// The trace header a server returns on its response: `Root=<trace>`, plus
    /// `Sampled=<decision>` when the caller asked with `Sampled=?`.
    pub fn response_header(&self) -> TraceHeader {
        TraceHeader::new(self.trace.trace_id(), None, self.requested_decision())
    }

    /// The sampling decision, when the caller asked for it with `Sampled=?`.
    pub(crate) fn requested_decision(&self) -> Option<Sampled> {
        self.trace
            .sampled_requested()
            .then_some(Sampled::from_bool(self.trace.sampled()))
    }

    /// Starts a subsegment of this entity. It inherits this entity's sampling decision.
    pub fn begin_subsegment(&self, name: &str) -> Entity {
        self.begin_child(name, self.sampled)
    }

    /// Starts a subsegment that is never recorded, whatever this entity's decision; its trace
    /// headers say `Sampled=0`.
    pub fn begin_unsampled_subsegment(&self, name: &str) -> Entity {
        self.begin_child(name, false)
    }

    fn begin_child(&self, name: &str, sampled: bool) -> Entity {
        let id = EntityId::new();
        let unsampled = Entity {
            trace: self.trace.clone(),
            idx: NO_PARENT,
            id,
            kind: EntityKind::Subsegment,
            sampled: false,
        };
        if !sampled {
            return unsampled;
        }
        let Some(state) = self.trace.state() else {
            return unsampled;
        };
        let name = SmolStr::new(sanitize_name(name, 250));
        let start_time = Timestamp::now();
        let mut s = lock(state);
        // The parent must still be in the tree; if it was already sent, hang the new
        // subsegment off it by id so that it is sent on its own with the right parent.
        let parent_live = s.is_live(self.idx, self.id);
        let idx = s.insert_open(if parent_live { self.idx } else { NO_PARENT });
        let doc = &mut s.nodes[idx as usize].doc;
        doc.name = name;
        doc.id = id;
        doc.start_time = start_time;
        if parent_live {
            s.nodes[self.idx as usize].children.push(idx);
            s.add_open(self.idx, 1);
        } else {
            // Orphan: remember the parent id in the document itself.
            s.nodes[idx as usize].doc.parent_id = Some(self.id);
        }
        s.held += 1;
        Entity {
            trace: self.trace.clone(),
            idx,
            id,
            kind: EntityKind::Subsegment,
            sampled: true,
        }
    }

    /// Ends the entity now. Ending twice is harmless; the first end counts.
    pub fn end(&self) {
        // Unsampled entities record nothing: do not even read the clock.
        if self.sampled {
            self.end_at(Timestamp::now());
        }
    }

    /// Ends the entity at a given time (clamped so that it never precedes the start).
    pub fn end_at(&self, at: Timestamp) {
        if !self.sampled {
            return;
        }
        if let TraceRef::Shared(trace) = &self.trace {
            trace.end_node(self.idx, self.id, at);
        }
    }

    /// True once [`end`](Self::end) was called (always false for unsampled entities).
    pub fn is_ended(&self) -> bool {
        let Some(state) = self.trace.state().filter(|_| self.sampled) else {
            return false;
        };
        let s = lock(state);
        !s.is_live(self.idx, self.id) || s.nodes[self.idx as usize].ended
    }

    /// A guard that ends this entity when dropped. If the thread is panicking at that moment,
    /// the entity is marked `fault` with a cause saying so.
    pub fn guard(self) -> EntityGuard {
        EntityGuard { entity: Some(self) }
    }
}
