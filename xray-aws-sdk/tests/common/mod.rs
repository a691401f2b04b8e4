//! Shared test helpers: the moto endpoint, SDK configs with static credentials, a spy
//! interceptor that sees the raw wire headers, and running code inside a recorded segment.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use xray_core::{context, Document, Entity, Recorder};
use xray_local::Collector;

pub const REGION: &str = "us-east-1";

/// moto's endpoint, or `None` (after a loud message) when the tests should be skipped.
pub fn moto_endpoint() -> Option<String> {
    match std::env::var("XRAY_TEST_MOTO_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().trim_end_matches('/').to_string()),
        _ => {
            if std::env::var("XRAY_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!(
                    "XRAY_TEST_MOTO_ENDPOINT is not set and XRAY_REQUIRE_PEERS=1: \
                     start moto_server and export its URL (scripts/test does both)"
                );
            }
            eprintln!(
                "\n*** skipped: set XRAY_TEST_MOTO_ENDPOINT (scripts/test starts moto) ***\n"
            );
            None
        }
    }
}

/// A name no other test (or earlier run against the same moto) uses. Lower case, for S3.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A shared SDK config: static test credentials, `us-east-1`, the given endpoint.
pub fn sdk_config(endpoint: &str) -> aws_types::SdkConfig {
    aws_types::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test"),
        ))
        .endpoint_url(endpoint)
        .build()
}

/// What the spy saw on the wire for one attempt.
#[derive(Clone, Debug, Default)]
pub struct Exchange {
    pub trace_header: Option<String>,
    pub status: Option<u16>,
    pub amzn_request_id: Option<String>,
    pub amz_request_id: Option<String>,
    pub id_2: Option<String>,
    pub content_length: Option<String>,
}

impl Exchange {
    /// The request id the service sent, in the order the SDK reads them.
    pub fn request_id(&self) -> Option<&str> {
        self.amzn_request_id
            .as_deref()
            .or(self.amz_request_id.as_deref())
    }
}

/// Records the trace header as sent and the raw response headers, per attempt. Register it
/// after the X-Ray interceptor so that it sees the final request.
#[derive(Clone, Debug, Default)]
pub struct Spy {
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl Spy {
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }

    pub fn last(&self) -> Exchange {
        self.exchanges()
            .last()
            .cloned()
            .expect("a request was sent")
    }

    pub fn clear(&self) {
        self.exchanges.lock().unwrap().clear();
    }
}

impl Intercept for Spy {
    fn name(&self) -> &'static str {
        "Spy"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let trace_header = ctx
            .request()
            .headers()
            .get("x-amzn-trace-id")
            .map(str::to_string);
        self.exchanges.lock().unwrap().push(Exchange {
            trace_header,
            ..Exchange::default()
        });
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let r = ctx.response();
        let h = |name: &str| r.headers().get(name).map(str::to_string);
        let mut all = self.exchanges.lock().unwrap();
        if let Some(last) = all.last_mut() {
            last.status = Some(r.status().as_u16());
            last.amzn_request_id = h("x-amzn-requestid");
            last.amz_request_id = h("x-amz-request-id");
            last.id_2 = h("x-amz-id-2");
            last.content_length = h("content-length");
        }
        Ok(())
    }
}

/// A collector and a recorder that sends to it over real UDP.
pub struct Traced {
    pub collector: Collector,
    pub recorder: Recorder,
}

impl Traced {
    pub fn new() -> Self {
        let collector = Collector::start().expect("collector starts");
        let recorder = collector.recorder("aws-sdk-tests");
        Self {
            collector,
            recorder,
        }
    }

    /// Runs `fut` with a new segment as the current entity, ends the segment and returns the
    /// segment document as received over UDP, with the future's output.
    pub async fn run<F: Future>(&self, fut: F) -> (Document, F::Output) {
        let segment = self.recorder.begin_segment("aws-sdk-tests", None);
        let out = context::scope(segment.clone(), fut).await;
        segment.end();
        (self.received(&segment), out)
    }

    /// The document of `entity` once it arrived.
    pub fn received(&self, entity: &Entity) -> Document {
        let id = entity.id();
        let docs = self.collector.wait_until(Duration::from_secs(5), |docs| {
            docs.iter().any(|d| d.id == id)
        });
        docs.into_iter()
            .find(|d| d.id == id)
            .expect("the segment arrived at the collector")
    }
}

/// The `aws` field `key` of a document, as a string.
pub fn aws_str<'a>(doc: &'a Document, key: &str) -> Option<&'a str> {
    doc.aws.get(key).and_then(|v| v.as_str())
}

/// Checks what every AWS subsegment carries.
pub fn assert_aws_subsegment(sub: &Document, service: &str, operation: &str, wire: &Exchange) {
    assert_eq!(sub.name, service);
    assert_eq!(sub.namespace.as_deref(), Some("aws"));
    assert_eq!(aws_str(sub, "operation"), Some(operation), "{sub:?}");
    assert_eq!(aws_str(sub, "region"), Some(REGION));
    assert_eq!(sub.aws.get("retries"), Some(&serde_json::json!(0)));
    let expected_id = wire.request_id().expect("moto sent a request id");
    assert_eq!(aws_str(sub, "request_id"), Some(expected_id));
    let response = sub.http.response.as_ref().expect("http.response");
    assert_eq!(response.status, wire.status);
    if let Some(len) = &wire.content_length {
        assert_eq!(response.content_length, len.parse::<u64>().ok());
    }
    assert!(sub.end_time.is_some() && !sub.in_progress);
    assert!(sub.end_time >= Some(sub.start_time));
}

/// Asserts that `text` appears nowhere in the document as sent.
pub fn assert_not_recorded(doc: &Document, text: &str) {
    let json = doc.to_json();
    assert!(
        !json.contains(text),
        "{text:?} must not be recorded, found in {json}"
    );
}
