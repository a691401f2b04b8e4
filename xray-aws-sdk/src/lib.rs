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
//! | `read_before_serialization` | begins the subsegment (service and operation are known from here on) with `operation` and `region` |
//! | `modify_before_transmit` (every attempt) | sets `X-Amzn-Trace-Id`; on the first attempt reads the request parameters from the signed request |
//! | `read_after_execution` | records status, length, request id, retries, response parameters or the error, and ends the subsegment |
//!
//! Per-call state lives in the call's own `ConfigBag`, so one interceptor serves any number of
//! concurrent calls. If the call's future is dropped before it completes, the subsegment still
//! ends (dropping the bag drops the guard that holds it).
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

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
