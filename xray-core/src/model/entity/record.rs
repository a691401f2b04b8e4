//! What handlers record on an entity: annotations, metadata, HTTP, AWS, SQL, flags, causes.

use serde_json::{Map, Value};

use crate::annotation::{is_valid_annotation_key, AnnotationValue};
use crate::document::{
    exceptions_from_error, Cause, CauseData, Document, Exception, HttpRequest, HttpResponse, Sql,
};
use crate::id::EntityId;
use crate::lifecycle::apply_status_flags;

use super::{lock, Entity, EntityKind, Namespace, ROOT};

impl Entity {
    /// Runs `f` on this entity's document while it is still held. Returns `None` for
    /// unsampled entities and entities already sent.
    pub fn with_document<R>(&self, f: impl FnOnce(&mut Document) -> R) -> Option<R> {
        if !self.sampled {
            return None;
        }
        let state = self.trace.state()?;
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
        let Some(state) = self.trace.state() else {
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
    /// panic's message, file and line (and more frames when backtraces are enabled).
    pub fn add_panic(&self, payload: &(dyn std::any::Any + Send)) {
        if self.sampled {
            crate::lifecycle::Ending::Panicked(Some(payload)).apply(self);
        }
    }

    /// Like [`add_error`](Self::add_error), with the frames of a backtrace captured where the
    /// error arose (at most [`Recorder::max_stack_frames`](crate::Recorder::max_stack_frames),
    /// on the first exception). With `anyhow`: `entity.add_error_with_backtrace(&*err,
    /// err.backtrace())`. A backtrace that was not captured (backtraces are off unless
    /// `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` enables them) adds no frames.
    pub fn add_error_with_backtrace(
        &self,
        err: &(dyn std::error::Error + 'static),
        backtrace: &std::backtrace::Backtrace,
    ) {
        if !self.sampled {
            return;
        }
        let mut exceptions = exceptions_from_error(err, &type_label(err));
        if let Some(first) = exceptions.first_mut() {
            let done = std::mem::take(first);
            *first = done.with_backtrace(backtrace, self.recorder().max_stack_frames());
        }
        self.add_exceptions(exceptions, true);
    }

    /// Adds exceptions to this entity's cause; with `fault`, also sets the fault flag.
    pub fn add_exceptions(&self, exceptions: Vec<Exception>, fault: bool) {
        if !self.sampled || exceptions.is_empty() {
            return;
        }
        let Some(state) = self.trace.state() else {
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
}

/// A type name for an error known only as a trait object: the leading name of its `Debug`.
fn type_label(err: &(dyn std::error::Error + 'static)) -> String {
    crate::document::type_name_from_debug(err).unwrap_or_else(|| "Error".to_string())
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
