//! AWS X-Ray tracing for the AWS SDK for Rust.
//!
//! [`XRayInterceptor`] plugs into the SDK's interceptor pipeline and records each AWS call made
//! inside a traced request as a subsegment, the way the official X-Ray SDKs record boto3 and
//! aws-sdk-go calls: named after the service, `namespace: "aws"`, with the operation, region,
//! request id, retry count, status and the call's key parameters (table, queue, bucket, ...).
//! It also sends `X-Amzn-Trace-Id` to the service, so that services which continue traces
//! (Lambda, SQS, SNS, API Gateway, Step Functions) link their work to the call.
//!
//! # Registering the interceptor
//!
//! The SDK has no process-wide hook: register the interceptor on each client's config, once.
//! Every client built from a shared [`SdkConfig`] takes one line:
//!
//! ```no_run
//! use xray_aws_sdk::XRayInterceptor;
//!
//! # async fn example() {
//! let sdk_config = aws_config::load_from_env().await;
//! let dynamodb = aws_sdk_dynamodb::Client::from_conf(
//!     aws_sdk_dynamodb::config::Builder::from(&sdk_config)
//!         .interceptor(XRayInterceptor::new())
//!         .build(),
//! );
//! let s3 = aws_sdk_s3::Client::from_conf(
//!     aws_sdk_s3::config::Builder::from(&sdk_config)
//!         .interceptor(XRayInterceptor::new())
//!         .build(),
//! );
//! # let _ = (dynamodb, s3);
//! # }
//! ```
//!
//! A single operation can be traced with `customize()`:
//!
//! ```no_run
//! # async fn example(sqs: aws_sdk_sqs::Client) -> Result<(), aws_sdk_sqs::Error> {
//! sqs.send_message()
//!     .queue_url("https://sqs.us-east-1.amazonaws.com/123456789012/orders")
//!     .message_body("{}")
//!     .customize()
//!     .interceptor(xray_aws_sdk::XRayInterceptor::new())
//!     .send()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Where subsegments go
//!
//! A call is recorded under the entity that is current when it is made
//! ([`xray_core::context::current`]): inside a request handled by `xray-tower` or `xray-actix`
//! that is the request's segment, or a subsegment opened with [`xray_core::capture_async`].
//! Code that runs outside any scope can name the parent with
//! [`XRayInterceptor::parent`]. With neither, the call is sent untouched and the
//! recorder's context-missing strategy decides what is logged.
//!
//! ```
//! use xray_core::{context, emitter::MemoryEmitter, Recorder};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let emitter = MemoryEmitter::new();
//! let recorder = Recorder::builder()
//!     .sampler(xray_core::sampling::AlwaysSample)
//!     .emitter(emitter.clone())
//!     .ignore_env()
//!     .build()
//!     .unwrap();
//!
//! let segment = recorder.begin_segment("orders", None);
//! context::scope(segment.clone(), async {
//!     // DynamoDB, S3, SQS... calls made here become subsegments of `segment`.
//! })
//! .await;
//! segment.end();
//! # assert_eq!(emitter.documents().len(), 1);
//! # }
//! ```
//!
//! # When the hooks run
//!
//! | hook | what the interceptor does |
//! |---|---|
//! | `read_before_execution` | finds the parent, notes the start time |
//! | `read_before_serialization` | notes the service, operation and region |
//! | `modify_before_transmit` (every attempt) | on the first attempt, with the endpoint now known, leaves an [ignored](#ignored-calls) call alone or begins the subsegment (starting when the call was made) with `operation` and `region`, and reads the request parameters from the signed request; on every attempt of a recorded call, sets `X-Amzn-Trace-Id` |
//! | `read_after_execution` | records status, length, request id, retries, response parameters or the error, and ends the subsegment |
//!
//! Per-call state lives in the call's own `ConfigBag`, so one interceptor serves any number of
//! concurrent calls. If the call's future is dropped before it completes, the subsegment still
//! ends (dropping the bag drops the state that holds it), as cancelled. A call that fails or is
//! dropped before it is ever sent (no credentials, no endpoint) is still recorded.
//!
//! # Ignored calls
//!
//! As Python's `add_ignored`, the interceptor can leave calls alone: no subsegment and no
//! `X-Amzn-Trace-Id`. Rules match the resolved endpoint's host (without port) and the request
//! path with `*` and `?` wildcards, ignoring case; the matching lives in
//! [`xray_core::http::IgnoreRules`], shared with `xray-reqwest` and `xray-tower`:
//!
//! ```
//! use xray_aws_sdk::{IgnoreRule, XRayInterceptor};
//!
//! let interceptor = XRayInterceptor::new()
//!     .ignore_host("localhost")                       // a local DynamoDB in development
//!     .ignore(IgnoreRule::new().host("*.internal").method("GET"));
//! # drop(interceptor);
//! ```
//!
//! Calls to the recorder's daemon address (`AWS_XRAY_DAEMON_ADDRESS`, TCP or UDP), such as an
//! X-Ray client pointed at the daemon's proxy, are never recorded. The decision is made on the
//! first attempt, when the endpoint is known; that is why the subsegment begins there (a
//! subsegment, once begun, belongs to its segment and would be sent with it). A call that
//! fails before it has an endpoint is checked with what is known of it (its method and
//! path), so a host rule cannot leave it out.
//!
//! # What is recorded
//!
//! Every subsegment: `aws.operation`, `aws.region`, `aws.request_id` (`x-amzn-requestid` or
//! `x-amz-request-id`), `aws.id_2` (S3's `x-amz-id-2`), `aws.retries`, `http.response.status`
//! and `http.response.content_length`.
//!
//! Per operation, selected parameters, read from the serialized request and response (JSON
//! members, form fields, headers, query and path), never the payload:
//!
//! | service | fields |
//! |---|---|
//! | DynamoDB | `table_name`; `table_names` for `BatchGetItem`/`BatchWriteItem`; `consumed_capacity` and `item_collection_metrics` when returned; query and scan settings (`index_name`, `limit`, `select`, ...); `table_count` for `ListTables` |
//! | SQS | `queue_url`; `queue_name` (`CreateQueue`, `GetQueueUrl`); `message_id` (`SendMessage`); `message_count` (`ReceiveMessage`, `SendMessageBatch`); attribute names, never values |
//! | S3 | `bucket_name` and `key` for every operation (path-style or virtual-hosted URLs); `version_id`, `prefix`, `copy_source` where they apply |
//! | SNS | `topic_arn`; `message_id` for `Publish` |
//! | Lambda | `function_name`; `invocation_type`, `log_type`, `qualifier`, `function_error` and `status_code` for `Invoke` |
//! | Kinesis | `stream_name` / `stream_arn`; record counts for `PutRecords` |
//!
//! Item contents, message bodies and attribute values, object data and credentials are never
//! read into a document. The table is data in one place (`src/params.rs`); adding a field is
//! one line.
//!
//! # Errors
//!
//! | outcome | flags | cause |
//! |---|---|---|
//! | 4xx service error | `error` | exception `type` = AWS error code, `message`, `remote: true` |
//! | 429, or a throttling code (`ThrottlingException`, `ProvisionedThroughputExceededException`, `SlowDown`, ...) | `error`, `throttle` | same |
//! | 5xx | `fault` | same |
//! | no response (refused, DNS, timeout) | `fault` | the error and its sources |
//!
//! The SDK's result reaches the caller unchanged.
//!
//! [`SdkConfig`]: aws_types::SdkConfig
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod call;
mod error;
mod extract;
mod interceptor;
mod params;

pub use interceptor::XRayInterceptor;
pub use xray_core;
pub use xray_core::http::IgnoreRule;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
