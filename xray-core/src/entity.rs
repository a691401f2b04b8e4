//! Live segments and subsegments.
//!
//! An [`Entity`] is a cheap, cloneable handle to a segment or subsegment that is being
//! recorded. All entities of one segment share a tree guarded by one mutex (per segment, never
//! global). When the segment ends, the tree becomes a [`Document`] and is handed to the
//! recorder's emitter; serialization and sending happen off the request path.
//!
//! Subsegments that end after their segment was sent (work spawned by a request that outlives
//! it) are sent on their own as independent subsegments. When a segment holds more subsegments
//! than the streaming threshold, completed subsegments are sent early the same way, so memory
//! stays bounded for long requests.
//!
//! An unsampled entity holds no tree: it only carries ids so that trace headers keep
//! propagating, and every recording call on it returns at once.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

use crate::annotation::{is_valid_annotation_key, AnnotationValue};
use crate::document::{
    exceptions_from_error, Cause, CauseData, Document, Exception, HttpRequest, HttpResponse, Sql,
};
use crate::header::{Sampled, TraceHeader};
use crate::id::{EntityId, TraceId};
use crate::lifecycle::{apply_status_flags, Ending};
use crate::naming::sanitize_name;
use crate::recorder::Recorder;
use crate::time::Timestamp;

const NO_PARENT: u32 = u32::MAX;
const ROOT: u32 = 0;

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
    state: Option<Mutex<State>>,
}

struct State {
    nodes: Vec<Node>,
    free: Vec<u32>,
    /// Subsegment nodes held in the tree.
    held: usize,
    /// The segment's own document has been handed to the emitter (or never will be: facade).
    root_emitted: bool,
}

struct Node {
    doc: Document,
    parent: u32,
    children: Vec<u32>,
    ended: bool,
    live: bool,
    /// Entities in this subtree, this one included, that have not ended.
    open: u32,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A handle to a segment or subsegment being recorded.
///
/// Handles are cheap to clone (one reference count). Ending an entity is explicit
/// ([`Entity::end`]) or tied to a guard ([`Entity::guard`]); dropping a handle does not end it.
#[derive(Clone)]
pub struct Entity {
    trace: Arc<Trace>,
    idx: u32,
    id: EntityId,
    kind: EntityKind,
    sampled: bool,
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entity")
            .field("kind", &self.kind)
            .field("trace_id", &self.trace.trace_id)
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
    pub(crate) fn new_segment(recorder: Recorder, p: NewSegment<'_>) -> Entity {
        let id = p.id.unwrap_or_default();
        let state = p.sampled.then(|| {
            let doc = Document {
                name: sanitize_name(p.name, 200).into_owned(),
                id,
                trace_id: Some(p.trace_id),
                parent_id: p.parent_id,
                start_time: Timestamp::now(),
                ..Document::default()
            };
            Mutex::new(State {
                nodes: vec![Node {
                    doc,
                    parent: NO_PARENT,
                    children: Vec::new(),
                    ended: false,
                    live: true,
                    open: 1,
                }],
                free: Vec::new(),
                held: 0,
                root_emitted: p.facade,
            })
        });
        let trace = Arc::new(Trace {
            recorder,
            trace_id: p.trace_id,
            segment_id: id,
            sampled: p.sampled,
            sampled_requested: p.sampled_requested,
            extra: p.extra,
            tracestate: p.tracestate,
            state,
        });
        Entity {
            trace,
            idx: ROOT,
            id,
            kind: EntityKind::Segment,
            sampled: p.sampled,
        }
    }

    /// True when both handles refer to the same entity.
    pub fn same_as(&self, other: &Entity) -> bool {
        self.id == other.id && Arc::ptr_eq(&self.trace, &other.trace)
    }

    /// The entity's id.
    pub fn id(&self) -> EntityId {
        self.id
    }

    /// The trace this entity belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace.trace_id
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
        &self.trace.recorder
    }

    /// The id of the segment this entity belongs to (lock-free).
    pub fn segment_id(&self) -> EntityId {
        self.trace.segment_id
    }

    /// The trace header to send on an outbound call made from this entity:
    /// `Root=<trace>;Parent=<this id>;Sampled=<0|1>` plus the pairs kept from the incoming header.
    pub fn outbound_header(&self) -> TraceHeader {
        let mut h = TraceHeader::new(
            self.trace.trace_id,
            Some(self.id),
            Some(Sampled::from_bool(self.sampled)),
        );
        h.extra.clone_from(&self.trace.extra);
        h
    }

    /// The W3C `tracestate` that arrived with this trace (only kept when the server accepts W3C
    /// Trace Context and the `traceparent` named the same trace). Outbound calls that send
    /// `traceparent` send it along unchanged.
    pub fn tracestate(&self) -> Option<&str> {
        self.trace.tracestate.as_deref()
    }

    /// The trace header a server returns on its response: `Root=<trace>`, plus
    /// `Sampled=<decision>` when the caller asked with `Sampled=?`.
    pub fn response_header(&self) -> TraceHeader {
        let sampled = self
            .trace
            .sampled_requested
            .then_some(Sampled::from_bool(self.trace.sampled));
        TraceHeader::new(self.trace.trace_id, None, sampled)
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
        let Some(state) = &self.trace.state else {
            return unsampled;
        };
        let doc = Document {
            name: sanitize_name(name, 250).into_owned(),
            id,
            start_time: Timestamp::now(),
            ..Document::default()
        };
        let mut s = lock(state);
        // The parent must still be in the tree; if it was already sent, hang the new
        // subsegment off it by id so that it is sent on its own with the right parent.
        let parent_live = s.is_live(self.idx, self.id);
        let node = Node {
            doc,
            parent: if parent_live { self.idx } else { NO_PARENT },
            children: Vec::new(),
            ended: false,
            live: true,
            open: 1,
        };
        let idx = s.insert(node);
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

    /// Runs `f` on this entity's document while it is still held. Returns `None` for
    /// unsampled entities and entities already sent.
    pub fn with_document<R>(&self, f: impl FnOnce(&mut Document) -> R) -> Option<R> {
        if !self.sampled {
            return None;
        }
        let state = self.trace.state.as_ref()?;
        let mut s = lock(state);
        if !s.is_live(self.idx, self.id) || (self.idx == ROOT && s.root_emitted) {
            drop(s);
            // Logged after the lock is released: a `tracing` layer may call back into entities.
            tracing::debug!(id = %self.id, "entity already sent; change ignored");
            return None;
        }
        Some(f(&mut s.nodes[self.idx as usize].doc))
    }

    /// Adds an indexed annotation. Keys must match `[A-Za-z0-9_]{1,500}`; other keys, and
    /// non-finite numbers, are dropped with a warning.
    pub fn put_annotation(&self, key: &str, value: impl Into<AnnotationValue>) {
        if !self.sampled {
            return;
        }
        if !is_valid_annotation_key(key) {
            tracing::warn!(
                key,
                "annotation key must be 1-500 letters, digits or underscores; dropped"
            );
            return;
        }
        let mut value = value.into();
        if crate::annotation::fit_string_value(&mut value) {
            tracing::warn!(
                key,
                "annotation value longer than {} characters; cut to fit",
                crate::annotation::MAX_STRING_VALUE_CHARS
            );
        }
        let Some(value) = value.to_json() else {
            tracing::warn!(key, "annotation value is not a finite number; dropped");
            return;
        };
        self.with_document(|d| {
            d.annotations.insert(key.to_string(), value);
        });
    }

    /// Adds metadata under the `default` namespace.
    pub fn put_metadata(&self, key: &str, value: impl serde::Serialize) {
        self.put_metadata_in("default", key, value)
    }

    /// Adds metadata under a namespace. Namespaces starting with `AWS.` are reserved and refused.
    pub fn put_metadata_in(&self, namespace: &str, key: &str, value: impl serde::Serialize) {
        if !self.sampled {
            return;
        }
        if namespace.starts_with("AWS.") || namespace.is_empty() {
            tracing::warn!(
                namespace,
                "metadata namespace is reserved or empty; dropped"
            );
            return;
        }
        let value = match serde_json::to_value(value) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(key, error = %e, "metadata value cannot be serialized; dropped");
                return;
            }
        };
        // The document writer recurses (on the thread that ends the segment): a value nested
        // deeper than any reader accepts (serde_json reads 128 levels) would be refused later,
        // or worse, exhaust that thread's stack. Such values are dropped here, where the
        // caller can be told.
        if json_depth(&value) > MAX_METADATA_DEPTH {
            tracing::warn!(
                key,
                "metadata value nested more than {MAX_METADATA_DEPTH} levels deep; dropped"
            );
            return;
        }
        self.with_document(|d| {
            let ns = d
                .metadata
                .entry(namespace.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = ns {
                m.insert(key.to_string(), value);
            }
        });
    }

    /// Sets the end user on the segment this entity belongs to (at most 250 characters).
    pub fn set_user(&self, user: &str) {
        if !self.sampled {
            return;
        }
        let user: String = user.chars().take(250).collect();
        let Some(state) = &self.trace.state else {
            return;
        };
        let mut s = lock(state);
        if !s.root_emitted {
            s.nodes[ROOT as usize].doc.user = Some(user);
        }
    }

    /// Sets the namespace of a subsegment that records a downstream call.
    pub fn set_namespace(&self, ns: Namespace) {
        if self.kind == EntityKind::Subsegment {
            self.with_document(|d| d.namespace = Some(ns.as_str().to_string()));
        }
    }

    /// Records the HTTP request.
    pub fn set_http_request(&self, request: HttpRequest) {
        self.with_document(|d| d.http.request = Some(request));
    }

    /// Records the HTTP response and sets the flags its status implies:
    /// 4xx error, 429 error and throttle, 5xx fault.
    pub fn set_http_response(&self, status: u16, content_length: Option<u64>) {
        self.with_document(|d| {
            d.http.response = Some(HttpResponse {
                status: Some(status),
                content_length,
            });
            apply_status_flags(d, status);
        });
    }

    /// Records only the length of the response body (when it became known later).
    pub fn set_content_length(&self, content_length: u64) {
        self.with_document(|d| {
            d.http
                .response
                .get_or_insert_with(HttpResponse::default)
                .content_length = Some(content_length);
        });
    }

    /// Sets the error flag (a client-side error, 4xx).
    pub fn set_error(&self) {
        self.with_document(|d| d.error = true);
    }

    /// Sets the throttle flag (and the error flag).
    pub fn set_throttle(&self) {
        self.with_document(|d| {
            d.throttle = true;
            d.error = true;
        });
    }

    /// Sets the fault flag (a server-side error, 5xx).
    pub fn set_fault(&self) {
        self.with_document(|d| d.fault = true);
    }

    /// Records an application error: sets `fault` and adds a cause built from the error and its
    /// `source()` chain. When a subsegment of this entity already recorded the same error, the
    /// cause refers to that exception by id instead of repeating it.
    pub fn add_error<E: std::error::Error + 'static>(&self, err: &E) {
        if !self.sampled {
            return;
        }
        self.add_error_dyn(err, std::any::type_name::<E>(), false)
    }

    /// Like [`add_error`](Self::add_error) for a trait object, with an explicit type name and
    /// whether the error came from a downstream service.
    pub fn add_error_dyn(
        &self,
        err: &(dyn std::error::Error + 'static),
        type_name: &str,
        remote: bool,
    ) {
        if !self.sampled {
            return;
        }
        let mut exceptions = exceptions_from_error(err, type_name);
        for e in &mut exceptions {
            e.remote = remote;
        }
        self.add_exceptions(exceptions, true);
    }

    /// Records a panic caught with `catch_unwind`: `fault` and a cause of type `panic` with the
    /// panic's message.
    pub fn add_panic(&self, payload: &(dyn std::any::Any + Send)) {
        if self.sampled {
            self.add_exceptions(vec![Exception::from_panic(payload)], true);
        }
    }

    /// Adds exceptions to this entity's cause; with `fault`, also sets the fault flag.
    pub fn add_exceptions(&self, exceptions: Vec<Exception>, fault: bool) {
        if !self.sampled || exceptions.is_empty() {
            return;
        }
        let Some(state) = &self.trace.state else {
            return;
        };
        let mut s = lock(state);
        if !s.is_live(self.idx, self.id) || (self.idx == ROOT && s.root_emitted) {
            return;
        }
        let existing = s.find_recorded_exception(self.idx, &exceptions);
        let d = &mut s.nodes[self.idx as usize].doc;
        if fault {
            d.fault = true;
        }
        match (existing, &mut d.cause) {
            (Some(id), None) => d.cause = Some(Cause::Reference(id.to_string())),
            (Some(_), _) => {}
            (None, Some(Cause::Exceptions(data))) => data.exceptions.extend(exceptions),
            (None, cause) => {
                *cause = Some(Cause::Exceptions(CauseData {
                    working_directory: working_directory(),
                    exceptions,
                    ..CauseData::default()
                }))
            }
        }
    }

    /// Records an AWS field (`operation`, `region`, `request_id`, `table_name`, ...).
    pub fn set_aws(&self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        self.with_document(|d| {
            d.aws.insert(key.to_string(), value);
        });
    }

    /// Records the `sql` block.
    pub fn set_sql(&self, sql: Sql) {
        self.with_document(|d| d.sql = Some(sql));
    }

    /// Records the id of a subsegment that completed before this one started.
    pub fn add_precursor_id(&self, id: EntityId) {
        self.with_document(|d| d.precursor_ids.push(id));
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
        let Some(state) = &self.trace.state else {
            return;
        };
        let out = {
            let mut s = lock(state);
            if !s.is_live(self.idx, self.id) || s.nodes[self.idx as usize].ended {
                return;
            }
            let node = &mut s.nodes[self.idx as usize];
            node.ended = true;
            node.doc.end_time = Some(at.max(node.doc.start_time));
            s.add_open(self.idx, -1);
            // A segment without subsegments (most requests) is serialized where it lies,
            // under this segment's lock, instead of being taken out of the tree, when the
            // emitter can work that way.
            if self.idx == ROOT && !s.root_emitted && s.nodes[ROOT as usize].children.is_empty() {
                let doc = &mut s.nodes[ROOT as usize].doc;
                if doc.kind.is_none() {
                    self.trace.recorder.decorate_segment(doc);
                }
                if self.trace.recorder.emit_borrowed(doc) {
                    s.root_emitted = true;
                    return;
                }
            }
            let threshold = self.trace.recorder.streaming_threshold();
            s.after_end(self.idx, threshold)
        };
        if let Some(mut doc) = out {
            // A segment offered in place above is decorated already.
            if doc.kind.is_none() && doc.decoration.is_none() {
                self.trace.recorder.decorate_segment(&mut doc);
            }
            self.trace.recorder.emit(doc);
        }
    }

    /// True once [`end`](Self::end) was called (always false for unsampled entities).
    pub fn is_ended(&self) -> bool {
        let Some(state) = self.trace.state.as_ref().filter(|_| self.sampled) else {
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

/// Deepest metadata value kept (the document adds two levels above it).
const MAX_METADATA_DEPTH: usize = 100;

/// Nesting depth of a JSON value, computed without recursion.
fn json_depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}

fn working_directory() -> Option<String> {
    std::env::current_dir()
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

impl State {
    fn is_live(&self, idx: u32, id: EntityId) -> bool {
        self.nodes
            .get(idx as usize)
            .is_some_and(|n| n.live && n.doc.id == id)
    }

    fn insert(&mut self, node: Node) -> u32 {
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = node;
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    /// Adds `delta` to the open count of `idx` and all its ancestors.
    fn add_open(&mut self, mut idx: u32, delta: i32) {
        while idx != NO_PARENT {
            let n = &mut self.nodes[idx as usize];
            n.open = n.open.saturating_add_signed(delta);
            idx = n.parent;
        }
    }

    /// Looks in the subtree of `idx` for an exception with the same message as one of `new`.
    fn find_recorded_exception(&self, idx: u32, new: &[Exception]) -> Option<EntityId> {
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

    /// The document that can be sent now that `idx` has ended, if any.
    fn after_end(&mut self, idx: u32, threshold: usize) -> Option<Document> {
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
    fn detach_independent(&mut self, idx: u32) -> Document {
        let parent = self.nodes[idx as usize].parent;
        let parent_id = if parent == NO_PARENT {
            self.nodes[idx as usize].doc.parent_id
        } else {
            let p = &mut self.nodes[parent as usize];
            p.children.retain(|&c| c != idx);
            Some(p.doc.id)
        };
        let mut doc = self.take_subtree(idx);
        doc.kind = Some("subsegment".to_string());
        doc.trace_id = self.nodes[ROOT as usize].doc.trace_id;
        doc.parent_id = parent_id;
        doc
    }

    /// Moves a completed subtree out of the tree.
    fn take_subtree(&mut self, idx: u32) -> Document {
        let children = std::mem::take(&mut self.nodes[idx as usize].children);
        let mut doc = std::mem::take(&mut self.nodes[idx as usize].doc);
        doc.subsegments = children.into_iter().map(|c| self.take_subtree(c)).collect();
        self.release(idx);
        doc
    }

    fn release(&mut self, idx: u32) {
        let n = &mut self.nodes[idx as usize];
        n.live = false;
        self.held = self.held.saturating_sub(1);
        self.free.push(idx);
    }

    /// Builds the segment document. Completed subtrees are moved in; subtrees with open
    /// entities appear as in-progress stubs and stay in the tree, to be sent on their own.
    fn build_root(&mut self) -> Document {
        let children = std::mem::take(&mut self.nodes[ROOT as usize].children);
        let mut kept = Vec::new();
        let mut subs = Vec::with_capacity(children.len());
        for c in children {
            if self.nodes[c as usize].open == 0 {
                subs.push(self.take_subtree(c));
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
        drop(s);
        tracing::debug!(id = %doc.id, "segment dropped without being ended; sending it as in progress");
        self.recorder.decorate_segment(&mut doc);
        self.recorder.emit(doc);
    }
}

/// Ends its entity when dropped; see [`Entity::guard`].
#[must_use = "the entity ends as soon as the guard is dropped"]
#[derive(Debug)]
pub struct EntityGuard {
    entity: Option<Entity>,
}

impl EntityGuard {
    /// The guarded entity.
    pub fn entity(&self) -> &Entity {
        // Only `into_inner` and `drop` take the entity out, and both consume the guard.
        self.entity
            .as_ref()
            .expect("guard holds its entity until dropped")
    }

    /// Gives the entity back without ending it.
    pub fn into_inner(mut self) -> Entity {
        self.entity
            .take()
            .expect("guard holds its entity until dropped")
    }
}

impl std::ops::Deref for EntityGuard {
    type Target = Entity;
    fn deref(&self) -> &Entity {
        self.entity()
    }
}

impl Drop for EntityGuard {
    fn drop(&mut self) {
        if let Some(e) = self.entity.take() {
            if std::thread::panicking() {
                Ending::Panicked(None).apply(&e);
            }
            e.end();
        }
    }
}
