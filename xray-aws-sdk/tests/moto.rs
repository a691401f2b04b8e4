//! The real DynamoDB, S3 and SQS clients against moto's server, with the documents checked as
//! they arrive over UDP.

mod common;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ReturnConsumedCapacity, ScalarAttributeType,
};
use common::{
    assert_aws_subsegment, assert_not_recorded, aws_str, moto_endpoint, sdk_config, unique, Spy,
    Traced,
};
use serde_json::json;
use xray_aws_sdk::XRayInterceptor;
use xray_core::document::Cause;
use xray_core::FutureExt;

fn dynamodb(endpoint: &str, spy: &Spy) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config(endpoint))
        .interceptor(XRayInterceptor::new())
        .interceptor(spy.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

fn s3(endpoint: &str, spy: &Spy) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(&sdk_config(endpoint))
        .force_path_style(true)
        .interceptor(XRayInterceptor::new())
        .interceptor(spy.clone())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

fn sqs(endpoint: &str, spy: &Spy) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(&sdk_config(endpoint))
        .interceptor(XRayInterceptor::new())
        .interceptor(spy.clone())
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable succeeds");
}

#[tokio::test]
async fn dynamodb_calls_are_aws_subsegments_with_table_and_request_id() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let traced = Traced::new();
    let spy = Spy::default();
    let client = dynamodb(&endpoint, &spy);
    let table = unique("orders");
    let secret = "card-4111-1111-1111-1111";

    let (segment, wire) = traced
        .run(async {
            let mut wire = Vec::new();
            create_table(&client, &table).await;
            wire.push(spy.last());
            client
                .put_item()
                .table_name(&table)
                .item("pk", AttributeValue::S("order-1".into()))
                .item("card", AttributeValue::S(secret.into()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .expect("PutItem succeeds");
            wire.push(spy.last());
            let got = client
                .get_item()
                .table_name(&table)
                .key("pk", AttributeValue::S("order-1".into()))
                .consistent_read(true)
                .send()
                .await
                .expect("GetItem succeeds");
            assert_eq!(
                got.item().and_then(|i| i.get("card")),
                Some(&AttributeValue::S(secret.into()))
            );
            wire.push(spy.last());
            wire
        })
        .await;

    assert_eq!(segment.subsegments.len(), 3, "{segment:?}");
    let ops = ["CreateTable", "PutItem", "GetItem"];
    for ((sub, op), wire) in segment.subsegments.iter().zip(ops).zip(&wire) {
        assert_aws_subsegment(sub, "DynamoDB", op, wire);
        assert_eq!(aws_str(sub, "table_name"), Some(table.as_str()));
        assert_eq!(sub.http.response.as_ref().unwrap().status, Some(200));
        assert!(!sub.error && !sub.fault && !sub.throttle && sub.cause.is_none());
    }
    let put = &segment.subsegments[1];
    let consumed = put.aws.get("consumed_capacity").expect("consumed capacity");
    assert_eq!(consumed["TableName"], json!(table));
    let get = &segment.subsegments[2];
    assert_eq!(get.aws.get("consistent_read"), Some(&json!(true)));
    assert_not_recorded(&segment, secret);
    assert_not_recorded(&segment, "order-1");
}

#[tokio::test]
async fn get_item_on_a_missing_table_is_an_error_with_a_remote_cause() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let traced = Traced::new();
    let spy = Spy::default();
    let client = dynamodb(&endpoint, &spy);
    let table = unique("missing");

    let (segment, result) = traced
        .run(
            client
                .get_item()
                .table_name(&table)
                .key("pk", AttributeValue::S("x".into()))
                .send(),
        )
        .await;

    // The caller gets the SDK's own error, unchanged.
    let err = result.expect_err("the table does not exist");
    let service_err = err.into_service_error();
    assert!(
        service_err.is_resource_not_found_exception(),
        "{service_err:?}"
    );

    let sub = &segment.subsegments[0];
    assert_aws_subsegment(sub, "DynamoDB", "GetItem", &spy.last());
    assert_eq!(sub.http.response.as_ref().unwrap().status, Some(400));
    assert_eq!(aws_str(sub, "table_name"), Some(table.as_str()));
    assert!(sub.error);
    assert!(!sub.fault && !sub.throttle);
    let Some(Cause::Exceptions(cause)) = &sub.cause else {
        panic!("a cause with exceptions: {sub:?}");
    };
    let ex = &cause.exceptions[0];
    assert_eq!(ex.kind.as_deref(), Some("ResourceNotFoundException"));
    assert!(ex.remote);
    let message = ex.message.as_deref().unwrap_or("");
    assert!(!message.is_empty());
    assert_eq!(Some(message), service_err_message(&service_err).as_deref());
    // The segment itself is not marked: the error belongs to the call.
    assert!(!segment.error && !segment.fault);
}

fn service_err_message(
    err: &aws_sdk_dynamodb::operation::get_item::GetItemError,
) -> Option<String> {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    err.message().map(str::to_string)
}

#[tokio::test]
async fn s3_put_and_get_object_record_bucket_key_and_both_request_ids() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let traced = Traced::new();
    let spy = Spy::default();
    let client = s3(&endpoint, &spy);
    let bucket = unique("bucket");
    let key = "reports/2024/q1 summary.txt";
    let payload = "confidential-body-contents";

    let (segment, wire) = traced
        .run(async {
            client
                .create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .expect("CreateBucket");
            let mut wire = vec![spy.last()];
            client
                .put_object()
                .bucket(&bucket)
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from_static(
                    payload.as_bytes(),
                ))
                .send()
                .await
                .expect("PutObject");
            wire.push(spy.last());
            let got = client
                .get_object()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .expect("GetObject");
            wire.push(spy.last());
            let body = got.body.collect().await.unwrap().into_bytes();
            assert_eq!(&body[..], payload.as_bytes());
            wire
        })
        .await;

    assert_eq!(segment.subsegments.len(), 3);
    for ((sub, op), wire) in segment
        .subsegments
        .iter()
        .zip(["CreateBucket", "PutObject", "GetObject"])
        .zip(&wire)
    {
        assert_aws_subsegment(sub, "S3", op, wire);
        assert_eq!(aws_str(sub, "bucket_name"), Some(bucket.as_str()));
        assert_eq!(aws_str(sub, "id_2"), wire.id_2.as_deref());
    }
    assert_eq!(aws_str(&segment.subsegments[0], "key"), None);
    assert_eq!(aws_str(&segment.subsegments[1], "key"), Some(key));
    assert_eq!(aws_str(&segment.subsegments[2], "key"), Some(key));
    let get = segment.subsegments[2].http.response.as_ref().unwrap();
    assert_eq!(get.content_length, Some(payload.len() as u64));
    assert_not_recorded(&segment, payload);
}

#[tokio::test]
async fn sqs_calls_record_queue_message_id_and_count_but_never_bodies() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let traced = Traced::new();
    let spy = Spy::default();
    let client = sqs(&endpoint, &spy);
    let queue = unique("jobs");
    let body = "message-body-with-a-password-hunter2";

    let (segment, (wire, url, message_id)) = traced
        .run(async {
            let created = client
                .create_queue()
                .queue_name(&queue)
                .send()
                .await
                .expect("CreateQueue");
            let url = created.queue_url().unwrap().to_string();
            let mut wire = vec![spy.last()];
            let sent = client
                .send_message()
                .queue_url(&url)
                .message_body(body)
                .send()
                .await
                .expect("SendMessage");
            wire.push(spy.last());
            let received = client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(5)
                .send()
                .await
                .expect("ReceiveMessage");
            wire.push(spy.last());
            assert_eq!(received.messages().len(), 1);
            (wire, url, sent.message_id().unwrap().to_string())
        })
        .await;

    assert_eq!(segment.subsegments.len(), 3);
    for ((sub, op), wire) in segment
        .subsegments
        .iter()
        .zip(["CreateQueue", "SendMessage", "ReceiveMessage"])
        .zip(&wire)
    {
        assert_aws_subsegment(sub, "SQS", op, wire);
    }
    let [create, send, receive] = &segment.subsegments[..] else {
        unreachable!()
    };
    assert_eq!(aws_str(create, "queue_name"), Some(queue.as_str()));
    assert_eq!(aws_str(create, "queue_url"), Some(url.as_str()));
    assert_eq!(aws_str(send, "queue_url"), Some(url.as_str()));
    assert_eq!(aws_str(send, "message_id"), Some(message_id.as_str()));
    assert_eq!(aws_str(receive, "queue_url"), Some(url.as_str()));
    assert_eq!(receive.aws.get("message_count"), Some(&json!(1)));
    assert_eq!(receive.aws.get("max_number_of_messages"), Some(&json!(5)));
    assert_not_recorded(&segment, body);
}

#[tokio::test]
async fn trace_header_names_the_subsegment_as_parent() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let traced = Traced::new();
    let spy = Spy::default();
    let client = dynamodb(&endpoint, &spy);

    let (segment, _) = traced
        .run(async { client.list_tables().send().await.expect("ListTables") })
        .await;

    let sub = &segment.subsegments[0];
    assert_eq!(aws_str(sub, "operation"), Some("ListTables"));
    assert!(sub.aws.get("table_count").is_some_and(|c| c.is_u64()));
    let header = spy.last().trace_header.expect("X-Amzn-Trace-Id was sent");
    assert_eq!(
        header,
        format!(
            "Root={};Parent={};Sampled=1",
            segment.trace_id.unwrap(),
            sub.id
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_one_client_get_one_subsegment_each() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let traced = Traced::new();
    let spy = Spy::default();
    let client = dynamodb(&endpoint, &spy);
    let tables: Vec<String> = (0..4).map(|i| unique(&format!("c{i}"))).collect();

    let (segment, _) = traced
        .run(async {
            // Spawned tasks on a multi-threaded runtime, all through the one interceptor.
            let handles: Vec<_> = tables
                .iter()
                .map(|t| {
                    let call = client.describe_table().table_name(t).send();
                    tokio::spawn(call.in_current_segment())
                })
                .collect();
            let mut results = Vec::new();
            for h in handles {
                results.push(h.await.unwrap());
            }
            assert!(results.iter().all(|r| r.is_err()));
        })
        .await;

    let mut recorded: Vec<&str> = segment
        .subsegments
        .iter()
        .map(|s| aws_str(s, "table_name").unwrap())
        .collect();
    recorded.sort();
    let mut expected: Vec<&str> = tables.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(recorded, expected);
    assert!(segment
        .subsegments
        .iter()
        .all(|s| s.error && s.cause.is_some()));
}

#[tokio::test]
async fn calls_outside_a_segment_go_out_untouched() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let traced = Traced::new();
    let spy = Spy::default();
    let client = dynamodb(&endpoint, &spy);

    client
        .list_tables()
        .send()
        .await
        .expect("ListTables works untraced");

    assert_eq!(spy.last().trace_header, None);
    // Nothing was recorded: a later segment arrives alone.
    let (segment, _) = traced.run(async {}).await;
    assert!(segment.subsegments.is_empty());
    assert_eq!(traced.collector.documents().len(), 1);
}

#[tokio::test]
async fn explicit_parent_is_used_outside_any_scope() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let traced = Traced::new();
    let spy = Spy::default();
    let segment = traced.recorder.begin_segment("worker", None);
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config(&endpoint))
        .interceptor(XRayInterceptor::new().parent(segment.clone()))
        .interceptor(spy.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);

    client.list_tables().send().await.expect("ListTables");
    segment.end();

    let doc = traced.received(&segment);
    assert_eq!(doc.subsegments.len(), 1);
    assert_aws_subsegment(&doc.subsegments[0], "DynamoDB", "ListTables", &spy.last());
}

#[tokio::test]
async fn unsampled_requests_send_sampled_zero_and_record_nothing() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let traced = Traced::new();
    let spy = Spy::default();
    let client = dynamodb(&endpoint, &spy);
    let incoming =
        xray_core::TraceHeader::from_bytes(b"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0")
            .unwrap();
    let segment = traced.recorder.begin_segment("unsampled", Some(&incoming));
    assert!(!segment.is_sampled());

    xray_core::context::scope(segment.clone(), client.list_tables().send())
        .await
        .expect("ListTables");
    segment.end();

    let header = spy
        .last()
        .trace_header
        .expect("the header still propagates");
    assert!(header.starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;Parent="));
    assert!(header.ends_with(";Sampled=0"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(traced.collector.documents().is_empty());
}
