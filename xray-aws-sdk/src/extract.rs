//! Reading the fields of the capture table from serialized requests and responses.
//!
//! Works at the protocol level, so that no service crate is needed: JSON bodies (awsJson and
//! restJson), form bodies (awsQuery requests), XML bodies (restXml and awsQuery responses,
//! scalar members only), headers, the query string and the URL path.

use aws_smithy_runtime_api::http::Headers;
use serde_json::{Map, Value};

use crate::params::{Field, Source};

/// Bodies larger than this are not parsed: parameters that live in the body are then left
/// out, with a debug log. Keeps the cost of tracing bounded for large batch writes.
pub(crate) const MAX_PARSED_BODY: usize = 1024 * 1024;

/// A parsed body, as far as the capture table needs it.
#[derive(Debug)]
pub(crate) enum Body<'a> {
    /// Not parsed (streaming, too large, not needed or not understood).
    None,
    Json(Map<String, Value>),
    Form(&'a str),
    Xml(&'a str),
}

impl<'a> Body<'a> {
    /// Parses `bytes`: JSON or XML by their first byte, form fields by the content type.
    pub(crate) fn parse(content_type: Option<&str>, bytes: Option<&'a [u8]>) -> Body<'a> {
        let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
            return Body::None;
        };
        if bytes.len() > MAX_PARSED_BODY {
            tracing::debug!(
                len = bytes.len(),
                "body too large to read AWS parameters from; skipped"
            );
            return Body::None;
        }
        // The first byte decides between JSON and XML: some servers (and test doubles) label
        // JSON as `text/html`. Form bodies are recognised by their content type only.
        let ct = content_type.unwrap_or("").to_ascii_lowercase();
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Object(m)) => Body::Json(m),
                _ => Body::None,
            },
            Some(b'<') => std::str::from_utf8(bytes).map_or(Body::None, Body::Xml),
            _ if ct.contains("x-www-form-urlencoded") => {
                std::str::from_utf8(bytes).map_or(Body::None, Body::Form)
            }
            _ => Body::None,
        }
    }

    fn member(&self, name: &str) -> Option<Value> {
        match self {
            Body::Json(m) => m.get(name).cloned(),
            Body::Form(f) => form_value(f, name).map(Value::String),
            Body::Xml(x) => xml_element(x, name).map(|t| Value::String(xml_unescape(t))),
            Body::None => None,
        }
    }

    fn member_keys(&self, name: &str) -> Option<Value> {
        match self {
            Body::Json(m) => m.get(name)?.as_object().map(|o| {
                let mut keys: Vec<Value> = o.keys().cloned().map(Value::String).collect();
                keys.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                Value::Array(keys)
            }),
            _ => None,
        }
    }

    fn member_count(&self, name: &str) -> Option<Value> {
        match self {
            Body::Json(m) => match m.get(name) {
                Some(Value::Array(a)) => Some(Value::from(a.len())),
                _ => None,
            },
            _ => None,
        }
    }
}

/// What a field can be read from.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    pub(crate) uri: Option<&'a str>,
    pub(crate) headers: &'a Headers,
    pub(crate) body: Body<'a>,
    pub(crate) status: Option<u16>,
}

impl Message<'_> {
    /// The value of one field, when present.
    pub(crate) fn read(&self, field: &Field) -> Option<Value> {
        match field.source {
            Source::Member(m) => self.body.member(m),
            Source::MemberKeys(m) => self.body.member_keys(m),
            Source::MemberCount(m) => self.body.member_count(m),
            Source::Header(h) => self.headers.get(h).map(|v| Value::from(v.to_string())),
            Source::Query(q) => {
                let uri = self.uri?;
                let query = uri.split_once('?')?.1;
                let query = query.split('#').next().unwrap_or(query);
                form_value(query, q).map(Value::String)
            }
            Source::PathAfter(segment) => {
                let mut segments = path_of(self.uri?).split('/');
                segments.find(|s| *s == segment)?;
                segments
                    .next()
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(percent_decode(s)))
            }
            Source::Bucket => s3_location(self.uri?).0.map(Value::String),
            Source::ObjectKey => s3_location(self.uri?).1.map(Value::String),
            Source::Status => self.status.map(Value::from),
        }
    }
}

/// The path of an absolute or relative URL, without query or fragment.
fn path_of(uri: &str) -> &str {
    let rest = match uri.find("://") {
        Some(i) => {
            let after = &uri[i + 3..];
            &after[after.find('/').unwrap_or(after.len())..]
        }
        None => uri,
    };
    rest.split(['?', '#']).next().unwrap_or(rest)
}

/// The S3 bucket and key of a request URL.
///
/// Virtual-hosted style (`https://my.bucket.s3.us-east-1.amazonaws.com/a/b.txt`): the bucket is
/// the host up to the `.s3` label and the key is the whole path. Otherwise path style
/// (`http://127.0.0.1:4566/bucket/a/b.txt`): the first path segment is the bucket. Custom
/// endpoints used with virtual-hosted addressing cannot be told apart from path style and are
/// read as path style.
pub(crate) fn s3_location(uri: &str) -> (Option<String>, Option<String>) {
    let host = xray_core::http::url_host(uri).unwrap_or("");
    let path = path_of(uri).trim_start_matches('/');
    let nonempty = |s: &str| (!s.is_empty()).then(|| percent_decode(s));
    let virtual_bucket = [".s3.", ".s3-", ".s3express-"]
        .iter()
        .filter_map(|label| host.find(label))
        .min()
        .map(|i| &host[..i]);
    match virtual_bucket {
        Some(bucket) => (nonempty(bucket), nonempty(path)),
        None => {
            let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
            (nonempty(bucket), nonempty(key))
        }
    }
}

/// The decoded value of `name` in a form-encoded string (`a=1&b=2`).
fn form_value(form: &str, name: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k) == name).then(|| form_decode(v))
    })
}

fn form_decode(s: &str) -> String {
    if s.contains('+') {
        percent_decode(&s.replace('+', " "))
    } else {
        percent_decode(s)
    }
}

/// Decodes `%XX` escapes; invalid escapes are kept as they are, invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The text of the first `<name>...</name>` element.
pub(crate) fn xml_element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(xml[start..start + len].trim())
}

/// Replaces the five predefined XML entities.
pub(crate) fn xml_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_s3_urls_give_bucket_then_key() {
        assert_eq!(
            s3_location("http://127.0.0.1:5000/my-bucket/dir/a%20b.txt?x-id=PutObject"),
            (Some("my-bucket".into()), Some("dir/a b.txt".into()))
        );
        assert_eq!(
            s3_location("https://s3.us-east-1.amazonaws.com/my-bucket?list-type=2"),
            (Some("my-bucket".into()), None)
        );
        assert_eq!(s3_location("https://s3.amazonaws.com/"), (None, None));
    }

    #[test]
    fn virtual_hosted_s3_urls_take_the_bucket_from_the_host() {
        assert_eq!(
            s3_location("https://my.dotted.bucket.s3.eu-west-1.amazonaws.com/k/1.txt"),
            (Some("my.dotted.bucket".into()), Some("k/1.txt".into()))
        );
        assert_eq!(
            s3_location("https://b--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com/k"),
            (Some("b--usw2-az1--x-s3".into()), Some("k".into()))
        );
    }

    #[test]
    fn form_values_are_decoded() {
        let f = "Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3At&Message=hi+there";
        assert_eq!(
            form_value(f, "TopicArn").as_deref(),
            Some("arn:aws:sns:us-east-1:1:t")
        );
        assert_eq!(form_value(f, "Message").as_deref(), Some("hi there"));
        assert_eq!(form_value(f, "Nope"), None);
    }

    #[test]
    fn bad_percent_escapes_do_not_panic() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn xml_elements_are_found_and_unescaped() {
        let x = "<Error><Code>NoSuchKey</Code><Message>a &amp; b</Message></Error>";
        assert_eq!(xml_element(x, "Code"), Some("NoSuchKey"));
        assert_eq!(xml_unescape(xml_element(x, "Message").unwrap()), "a & b");
        assert_eq!(xml_element("<Code>unterminated", "Code"), None);
    }

    #[test]
    fn json_map_keys_are_sorted_names_only() {
        let body =
            br#"{"RequestItems":{"t2":[{"PutRequest":{"Item":{"secret":{"S":"x"}}}}],"t1":[]}}"#;
        let b = Body::parse(Some("application/x-amz-json-1.0"), Some(body));
        assert_eq!(
            b.member_keys("RequestItems"),
            Some(serde_json::json!(["t1", "t2"]))
        );
        assert_eq!(b.member_count("RequestItems"), None);
    }

    #[test]
    fn bodies_over_the_limit_are_not_parsed() {
        let mut big = br#"{"TableName":"t","x":""#.to_vec();
        big.resize(MAX_PARSED_BODY + 10, b'a');
        big.extend_from_slice(br#""}"#);
        assert!(matches!(
            Body::parse(Some("application/json"), Some(&big)),
            Body::None
        ));
    }

    fn fields_of(service: &str, operation: &str, message: &Message<'_>) -> Vec<(String, Value)> {
        let row = crate::params::lookup(service, operation).unwrap();
        row.request
            .iter()
            .filter_map(|f| Some((f.name.to_string(), message.read(f)?)))
            .collect()
    }

    #[test]
    fn sns_publish_form_body_gives_the_topic_and_never_the_message() {
        let mut headers = Headers::new();
        headers.insert("content-type", "application/x-www-form-urlencoded");
        let body = b"Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aorders&Message=secret+text";
        let message = Message {
            uri: Some("https://sns.us-east-1.amazonaws.com/"),
            headers: &headers,
            body: Body::parse(headers.get("content-type"), Some(body)),
            status: None,
        };
        assert_eq!(
            fields_of("SNS", "Publish", &message),
            vec![(
                "topic_arn".to_string(),
                Value::from("arn:aws:sns:us-east-1:123456789012:orders")
            )]
        );
    }

    #[test]
    fn lambda_invoke_reads_function_from_path_and_type_from_header() {
        let mut headers = Headers::new();
        headers.insert("x-amz-invocation-type", "Event");
        let message = Message {
            uri: Some("https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Ahello/invocations?Qualifier=live"),
            headers: &headers,
            // The Invoke body is the user's payload: never parsed.
            body: Body::None,
            status: None,
        };
        assert_eq!(
            fields_of("Lambda", "Invoke", &message),
            vec![
                (
                    "function_name".to_string(),
                    Value::from("arn:aws:lambda:us-east-1:1:function:hello")
                ),
                ("invocation_type".to_string(), Value::from("Event")),
                ("qualifier".to_string(), Value::from("live")),
            ]
        );
        assert!(!crate::params::lookup("Lambda", "Invoke")
            .unwrap()
            .request_needs_body());
    }

    #[test]
    fn kinesis_put_records_gives_stream_and_count_not_data() {
        let headers = Headers::new();
        let body = br#"{"StreamName":"clicks","Records":[{"Data":"c2VjcmV0","PartitionKey":"a"},{"Data":"eA==","PartitionKey":"b"}]}"#;
        let message = Message {
            uri: Some("https://kinesis.us-east-1.amazonaws.com/"),
            headers: &headers,
            body: Body::parse(Some("application/x-amz-json-1.1"), Some(body)),
            status: None,
        };
        assert_eq!(
            fields_of("Kinesis", "PutRecords", &message),
            vec![
                ("stream_name".to_string(), Value::from("clicks")),
                ("record_count".to_string(), Value::from(2)),
            ]
        );
    }
}
