//! From OTLP spans back to segment documents, the way X-Ray reads them.
//!
//! A span becomes a segment when it is a server span or has no parent, and an independent
//! subsegment (`type: subsegment`, with `trace_id` and `parent_id`) otherwise; names, kinds,
//! HTTP, AWS and SQL attributes, annotations, metadata and exception events are read back as
//! the collector's `awsxray` exporter reads them, so spans this crate sends come back as the
//! documents they were made from, and spans from other OpenTelemetry SDKs read as X-Ray would
//! show them. Attributes nothing reads land in the `default` metadata namespace.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{span, status, Span};
use serde_json::{Map, Value};

use super::attrs::*;
use super::to_spans::{derived_flags, span_id_from_otlp, trace_id_from_otlp};
use crate::document::{
    Cause, CauseData, Document, Exception, Http, HttpRequest, HttpResponse, Sql, StackFrame,
};
use crate::time::Timestamp;

/// Why a span could not be read as a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpanError {
    /// The trace id is not 16 bytes, or all zero.
    #[error("span {name:?}: invalid trace id")]
    TraceId {
        /// The span's name (at most 100 characters).
        name: String,
    },
    /// The span id is not 8 bytes, or all zero.
    #[error("span {name:?}: invalid span id")]
    SpanId {
        /// The span's name (at most 100 characters).
        name: String,
    },
}

/// The documents of every span in an export request, one per span, in their order; spans
/// that cannot be read are returned as errors.
pub fn request_to_documents(
    request: &ExportTraceServiceRequest,
) -> Vec<Result<Document, SpanError>> {
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        let resource: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.push(span_to_document(span, resource));
            }
        }
    }
    out
}

fn short(name: &str) -> String {
    name.chars().take(100).collect()
}

fn timestamp(nanos: u64) -> Timestamp {
    Timestamp::from_micros(nanos / 1000)
}

/// Reads one span (with its resource's attributes) as a document.
pub fn span_to_document(span: &Span, resource: &[KeyValue]) -> Result<Document, SpanError> {
    let trace_id = trace_id_from_otlp(&span.trace_id).ok_or_else(|| SpanError::TraceId {
        name: short(&span.name),
    })?;
    let id = span_id_from_otlp(&span.span_id).ok_or_else(|| SpanError::SpanId {
        name: short(&span.name),
    })?;
    let parent = span_id_from_otlp(&span.parent_span_id);
    let kind = span::SpanKind::try_from(span.kind).unwrap_or(span::SpanKind::Unspecified);
    let segment = kind == span::SpanKind::Server || parent.is_none();
    let mut a = Attrs::new(&span.attributes);
    let mut r = Attrs::new(resource);

    let mut doc = Document {
        name: span.name.as_str().into(),
        id,
        trace_id: Some(trace_id),
        parent_id: parent,
        start_time: timestamp(span.start_time_unix_nano),
        ..Document::default()
    };
    if span.end_time_unix_nano == 0 {
        doc.in_progress = true;
    } else {
        doc.end_time = Some(timestamp(span.end_time_unix_nano));
    }
    a.take(IN_PROGRESS);
    if !segment {
        doc.kind = Some("subsegment".into());
    }

    // Namespace and name.
    let aws_service = a.str(AWS_SERVICE);
    let is_aws = a.str(RPC_SYSTEM) == Some(RPC_SYSTEM_AWS) || aws_service.is_some();
    a.take(RPC_SERVICE);
    let namespace = a.str(NAMESPACE);
    if segment {
        let local = a.str(LOCAL_SERVICE);
        let service = r
            .str(SERVICE_NAME)
            .filter(|s| !s.is_empty() && !s.starts_with("unknown_service"));
        if let Some(name) = local.or(service) {
            doc.name = name.into();
        }
    } else if let Some(ns) = namespace {
        doc.namespace = Some(ns.to_string());
    } else if is_aws
        && matches!(
            kind,
            span::SpanKind::Client | span::SpanKind::Producer | span::SpanKind::Consumer
        )
    {
        doc.namespace = Some("aws".into());
        if let Some(s) = aws_service {
            doc.name = s.into();
        }
    } else if matches!(
        kind,
        span::SpanKind::Client | span::SpanKind::Producer | span::SpanKind::Consumer
    ) {
        doc.namespace = Some("remote".into());
    }

    read_http(&mut a, &mut doc.http);
    read_aws(&mut a, &mut doc.aws);
    doc.sql = read_sql(&mut a);
    doc.user = a.str(ENDUSER).map(str::to_string);
    if let Some(ids) = a.strings(PRECURSOR_IDS) {
        doc.precursor_ids = ids.iter().filter_map(|s| s.parse().ok()).collect();
    }
    for (key, value) in a.take_prefixed(METADATA_PREFIX) {
        let ns = &key[METADATA_PREFIX.len()..];
        let parsed = match &value.value {
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                serde_json::from_str::<Value>(s).ok()
            }
            _ => None,
        };
        match parsed {
            Some(v) if !ns.is_empty() => {
                doc.metadata.insert(ns.to_string(), v);
            }
            _ => default_metadata(&mut doc.metadata, key, to_json(value)),
        }
    }
    if let Some(keys) = a.strings(ANNOTATIONS) {
        for key in keys {
            if let Some(v) = a.take(key) {
                let v = to_json(v);
                if matches!(v, Value::String(_) | Value::Bool(_) | Value::Number(_)) {
                    doc.annotations.insert(key.to_string(), v);
                }
            }
        }
    }

    // Flags and cause.
    let error_status = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == status::StatusCode::Error as i32);
    let code = doc.http.response.as_ref().and_then(|r| r.status);
    (doc.fault, doc.error, doc.throttle) = derived_flags(code, error_status);
    if let Some(f) = a.bool(FAULT) {
        doc.fault = f;
    }
    if let Some(e) = a.bool(ERROR) {
        doc.error = e;
    }
    if let Some(t) = a.bool(THROTTLE) {
        doc.throttle = t;
    }
    let remote = matches!(kind, span::SpanKind::Client | span::SpanKind::Producer);
    let mut data = CauseData {
        working_directory: a.str(CAUSE_WORKING_DIRECTORY).map(str::to_string),
        paths: a
            .strings(CAUSE_PATHS)
            .unwrap_or_default()
            .into_iter()
            .map(str::to_string)
            .collect(),
        exceptions: Vec::new(),
    };
    for event in span.events.iter().filter(|e| e.name == EXCEPTION_EVENT) {
        data.exceptions
            .push(read_exception(&event.attributes, remote));
    }
    let status_message = span
        .status
        .as_ref()
        .filter(|_| error_status)
        .map(|s| s.message.as_str())
        .unwrap_or_default();
    if !data.exceptions.is_empty() || data.working_directory.is_some() || !data.paths.is_empty() {
        doc.cause = Some(Cause::Exceptions(data));
    } else if !status_message.is_empty() {
        doc.cause = Some(
            if status_message.len() == 16 && status_message.bytes().all(|b| b.is_ascii_hexdigit()) {
                Cause::Reference(status_message.to_string())
            } else {
                Cause::Exceptions(CauseData {
                    exceptions: vec![Exception {
                        message: Some(status_message.to_string()),
                        ..Exception::default()
                    }],
                    ..CauseData::default()
                })
            },
        );
    }

    // Whatever nothing read goes to metadata, as the translation does.
    for (key, value) in a.unused() {
        default_metadata(&mut doc.metadata, key, to_json(value));
    }
    if segment {
        read_resource(&mut r, &mut doc);
    }
    Ok(doc)
}

fn default_metadata(metadata: &mut Map<String, Value>, key: &str, value: Value) {
    let entry = metadata
        .entry("default")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = entry {
        m.insert(key.to_string(), value);
    }
}

fn read_http(a: &mut Attrs<'_>, http: &mut Http) {
    let method = a.first_str(&[HTTP_METHOD, LEGACY_HTTP_METHOD]);
    let url = a.first_str(&[URL_FULL, LEGACY_URL]);
    let user_agent = a.first_str(&[USER_AGENT, LEGACY_USER_AGENT]);
    let client = a.first_str(&[CLIENT_ADDRESS, LEGACY_CLIENT_IP]);
    let peer = a.first_str(&[PEER_ADDRESS, LEGACY_PEER_IP]);
    let traced = a.bool(HTTP_TRACED).unwrap_or(false);
    let client_ip = client.or(peer);
    if method.is_some() || url.is_some() || user_agent.is_some() || client_ip.is_some() || traced {
        http.request = Some(HttpRequest {
            method: method.map(Into::into),
            url: url.map(str::to_string),
            user_agent: user_agent.map(str::to_string),
            client_ip: client_ip.map(Into::into),
            x_forwarded_for: client.is_some() && peer.is_none(),
            traced,
        });
    }
    let status = a
        .int(HTTP_STATUS)
        .or_else(|| a.int(LEGACY_HTTP_STATUS))
        .and_then(|s| u16::try_from(s).ok());
    let length = a.int(HTTP_BODY_SIZE).and_then(|n| u64::try_from(n).ok());
    if status.is_some() || length.is_some() {
        http.response = Some(HttpResponse {
            status,
            content_length: length,
        });
    }
}

fn read_aws(a: &mut Attrs<'_>, aws: &mut Map<String, Value>) {
    if let Some(op) = a.str(AWS_OPERATION).or_else(|| a.str(RPC_METHOD)) {
        aws.insert("operation".into(), Value::String(op.to_string()));
        a.take(RPC_METHOD);
    }
    for (key, attr) in AWS_FIELDS {
        if let Some(v) = a.take(attr) {
            aws.insert((*key).into(), to_json(v));
        }
    }
    if let Some(n) = a.int(AWS_RETRIES) {
        aws.insert("retries".into(), Value::from(n));
    }
    if let Some(v) = a.take(AWS_TABLE_NAMES) {
        aws.insert("table_names".into(), to_json(v));
    }
    // Other `aws.<key>` attributes (one level, not the translation's own) are `aws` keys.
    let others: Vec<(String, Value)> = a
        .unused()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("aws.")?;
            (!rest.contains('.') && !AWS_RESERVED.contains(&rest))
                .then(|| (rest.to_string(), to_json(v)))
        })
        .collect();
    for (k, v) in others {
        a.take(&format!("aws.{k}"));
        aws.insert(k, v);
    }
}

fn read_sql(a: &mut Attrs<'_>) -> Option<Sql> {
    let system = a.first_str(&[DB_SYSTEM, DB_SYSTEM_NAME]);
    let name = a.first_str(&[DB_NAME, DB_NAMESPACE]);
    let conn = a.str(DB_CONNECTION_STRING);
    let url = a
        .str(SQL_URL)
        .map(str::to_string)
        .or_else(|| match (conn, name) {
            (Some(c), Some(n)) => Some(format!("{c}/{n}")),
            _ => None,
        });
    let database_type = a.str(SQL_DATABASE_TYPE).or(system);
    let sql = Sql {
        url,
        sanitized_query: a
            .first_str(&[DB_STATEMENT, DB_QUERY_TEXT])
            .map(str::to_string),
        database_type: database_type.map(str::to_string),
        database_version: a.str(SQL_DATABASE_VERSION).map(str::to_string),
        driver_version: a.str(SQL_DRIVER_VERSION).map(str::to_string),
        user: a.str(DB_USER).map(str::to_string),
        preparation: a.str(SQL_PREPARATION).map(str::to_string),
    };
    (sql != Sql::default()).then_some(sql)
}

/// Reads `\tat label(path:line)` lines back into frames.
pub(crate) fn parse_stack(text: &str) -> Vec<StackFrame> {
    text.lines()
        .filter_map(|line| line.strip_prefix("\tat "))
        .take(1024)
        .map(|frame| {
            let (label, place) = match (frame.rfind('('), frame.ends_with(')')) {
                (Some(open), true) => (&frame[..open], &frame[open + 1..frame.len() - 1]),
                _ => (frame, ""),
            };
            let (path, line) = match place.rsplit_once(':') {
                Some((p, l))
                    if !l.trim().is_empty() && l.trim().bytes().all(|b| b.is_ascii_digit()) =>
                {
                    (p, l.trim().parse().ok())
                }
                _ => (place, None),
            };
            let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
            StackFrame::new(some(path), line, some(label))
        })
        .collect()
}

fn read_exception(attributes: &[KeyValue], span_remote: bool) -> Exception {
    let mut a = Attrs::new(attributes);
    let id = a
        .str(EXCEPTION_ID)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    Exception {
        id,
        message: a.str(EXCEPTION_MESSAGE).map(str::to_string),
        kind: a.str(EXCEPTION_TYPE).map(str::to_string),
        remote: a
            .bool(EXCEPTION_REMOTE)
            .unwrap_or(span_remote && !a.has(EXCEPTION_ID)),
        truncated: a
            .int(EXCEPTION_TRUNCATED)
            .and_then(|n| u32::try_from(n).ok()),
        skipped: a.int(EXCEPTION_SKIPPED).and_then(|n| u32::try_from(n).ok()),
        cause: a.str(EXCEPTION_CAUSE).and_then(|s| s.parse().ok()),
        stack: a
            .str(EXCEPTION_STACKTRACE)
            .map(parse_stack)
            .unwrap_or_default(),
    }
}

fn read_resource(r: &mut Attrs<'_>, doc: &mut Document) {
    let mut service = Map::new();
    for (attr, key) in [
        (SERVICE_VERSION, "version"),
        (RUNTIME_NAME, "runtime"),
        (RUNTIME_VERSION, "runtime_version"),
    ] {
        if let Some(v) = r.take(attr) {
            service.insert(key.into(), to_json(v));
        }
    }
    for (key, value) in r.take_prefixed(SERVICE_PREFIX) {
        service.insert(key[SERVICE_PREFIX.len()..].to_string(), to_json(value));
    }
    if !service.is_empty() {
        doc.service = Some(service);
    }
    let mut xray = Map::new();
    if let Some(name) = r.str(SDK_NAME) {
        let sdk = match r.str(SDK_LANGUAGE) {
            Some(lang) if !lang.is_empty() => {
                let mut chars = lang.chars();
                let first = chars.next().map(|c| c.to_uppercase().to_string());
                format!("{name} for {}{}", first.unwrap_or_default(), chars.as_str())
            }
            _ => name.to_string(),
        };
        xray.insert("sdk".into(), Value::String(sdk));
    }
    if let Some(v) = r.str(SDK_VERSION) {
        xray.insert("sdk_version".into(), Value::String(v.to_string()));
    }
    if !xray.is_empty() {
        doc.aws.insert("xray".into(), Value::Object(xray));
    }
    let platform = r.str(CLOUD_PLATFORM);
    let launch = r.str(ECS_LAUNCH_TYPE);
    for (block, key, attr) in PLUGIN_FIELDS {
        if *attr == ECS_LAUNCH_TYPE && launch.is_some() && !r.has("container.id") {
            continue;
        }
        let owner_platform = match *block {
            "ec2" => "aws_ec2",
            "ecs" => "aws_ecs",
            "eks" => "aws_eks",
            _ => "aws_elastic_beanstalk",
        };
        // Keys shared by several blocks (`container.id`, the zone) go to the platform's block.
        let shared = PLUGIN_FIELDS.iter().filter(|(_, _, a)| a == attr).count() > 1;
        if shared && platform.is_some_and(|p| p != owner_platform) {
            continue;
        }
        if let Some(v) = r.take(attr) {
            let entry = doc
                .aws
                .entry(*block)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert((*key).into(), to_json(v));
            }
        }
    }
    r.take(CLOUD_PROVIDER);
    doc.origin = match r.str(ORIGIN) {
        Some(o) => Some(o.to_string()),
        None => platform.and_then(|p| {
            ORIGINS
                .iter()
                .find(|(_, plat, l)| {
                    *plat == p
                        && match (l, launch) {
                            (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
                            (Some(_), None) => false,
                            (None, _) => true,
                        }
                })
                .map(|(o, _, _)| (*o).to_string())
        }),
    };
    r.take(SERVICE_NAME);
    for (key, value) in r.unused() {
        default_metadata(
            &mut doc.metadata,
            &format!("otel.resource.{key}"),
            to_json(value),
        );
    }
}
