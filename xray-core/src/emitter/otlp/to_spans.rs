//! From segment documents to OTLP spans.
//!
//! Each segment and subsegment of a document becomes one span (embedded subsegments are
//! flattened, depth first, each pointing at its enclosing entity); entities still in progress
//! are left out with everything below them, since their complete version is sent later. The
//! segment's `service`, `aws.xray` and plugin blocks and its `origin` describe the service and
//! become resource attributes.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use serde_json::{Map, Value};

use super::attrs::*;
use crate::document::{Cause, Document, Exception, Sql};
use crate::{EntityId, TraceId};

/// The 16 bytes of an OpenTelemetry trace id for an X-Ray trace id: the epoch second's 4
/// bytes, then the 12 random bytes (`1-5759e988-bd862e3fe1be46a994272793` becomes
/// `5759e988bd862e3fe1be46a994272793`).
pub fn trace_id_to_otlp(id: TraceId) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&id.epoch_seconds().to_be_bytes());
    out[4..].copy_from_slice(&id.random_bits().to_be_bytes()[4..]);
    out
}

/// The X-Ray trace id of an OpenTelemetry trace id (16 bytes): the first 4 bytes as the
/// epoch second, the other 12 as the random part. `None` unless `bytes` has 16 bytes, not
/// all zero.
pub fn trace_id_from_otlp(bytes: &[u8]) -> Option<TraceId> {
    let b: [u8; 16] = bytes.try_into().ok()?;
    if b == [0; 16] {
        return None;
    }
    let epoch = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let mut random = [0u8; 16];
    random[4..].copy_from_slice(&b[4..]);
    Some(TraceId::from_parts(epoch, u128::from_be_bytes(random)))
}

/// The 8 bytes of a span id for an entity id.
pub fn span_id_to_otlp(id: EntityId) -> [u8; 8] {
    id.as_u64().to_be_bytes()
}

/// The entity id of a span id (8 bytes, not all zero).
pub fn span_id_from_otlp(bytes: &[u8]) -> Option<EntityId> {
    let b: [u8; 8] = bytes.try_into().ok()?;
    EntityId::from_u64(u64::from_be_bytes(b))
}

/// The spans of one document, and the resource attributes its segment describes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DocumentSpans {
    /// Resource attributes from the segment's blocks (`service.name` and the rest); empty for
    /// an independent subsegment, which describes no service.
    pub resource: Vec<KeyValue>,
    /// One span per complete entity, parents before children.
    pub spans: Vec<Span>,
    /// Entities left out because they (or an entity above them) were still in progress.
    pub skipped: usize,
}

/// Maps a document (a segment with its embedded subsegments, or an independent subsegment)
/// to spans. `service_name` overrides the `service.name` resource attribute, which is the
/// segment's name otherwise. A document without a trace id gives no spans.
pub fn document_to_spans(doc: &Document, service_name: Option<&str>) -> DocumentSpans {
    let mut out = DocumentSpans::default();
    let Some(trace_id) = doc.trace_id else {
        return out;
    };
    let trace = trace_id_to_otlp(trace_id).to_vec();
    let is_segment = !doc
        .kind
        .as_deref()
        .is_some_and(|k| k.eq_ignore_ascii_case("subsegment"));
    if is_segment {
        out.resource = resource_of(doc, service_name);
    }
    // Depth first without recursion: (entity, its parent, whether it is the top document).
    let mut stack: Vec<(&Document, Option<EntityId>, bool)> = vec![(doc, doc.parent_id, true)];
    while let Some((entity, parent, top)) = stack.pop() {
        if entity.in_progress || entity.end_time.is_none() {
            out.skipped += 1 + entity.subsegment_count();
            continue;
        }
        let server = top && is_segment;
        out.spans.push(entity_span(
            entity,
            &trace,
            parent,
            server,
            top && is_segment,
        ));
        for sub in entity.subsegments.iter().rev() {
            stack.push((sub, Some(entity.id), false));
        }
    }
    out
}

/// The span kind of an entity.
fn kind_of(entity: &Document, server: bool) -> span::SpanKind {
    if server {
        span::SpanKind::Server
    } else {
        match entity.namespace.as_deref() {
            Some("aws") | Some("remote") => span::SpanKind::Client,
            _ => span::SpanKind::Internal,
        }
    }
}

fn nanos(t: crate::time::Timestamp) -> u64 {
    t.as_micros().saturating_mul(1000)
}

fn entity_span(
    e: &Document,
    trace: &[u8],
    parent: Option<EntityId>,
    server: bool,
    segment: bool,
) -> Span {
    let kind = kind_of(e, server);
    let mut attributes = Vec::new();
    http_attributes(e, &mut attributes);
    aws_attributes(e, segment, &mut attributes);
    if let Some(sql) = &e.sql {
        sql_attributes(sql, &mut attributes);
    }
    if let Some(user) = &e.user {
        attributes.push(kv(ENDUSER, string(user.as_str())));
    }
    match e.namespace.as_deref() {
        None | Some("aws") | Some("remote") => {}
        Some(other) => attributes.push(kv(NAMESPACE, string(other))),
    }
    if !e.precursor_ids.is_empty() {
        attributes.push(kv(
            PRECURSOR_IDS,
            strings(e.precursor_ids.iter().map(ToString::to_string)),
        ));
    }
    metadata_attributes(&e.metadata, &mut attributes);
    annotation_attributes(&e.annotations, &mut attributes);

    let end = e.end_time.map(nanos).unwrap_or_default();
    let mut events = Vec::new();
    let mut status_message = String::new();
    match &e.cause {
        Some(Cause::Reference(id)) => status_message.clone_from(id),
        Some(Cause::Exceptions(data)) => {
            if let Some(wd) = &data.working_directory {
                attributes.push(kv(CAUSE_WORKING_DIRECTORY, string(wd.as_str())));
            }
            if !data.paths.is_empty() {
                attributes.push(kv(CAUSE_PATHS, strings(data.paths.iter().cloned())));
            }
            for x in &data.exceptions {
                events.push(exception_event(x, end));
            }
            if let Some(m) = data.exceptions.first().and_then(|x| x.message.as_ref()) {
                status_message.clone_from(m);
            }
        }
        None => {}
    }
    let status_code = e.http.response.as_ref().and_then(|r| r.status);
    let error_status = e.fault
        || matches!(e.cause, Some(Cause::Reference(_)))
        || ((e.error || e.throttle) && kind != span::SpanKind::Server && status_code.is_none());
    // What the collector's exporter would derive from the status code and the span status;
    // where that differs from the document, the flags go along explicitly.
    if derived_flags(status_code, error_status) != (e.fault, e.error, e.throttle) {
        attributes.push(kv(FAULT, boolean(e.fault)));
        attributes.push(kv(ERROR, boolean(e.error)));
        attributes.push(kv(THROTTLE, boolean(e.throttle)));
    }
    let status = if error_status {
        Some(Status {
            code: status::StatusCode::Error as i32,
            message: status_message,
        })
    } else {
        None
    };
    Span {
        trace_id: trace.to_vec(),
        span_id: span_id_to_otlp(e.id).to_vec(),
        parent_span_id: parent
            .map(|p| span_id_to_otlp(p).to_vec())
            .unwrap_or_default(),
        // Sampled: every document an X-Ray recorder sends is.
        flags: 1,
        name: e.name.to_string(),
        kind: kind as i32,
        start_time_unix_nano: nanos(e.start_time),
        end_time_unix_nano: end,
        attributes,
        events,
        status,
        ..Default::default()
    }
}

/// The `(fault, error, throttle)` flags AWS's translation derives from an HTTP status code
/// and whether the span's status is an error: 4xx is an error (429 also throttled), 5xx a
/// fault, and without an HTTP error code the span status decides the fault.
pub(crate) fn derived_flags(status_code: Option<u16>, error_status: bool) -> (bool, bool, bool) {
    match status_code {
        Some(c @ 400..=499) => (false, true, c == 429),
        Some(500..=599) => (true, false, false),
        _ => (error_status, false, false),
    }
}

fn http_attributes(e: &Document, out: &mut Vec<KeyValue>) {
    if let Some(req) = &e.http.request {
        if let Some(m) = &req.method {
            out.push(kv(HTTP_METHOD, string(m.as_str())));
        }
        if let Some(u) = &req.url {
            out.push(kv(URL_FULL, string(u.as_str())));
        }
        if let Some(ua) = &req.user_agent {
            out.push(kv(USER_AGENT, string(ua.as_str())));
        }
        if let Some(ip) = &req.client_ip {
            out.push(kv(CLIENT_ADDRESS, string(ip.as_str())));
            // The translation marks a client address as forwarded unless the peer address
            // is given too.
            if !req.x_forwarded_for {
                out.push(kv(PEER_ADDRESS, string(ip.as_str())));
            }
        }
        if req.traced {
            out.push(kv(HTTP_TRACED, boolean(true)));
        }
    }
    if let Some(resp) = &e.http.response {
        if let Some(s) = resp.status {
            out.push(kv(HTTP_STATUS, int(i64::from(s))));
        }
        if let Some(n) = resp.content_length {
            out.push(kv(
                HTTP_BODY_SIZE,
                int(i64::try_from(n).unwrap_or(i64::MAX)),
            ));
        }
    }
}

/// `aws` keys of a segment that describe the service rather than the request: resource
/// attributes, not span attributes.
pub(crate) const RESOURCE_AWS_KEYS: &[&str] = &[
    "xray",
    "ec2",
    "ecs",
    "eks",
    "elastic_beanstalk",
    "cloudwatch_logs",
];

fn aws_attributes(e: &Document, segment: bool, out: &mut Vec<KeyValue>) {
    if e.namespace.as_deref() == Some("aws") {
        out.push(kv(RPC_SYSTEM, string(RPC_SYSTEM_AWS)));
        out.push(kv(RPC_SERVICE, string(e.name.as_str())));
        out.push(kv(AWS_SERVICE, string(e.name.as_str())));
    }
    for (key, value) in &e.aws {
        if segment && RESOURCE_AWS_KEYS.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "operation" => {
                if let Some(op) = value.as_str() {
                    out.push(kv(AWS_OPERATION, string(op)));
                    out.push(kv(RPC_METHOD, string(op)));
                    continue;
                }
            }
            "retries" => {
                if let Some(n) = value.as_i64() {
                    out.push(kv(AWS_RETRIES, int(n)));
                    continue;
                }
            }
            "table_names" => {
                if let Some(v) = from_json(value) {
                    out.push(kv(AWS_TABLE_NAMES, v));
                }
                continue;
            }
            _ => {}
        }
        let name = AWS_FIELDS
            .iter()
            .find(|(k, _)| *k == key)
            .map_or_else(|| format!("aws.{key}"), |(_, a)| (*a).to_string());
        if let Some(v) = from_json(value) {
            out.push(kv(name, v));
        }
    }
}

/// The semantic-convention `db.system` value for an X-Ray `database_type`.
pub(crate) fn db_system(database_type: &str) -> &'static str {
    let t = database_type.to_ascii_lowercase();
    let t = t.split(['+', ' ']).next().unwrap_or_default();
    match t {
        "postgresql" | "postgres" | "pg" => "postgresql",
        "mysql" => "mysql",
        "mariadb" => "mariadb",
        "ms" | "mssql" | "sqlserver" | "microsoft" => "mssql",
        "oracle" => "oracle",
        "sqlite" | "sqlite3" => "sqlite",
        "db2" => "db2",
        "derby" => "derby",
        "hive" => "hive",
        "teradata" => "teradata",
        _ => "other_sql",
    }
}

/// Splits `scheme://host[:port]/db[?...]` into the part before the database and the
/// database name; `None` when the URL has no database part.
pub(crate) fn split_sql_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.split_once("://")?.1;
    let path_start = rest.find('/')?;
    let at = url.len() - rest.len() + path_start;
    let (conn, db) = (&url[..at], &url[at + 1..]);
    let db = db.split(['?', '#']).next().unwrap_or_default();
    (!db.is_empty() && !db.contains('/')).then_some((conn, db))
}

fn sql_attributes(sql: &Sql, out: &mut Vec<KeyValue>) {
    if let Some(t) = &sql.database_type {
        let system = db_system(t);
        out.push(kv(DB_SYSTEM, string(system)));
        if system != t {
            out.push(kv(SQL_DATABASE_TYPE, string(t.as_str())));
        }
    }
    if let Some(url) = &sql.url {
        match split_sql_url(url) {
            Some((conn, db)) => {
                out.push(kv(DB_CONNECTION_STRING, string(conn)));
                out.push(kv(DB_NAME, string(db)));
                if format!("{conn}/{db}") != *url {
                    out.push(kv(SQL_URL, string(url.as_str())));
                }
            }
            None => out.push(kv(SQL_URL, string(url.as_str()))),
        }
    }
    if let Some(q) = &sql.sanitized_query {
        out.push(kv(DB_STATEMENT, string(q.as_str())));
    }
    if let Some(u) = &sql.user {
        out.push(kv(DB_USER, string(u.as_str())));
    }
    for (value, key) in [
        (&sql.database_version, SQL_DATABASE_VERSION),
        (&sql.driver_version, SQL_DRIVER_VERSION),
        (&sql.preparation, SQL_PREPARATION),
    ] {
        if let Some(v) = value {
            out.push(kv(key, string(v.as_str())));
        }
    }
}

fn metadata_attributes(metadata: &Map<String, Value>, out: &mut Vec<KeyValue>) {
    for (ns, value) in metadata {
        out.push(kv(
            format!("{METADATA_PREFIX}{ns}"),
            string(value.to_string()),
        ));
    }
}

fn annotation_attributes(annotations: &Map<String, Value>, out: &mut Vec<KeyValue>) {
    let mut keys = Vec::with_capacity(annotations.len());
    for (key, value) in annotations {
        if !matches!(value, Value::String(_) | Value::Bool(_) | Value::Number(_)) {
            continue;
        }
        // Attribute keys are unique: an annotation never replaces an attribute set above.
        if out.iter().any(|a| a.key == *key) {
            continue;
        }
        if let Some(v) = from_json(value) {
            out.push(kv(key.as_str(), v));
            keys.push(key.clone());
        }
    }
    if !keys.is_empty() {
        out.push(kv(ANNOTATIONS, strings(keys)));
    }
}

/// The stack of an exception in the form the translation renders and parses: a first line
/// `type: message`, then one `\tat label(path:line)` line per frame.
pub(crate) fn render_stack(x: &Exception) -> String {
    let mut s = format!(
        "{}: {}",
        x.kind.as_deref().unwrap_or_default(),
        x.message.as_deref().unwrap_or_default()
    );
    for f in &x.stack {
        s.push_str("\n\tat ");
        s.push_str(f.label.as_deref().unwrap_or_default());
        s.push('(');
        s.push_str(f.path.as_deref().unwrap_or_default());
        if let Some(line) = f.line {
            s.push(':');
            s.push_str(&line.to_string());
        }
        s.push(')');
    }
    s
}

fn exception_event(x: &Exception, time: u64) -> span::Event {
    let mut attributes = vec![kv(EXCEPTION_ID, string(x.id.to_string()))];
    if let Some(t) = &x.kind {
        attributes.push(kv(EXCEPTION_TYPE, string(t.as_str())));
    }
    if let Some(m) = &x.message {
        attributes.push(kv(EXCEPTION_MESSAGE, string(m.as_str())));
    }
    if !x.stack.is_empty() {
        attributes.push(kv(EXCEPTION_STACKTRACE, string(render_stack(x))));
    }
    if x.remote {
        attributes.push(kv(EXCEPTION_REMOTE, boolean(true)));
    }
    if let Some(n) = x.truncated {
        attributes.push(kv(EXCEPTION_TRUNCATED, int(i64::from(n))));
    }
    if let Some(n) = x.skipped {
        attributes.push(kv(EXCEPTION_SKIPPED, int(i64::from(n))));
    }
    if let Some(c) = x.cause {
        attributes.push(kv(EXCEPTION_CAUSE, string(c.to_string())));
    }
    span::Event {
        time_unix_nano: time,
        name: EXCEPTION_EVENT.into(),
        attributes,
        dropped_attributes_count: 0,
    }
}

/// The resource attributes of a segment: `service.name`, its `service` block, the SDK, the
/// plugin blocks and the origin.
fn resource_of(doc: &Document, service_name: Option<&str>) -> Vec<KeyValue> {
    let decoration = doc.decoration.as_deref();
    let service = doc
        .service
        .as_ref()
        .or_else(|| decoration.and_then(|d| d.service.as_ref()));
    let origin = doc
        .origin
        .as_ref()
        .or_else(|| decoration.and_then(|d| d.origin.as_ref()));
    let aws_block = |key: &str| {
        doc.aws
            .get(key)
            .or_else(|| decoration.and_then(|d| d.aws.get(key)))
    };
    let mut out = vec![kv(SERVICE_NAME, string(service_name.unwrap_or(&doc.name)))];
    if let Some(service) = service {
        for (k, v) in service {
            let key = match k.as_str() {
                "version" => SERVICE_VERSION.to_string(),
                "runtime" => RUNTIME_NAME.to_string(),
                "runtime_version" => RUNTIME_VERSION.to_string(),
                other => format!("{SERVICE_PREFIX}{other}"),
            };
            if let Some(v) = from_json(v) {
                out.push(kv(key, v));
            }
        }
    }
    if let Some(xray) = aws_block("xray").and_then(Value::as_object) {
        if let Some(sdk) = xray.get("sdk").and_then(Value::as_str) {
            let (name, language) = match sdk.rsplit_once(" for ") {
                Some((n, l)) => (n, l.to_ascii_lowercase()),
                None => (sdk, String::new()),
            };
            out.push(kv(SDK_NAME, string(name)));
            if !language.is_empty() {
                out.push(kv(SDK_LANGUAGE, string(language)));
            }
        }
        if let Some(v) = xray.get("sdk_version").and_then(Value::as_str) {
            out.push(kv(SDK_VERSION, string(v)));
        }
    }
    let mut cloud = false;
    for (block, key, attr) in PLUGIN_FIELDS {
        let value = aws_block(block).and_then(|b| b.get(*key));
        if let Some(v) = value.and_then(from_json) {
            if !out.iter().any(|a| a.key == *attr) {
                out.push(kv(*attr, v));
                cloud = true;
            }
        }
    }
    if let Some(origin) = origin {
        match ORIGINS.iter().find(|(o, _, _)| o == origin) {
            Some((_, platform, launch)) => {
                out.push(kv(CLOUD_PLATFORM, string(*platform)));
                if let Some(l) = launch {
                    if !out.iter().any(|a| a.key == ECS_LAUNCH_TYPE) {
                        out.push(kv(ECS_LAUNCH_TYPE, string(*l)));
                    }
                }
            }
            None => out.push(kv(ORIGIN, string(origin.as_str()))),
        }
        cloud = true;
    }
    if cloud {
        out.push(kv(CLOUD_PROVIDER, string("aws")));
    }
    out
}
