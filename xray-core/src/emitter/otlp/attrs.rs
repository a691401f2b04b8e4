//! Attribute names and the small helpers that build and read OTLP attribute values.
//!
//! The names are those of the OpenTelemetry semantic conventions that AWS's own X-Ray ⇄
//! OpenTelemetry translation (the collector's `awsxray` exporter and receiver) reads and
//! writes; the `aws.xray.*` ones carry what the conventions have no name for, so that a
//! document survives the trip to spans and back.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use serde_json::Value;

// HTTP (stable semantic conventions, read by every version of the collector's exporter).
pub(crate) const HTTP_METHOD: &str = "http.request.method";
pub(crate) const URL_FULL: &str = "url.full";
pub(crate) const USER_AGENT: &str = "user_agent.original";
pub(crate) const CLIENT_ADDRESS: &str = "client.address";
pub(crate) const PEER_ADDRESS: &str = "network.peer.address";
pub(crate) const HTTP_STATUS: &str = "http.response.status_code";
pub(crate) const HTTP_BODY_SIZE: &str = "http.response.body.size";
pub(crate) const HTTP_TRACED: &str = "aws.xray.http.traced";
// Legacy names, only read (spans from other SDKs).
pub(crate) const LEGACY_HTTP_METHOD: &str = "http.method";
pub(crate) const LEGACY_URL: &str = "http.url";
pub(crate) const LEGACY_USER_AGENT: &str = "http.user_agent";
pub(crate) const LEGACY_CLIENT_IP: &str = "http.client_ip";
pub(crate) const LEGACY_PEER_IP: &str = "net.peer.ip";
pub(crate) const LEGACY_HTTP_STATUS: &str = "http.status_code";

// AWS calls.
pub(crate) const RPC_SYSTEM: &str = "rpc.system";
pub(crate) const RPC_SYSTEM_AWS: &str = "aws-api";
pub(crate) const RPC_SERVICE: &str = "rpc.service";
pub(crate) const RPC_METHOD: &str = "rpc.method";
pub(crate) const AWS_SERVICE: &str = "aws.service";
pub(crate) const AWS_OPERATION: &str = "aws.operation";
pub(crate) const AWS_RETRIES: &str = "aws.xray.retries";
pub(crate) const AWS_TABLE_NAMES: &str = "aws.dynamodb.table_names";
/// `aws` block keys with a name of their own: (key in the block, attribute).
pub(crate) const AWS_FIELDS: &[(&str, &str)] = &[
    ("region", "aws.region"),
    ("request_id", "aws.request_id"),
    ("account_id", "aws.account_id"),
    ("queue_url", "aws.queue_url"),
    ("table_name", "aws.table_name"),
];
/// `aws.<name>` attributes that are not `aws` block keys.
pub(crate) const AWS_RESERVED: &[&str] = &[
    "service",
    "operation",
    "span.kind",
    "log.group.arns",
    "log.group.names",
    "requestId",
];

// SQL (the names the collector's exporter reads).
pub(crate) const DB_SYSTEM: &str = "db.system";
pub(crate) const DB_NAME: &str = "db.name";
pub(crate) const DB_STATEMENT: &str = "db.statement";
pub(crate) const DB_USER: &str = "db.user";
pub(crate) const DB_CONNECTION_STRING: &str = "db.connection_string";
pub(crate) const DB_SYSTEM_NAME: &str = "db.system.name";
pub(crate) const DB_NAMESPACE: &str = "db.namespace";
pub(crate) const DB_QUERY_TEXT: &str = "db.query.text";
pub(crate) const SQL_URL: &str = "aws.xray.sql.url";
pub(crate) const SQL_DATABASE_TYPE: &str = "aws.xray.sql.database_type";
pub(crate) const SQL_DATABASE_VERSION: &str = "aws.xray.sql.database_version";
pub(crate) const SQL_DRIVER_VERSION: &str = "aws.xray.sql.driver_version";
pub(crate) const SQL_PREPARATION: &str = "aws.xray.sql.preparation";

// Entity fields.
pub(crate) const ENDUSER: &str = "enduser.id";
pub(crate) const ANNOTATIONS: &str = "aws.xray.annotations";
pub(crate) const METADATA_PREFIX: &str = "aws.xray.metadata.";
pub(crate) const FAULT: &str = "aws.xray.fault";
pub(crate) const ERROR: &str = "aws.xray.error";
pub(crate) const THROTTLE: &str = "aws.xray.throttle";
pub(crate) const CAUSE_WORKING_DIRECTORY: &str = "aws.xray.cause.working_directory";
pub(crate) const CAUSE_PATHS: &str = "aws.xray.cause.paths";
pub(crate) const NAMESPACE: &str = "aws.xray.namespace";
pub(crate) const PRECURSOR_IDS: &str = "aws.xray.precursor_ids";
pub(crate) const IN_PROGRESS: &str = "aws.xray.inprogress";
pub(crate) const LOCAL_SERVICE: &str = "aws.local.service";

// Exception events.
pub(crate) const EXCEPTION_EVENT: &str = "exception";
pub(crate) const EXCEPTION_TYPE: &str = "exception.type";
pub(crate) const EXCEPTION_MESSAGE: &str = "exception.message";
pub(crate) const EXCEPTION_STACKTRACE: &str = "exception.stacktrace";
pub(crate) const EXCEPTION_ID: &str = "aws.xray.exception.id";
pub(crate) const EXCEPTION_REMOTE: &str = "aws.xray.exception.remote";
pub(crate) const EXCEPTION_TRUNCATED: &str = "aws.xray.exception.truncated";
pub(crate) const EXCEPTION_SKIPPED: &str = "aws.xray.exception.skipped";
pub(crate) const EXCEPTION_CAUSE: &str = "aws.xray.exception.cause";

// Resource.
pub(crate) const SERVICE_NAME: &str = "service.name";
pub(crate) const SERVICE_VERSION: &str = "service.version";
pub(crate) const RUNTIME_NAME: &str = "process.runtime.name";
pub(crate) const RUNTIME_VERSION: &str = "process.runtime.version";
pub(crate) const SERVICE_PREFIX: &str = "aws.xray.service.";
pub(crate) const SDK_NAME: &str = "telemetry.sdk.name";
pub(crate) const SDK_LANGUAGE: &str = "telemetry.sdk.language";
pub(crate) const SDK_VERSION: &str = "telemetry.sdk.version";
pub(crate) const CLOUD_PROVIDER: &str = "cloud.provider";
pub(crate) const CLOUD_PLATFORM: &str = "cloud.platform";
pub(crate) const ECS_LAUNCH_TYPE: &str = "aws.ecs.launchtype";
pub(crate) const ORIGIN: &str = "aws.xray.origin";
/// Plugin blocks of a segment's `aws` field: (block, key in the block, resource attribute).
pub(crate) const PLUGIN_FIELDS: &[(&str, &str, &str)] = &[
    ("ec2", "instance_id", "host.id"),
    ("ec2", "availability_zone", "cloud.availability_zone"),
    ("ec2", "instance_size", "host.type"),
    ("ec2", "ami_id", "host.image.id"),
    ("ecs", "container", "container.name"),
    ("ecs", "container_id", "container.id"),
    ("ecs", "container_arn", "aws.ecs.container.arn"),
    ("ecs", "cluster_arn", "aws.ecs.cluster.arn"),
    ("ecs", "task_arn", "aws.ecs.task.arn"),
    ("ecs", "task_family", "aws.ecs.task.family"),
    ("ecs", "launch_type", "aws.ecs.launchtype"),
    ("ecs", "availability_zone", "cloud.availability_zone"),
    ("eks", "cluster_name", "k8s.cluster.name"),
    ("eks", "pod", "k8s.pod.name"),
    ("eks", "container_id", "container.id"),
    ("elastic_beanstalk", "environment_name", "service.namespace"),
    (
        "elastic_beanstalk",
        "version_label",
        "aws.elastic_beanstalk.version_label",
    ),
    ("elastic_beanstalk", "deployment_id", "service.instance.id"),
];
/// `origin` values and the `cloud.platform` (and ECS launch type) that stand for them.
pub(crate) const ORIGINS: &[(&str, &str, Option<&str>)] = &[
    ("AWS::EC2::Instance", "aws_ec2", None),
    ("AWS::ECS::EC2", "aws_ecs", Some("ec2")),
    ("AWS::ECS::Fargate", "aws_ecs", Some("fargate")),
    ("AWS::ECS::Container", "aws_ecs", None),
    ("AWS::EKS::Container", "aws_eks", None),
    (
        "AWS::ElasticBeanstalk::Environment",
        "aws_elastic_beanstalk",
        None,
    ),
    ("AWS::AppRunner::Service", "aws_app_runner", None),
    ("AWS::Lambda::Function", "aws_lambda", None),
];

pub(crate) fn string(s: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

pub(crate) fn int(i: i64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(i)),
    }
}

pub(crate) fn boolean(b: bool) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::BoolValue(b)),
    }
}

pub(crate) fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::ArrayValue(ArrayValue {
            values: items.into_iter().map(string).collect(),
        })),
    }
}

pub(crate) fn kv(key: impl Into<String>, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
    }
}

/// A JSON scalar or array of scalars as an attribute value; objects (and arrays holding
/// them) as their JSON text. `None` for null.
pub(crate) fn from_json(v: &Value) -> Option<AnyValue> {
    let value = match v {
        Value::Null => return None,
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64()?),
        },
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Array(items)
            if items
                .iter()
                .all(|i| matches!(i, Value::Bool(_) | Value::Number(_) | Value::String(_))) =>
        {
            any_value::Value::ArrayValue(ArrayValue {
                values: items.iter().filter_map(from_json).collect(),
            })
        }
        other => any_value::Value::StringValue(other.to_string()),
    };
    Some(AnyValue { value: Some(value) })
}

/// An attribute value as JSON (byte strings as arrays of numbers; non-finite doubles as null).
/// Nesting is bounded: values deeper than 32 levels become null.
pub(crate) fn to_json(v: &AnyValue) -> Value {
    to_json_depth(v, 0)
}

fn to_json_depth(v: &AnyValue, depth: usize) -> Value {
    if depth > 32 {
        return Value::Null;
    }
    match &v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        Some(any_value::Value::ArrayValue(a)) => Value::Array(
            a.values
                .iter()
                .map(|v| to_json_depth(v, depth + 1))
                .collect(),
        ),
        Some(any_value::Value::KvlistValue(l)) => Value::Object(
            l.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value
                            .as_ref()
                            .map_or(Value::Null, |v| to_json_depth(v, depth + 1)),
                    )
                })
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => {
            Value::Array(b.iter().map(|x| Value::from(*x)).collect())
        }
    }
}

/// Attributes by key, for reading; the first of duplicate keys wins. Lookups go through a
/// hash map, so a span with very many attributes costs linear time.
#[derive(Debug)]
pub(crate) struct Attrs<'a> {
    items: Vec<(&'a str, &'a AnyValue, bool)>,
    index: std::collections::HashMap<&'a str, usize>,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(list: &'a [KeyValue]) -> Self {
        let mut items: Vec<(&str, &AnyValue, bool)> = Vec::with_capacity(list.len());
        let mut index = std::collections::HashMap::with_capacity(list.len());
        for kv in list {
            if let Some(v) = &kv.value {
                if let std::collections::hash_map::Entry::Vacant(e) = index.entry(kv.key.as_str()) {
                    e.insert(items.len());
                    items.push((kv.key.as_str(), v, false));
                }
            }
        }
        Self { items, index }
    }

    fn find(&mut self, key: &str) -> Option<&'a AnyValue> {
        let i = *self.index.get(key)?;
        let e = &mut self.items[i];
        e.2 = true;
        Some(e.1)
    }

    /// The value of `key`, marked as used.
    pub(crate) fn take(&mut self, key: &str) -> Option<&'a AnyValue> {
        self.find(key)
    }

    /// A string value, marked as used (other types are not strings).
    pub(crate) fn str(&mut self, key: &str) -> Option<&'a str> {
        match &self.find(key)?.value {
            Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The first of `keys` holding a string.
    pub(crate) fn first_str(&mut self, keys: &[&str]) -> Option<&'a str> {
        let mut found = None;
        for k in keys {
            let v = self.str(k);
            if found.is_none() {
                found = v;
            }
        }
        found
    }

    /// An integer (or an integral double, or a decimal string), marked as used.
    pub(crate) fn int(&mut self, key: &str) -> Option<i64> {
        match &self.find(key)?.value {
            Some(any_value::Value::IntValue(i)) => Some(*i),
            Some(any_value::Value::DoubleValue(d)) if d.fract() == 0.0 && d.abs() < 9.0e15 => {
                Some(*d as i64)
            }
            Some(any_value::Value::StringValue(s)) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A boolean, marked as used.
    pub(crate) fn bool(&mut self, key: &str) -> Option<bool> {
        match &self.find(key)?.value {
            Some(any_value::Value::BoolValue(b)) => Some(*b),
            _ => None,
        }
    }

    /// A list of strings (a single string counts as a list of one), marked as used.
    pub(crate) fn strings(&mut self, key: &str) -> Option<Vec<&'a str>> {
        match &self.find(key)?.value {
            Some(any_value::Value::ArrayValue(a)) => Some(
                a.values
                    .iter()
                    .filter_map(|v| match &v.value {
                        Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect(),
            ),
            Some(any_value::Value::StringValue(s)) => Some(vec![s.as_str()]),
            _ => None,
        }
    }

    /// Whether `key` is present (not marking it).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Keys starting with `prefix`, with their values, marked as used.
    pub(crate) fn take_prefixed(&mut self, prefix: &str) -> Vec<(&'a str, &'a AnyValue)> {
        let mut out = Vec::new();
        for e in &mut self.items {
            if e.0.starts_with(prefix) && !e.2 {
                e.2 = true;
                out.push((e.0, e.1));
            }
        }
        out
    }

    /// The attributes nobody used, in their order.
    pub(crate) fn unused(&self) -> impl Iterator<Item = (&'a str, &'a AnyValue)> + '_ {
        self.items
            .iter()
            .filter(|(_, _, used)| !used)
            .map(|(k, v, _)| (*k, *v))
    }
}
