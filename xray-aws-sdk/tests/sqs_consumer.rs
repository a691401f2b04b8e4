//! An SQS consumer continues the producer's trace from the `AWSTraceHeader` attribute, against
//! moto's SQS.

mod common;

use aws_sdk_sqs::types::{
    MessageSystemAttributeName, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};
use common::{moto_endpoint, sdk_config, unique, Traced};
use xray_aws_sdk::XRayInterceptor;
use xray_core::{context, sqs};

async fn client(endpoint: &str) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(&sdk_config(endpoint))
        .interceptor(XRayInterceptor::new())
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

#[tokio::test]
async fn consumer_segment_continues_the_producers_trace_under_its_send_message_call() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let t = Traced::new();
    let sqs = client(&endpoint).await;
    let queue = sqs
        .create_queue()
        .queue_name(unique("consumer"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    // Producer: inside a traced request, send a message carrying the trace header of the
    // SendMessage subsegment (what the official SDKs and Lambda event sources pass along).
    let (producer, ()) = t
        .run(async {
            let sub = context::current().unwrap().begin_subsegment("SQS");
            let header = sub.outbound_header().to_string();
            sqs.send_message()
                .queue_url(&queue)
                .message_body("order 42")
                .message_system_attributes(
                    MessageSystemAttributeNameForSends::AwsTraceHeader,
                    MessageSystemAttributeValue::builder()
                        .data_type("String")
                        .string_value(header)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            sub.end();
        })
        .await;
    let send_sub = producer
        .subsegments
        .iter()
        .find(|s| s.name == "SQS" && s.namespace.is_none())
        .expect("the producer's own subsegment");

    // Consumer: receive with the attribute and process under a continuing segment.
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .send()
        .await
        .unwrap();
    let message = &received.messages()[0];
    let attribute = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
        .map(String::as_str);
    assert!(
        sqs::sqs_message_sampled(attribute),
        "attribute: {attribute:?}"
    );
    let segment = sqs::begin_message_segment(&t.recorder, "order-worker", attribute);
    context::scope(segment.clone(), async {
        xray_core::capture("handle-order", || ());
    })
    .await;
    segment.end();
    let consumer = t.received(&segment);
    assert_eq!(consumer.trace_id, producer.trace_id);
    assert_eq!(consumer.parent_id, Some(send_sub.id));
    assert_eq!(consumer.subsegments[0].name, "handle-order");
}

#[tokio::test]
async fn message_without_trace_header_starts_a_new_trace() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let t = Traced::new();
    let sqs = client(&endpoint).await;
    let queue = sqs
        .create_queue()
        .queue_name(unique("untraced"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&queue)
        .message_body("x")
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .send()
        .await
        .unwrap();
    let attribute = received.messages()[0]
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
        .map(String::as_str);
    assert_eq!(attribute, None);
    assert!(!sqs::sqs_message_sampled(attribute));
    let segment = sqs::begin_message_segment(&t.recorder, "order-worker", attribute);
    segment.end();
    let doc = t.received(&segment);
    assert_eq!(doc.parent_id, None);
}
