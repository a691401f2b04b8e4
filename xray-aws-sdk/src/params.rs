//! What is recorded for each AWS operation, as data.
//!
//! Each row names a service (the SDK's service id, as in `Metadata::service`), an operation
//! (or `*` for every operation of the service that has no row of its own), and the fields
//! written into the subsegment's `aws` block, each with the place its value is read from.
//! Only the listed members are read; nothing else in a request or response (item contents,
//! message bodies, object payloads, credentials) ever reaches a document.
//!
//! The selection follows what the official X-Ray SDKs record, so that the X-Ray console shows
//! the same fields whichever language made the call. To record a new parameter, add a
//! [`Field`] to the operation's row (or a new row); nothing else needs to change.

/// Where a recorded value is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A top-level member of the body: a JSON member (awsJson and restJson protocols, request or
    /// response), a form field (awsQuery requests) or the text of the first element with that
    /// name (XML responses). Recorded as found.
    Member(&'static str),
    /// The names of an object member's entries (DynamoDB `RequestItems` maps table names to
    /// requests: only the table names are recorded).
    MemberKeys(&'static str),
    /// The number of elements of a list member (the messages themselves are never recorded).
    MemberCount(&'static str),
    /// An HTTP header.
    Header(&'static str),
    /// A query-string parameter of the request URL.
    Query(&'static str),
    /// The URL path segment that follows a fixed segment (`functions` gives the Lambda function
    /// name in `/2015-03-31/functions/{name}/invocations`).
    PathAfter(&'static str),
    /// The S3 bucket: the virtual-host label before `.s3`, else the first path segment.
    Bucket,
    /// The S3 object key: the rest of the path after the bucket.
    ObjectKey,
    /// The HTTP status of the response, as a number.
    Status,
}

/// One recorded field: its name in the `aws` block and its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) source: Source,
}

/// The fields recorded for one operation.
#[derive(Debug)]
pub(crate) struct Operation {
    pub(crate) service: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) request: &'static [Field],
    pub(crate) response: &'static [Field],
}

impl Operation {
    /// True when reading the request fields needs the request body.
    pub(crate) fn request_needs_body(&self) -> bool {
        self.request.iter().any(|f| f.source.reads_body())
    }

    /// True when reading the response fields needs the response body.
    pub(crate) fn response_needs_body(&self) -> bool {
        self.response.iter().any(|f| f.source.reads_body())
    }
}

impl Source {
    fn reads_body(&self) -> bool {
        matches!(
            self,
            Source::Member(_) | Source::MemberKeys(_) | Source::MemberCount(_)
        )
    }
}

/// The row for an operation: its own row, else the service's `*` row.
pub(crate) fn lookup(service: &str, operation: &str) -> Option<&'static Operation> {
    let mut fallback = None;
    for row in OPERATIONS {
        if row.service != service {
            continue;
        }
        if row.operation == operation {
            return Some(row);
        }
        if row.operation == "*" {
            fallback = Some(row);
        }
    }
    fallback
}

const fn member(member: &'static str, name: &'static str) -> Field {
    Field {
        name,
        source: Source::Member(member),
    }
}

const fn keys(member: &'static str, name: &'static str) -> Field {
    Field {
        name,
        source: Source::MemberKeys(member),
    }
}

const fn count(member: &'static str, name: &'static str) -> Field {
    Field {
        name,
        source: Source::MemberCount(member),
    }
}

const fn header(header: &'static str, name: &'static str) -> Field {
    Field {
        name,
        source: Source::Header(header),
    }
}

const fn query(param: &'static str, name: &'static str) -> Field {
    Field {
        name,
        source: Source::Query(param),
    }
}

const fn op(
    service: &'static str,
    operation: &'static str,
    request: &'static [Field],
    response: &'static [Field],
) -> Operation {
    Operation {
        service,
        operation,
        request,
        response,
    }
}

// ===== DynamoDB (awsJson 1.0) =====

const TABLE: Field = member("TableName", "table_name");
const TABLES: Field = keys("RequestItems", "table_names");
const CONSUMED: Field = member("ConsumedCapacity", "consumed_capacity");
const ITEM_METRICS: Field = member("ItemCollectionMetrics", "item_collection_metrics");
const CONSISTENT: Field = member("ConsistentRead", "consistent_read");
const PROJECTION: Field = member("ProjectionExpression", "projection_expression");
const INDEX: Field = member("IndexName", "index_name");
const LIMIT: Field = member("Limit", "limit");
const SELECT: Field = member("Select", "select");
const ATTRS_TO_GET: Field = member("AttributesToGet", "attributes_to_get");
const THROUGHPUT: Field = member("ProvisionedThroughput", "provisioned_throughput");

// ===== SQS (awsJson 1.0) =====

const QUEUE_URL: Field = member("QueueUrl", "queue_url");
const QUEUE_NAME: Field = member("QueueName", "queue_name");

// ===== S3 (restXml) =====

const BUCKET: Field = Field {
    name: "bucket_name",
    source: Source::Bucket,
};
const KEY: Field = Field {
    name: "key",
    source: Source::ObjectKey,
};
const VERSION: Field = query("versionId", "version_id");

// ===== Lambda (restJson) =====

const FUNCTION: Field = Field {
    name: "function_name",
    source: Source::PathAfter("functions"),
};

// ===== Kinesis (awsJson 1.1) =====

const STREAM: Field = member("StreamName", "stream_name");
const STREAM_ARN: Field = member("StreamARN", "stream_arn");

/// The capture table.
pub(crate) static OPERATIONS: &[Operation] = &[
    // DynamoDB
    op("DynamoDB", "BatchGetItem", &[TABLES], &[CONSUMED]),
    op(
        "DynamoDB",
        "BatchWriteItem",
        &[TABLES],
        &[CONSUMED, ITEM_METRICS],
    ),
    op(
        "DynamoDB",
        "CreateTable",
        &[
            TABLE,
            THROUGHPUT,
            member("GlobalSecondaryIndexes", "global_secondary_indexes"),
            member("LocalSecondaryIndexes", "local_secondary_indexes"),
        ],
        &[],
    ),
    op(
        "DynamoDB",
        "DeleteItem",
        &[TABLE],
        &[CONSUMED, ITEM_METRICS],
    ),
    op("DynamoDB", "DeleteTable", &[TABLE], &[]),
    op("DynamoDB", "DescribeTable", &[TABLE], &[]),
    op(
        "DynamoDB",
        "GetItem",
        &[TABLE, CONSISTENT, PROJECTION],
        &[CONSUMED],
    ),
    op(
        "DynamoDB",
        "ListTables",
        &[
            member("ExclusiveStartTableName", "exclusive_start_table_name"),
            LIMIT,
        ],
        &[count("TableNames", "table_count")],
    ),
    op("DynamoDB", "PutItem", &[TABLE], &[CONSUMED, ITEM_METRICS]),
    op(
        "DynamoDB",
        "Query",
        &[
            TABLE,
            ATTRS_TO_GET,
            CONSISTENT,
            INDEX,
            LIMIT,
            PROJECTION,
            member("ScanIndexForward", "scan_index_forward"),
            SELECT,
        ],
        &[CONSUMED],
    ),
    op(
        "DynamoDB",
        "Scan",
        &[
            TABLE,
            ATTRS_TO_GET,
            CONSISTENT,
            INDEX,
            LIMIT,
            PROJECTION,
            member("Segment", "segment"),
            SELECT,
            member("TotalSegments", "total_segments"),
        ],
        &[
            CONSUMED,
            member("Count", "count"),
            member("ScannedCount", "scanned_count"),
        ],
    ),
    op(
        "DynamoDB",
        "UpdateItem",
        &[TABLE],
        &[CONSUMED, ITEM_METRICS],
    ),
    op(
        "DynamoDB",
        "UpdateTable",
        &[
            TABLE,
            member("AttributeDefinitions", "attribute_definitions"),
            member(
                "GlobalSecondaryIndexUpdates",
                "global_secondary_index_updates",
            ),
            THROUGHPUT,
        ],
        &[],
    ),
    op("DynamoDB", "*", &[TABLE], &[CONSUMED]),
    // SQS
    op(
        "SQS",
        "AddPermission",
        &[QUEUE_URL, member("Label", "label")],
        &[],
    ),
    op(
        "SQS",
        "ChangeMessageVisibility",
        &[QUEUE_URL, member("VisibilityTimeout", "visibility_timeout")],
        &[],
    ),
    op(
        "SQS",
        "ChangeMessageVisibilityBatch",
        &[QUEUE_URL],
        &[count("Failed", "failed_count")],
    ),
    op(
        "SQS",
        "CreateQueue",
        &[QUEUE_NAME, keys("Attributes", "attribute_names")],
        &[QUEUE_URL],
    ),
    op(
        "SQS",
        "DeleteMessageBatch",
        &[QUEUE_URL],
        &[count("Failed", "failed_count")],
    ),
    op(
        "SQS",
        "GetQueueAttributes",
        &[QUEUE_URL],
        &[keys("Attributes", "attribute_names")],
    ),
    op(
        "SQS",
        "GetQueueUrl",
        &[
            QUEUE_NAME,
            member("QueueOwnerAWSAccountId", "queue_owner_aws_account_id"),
        ],
        &[QUEUE_URL],
    ),
    op(
        "SQS",
        "ListDeadLetterSourceQueues",
        &[QUEUE_URL],
        &[member("queueUrls", "queue_urls")],
    ),
    op(
        "SQS",
        "ListQueues",
        &[member("QueueNamePrefix", "queue_name_prefix")],
        &[count("QueueUrls", "queue_count")],
    ),
    op(
        "SQS",
        "ReceiveMessage",
        &[
            QUEUE_URL,
            member("AttributeNames", "attribute_names"),
            member(
                "MessageSystemAttributeNames",
                "message_system_attribute_names",
            ),
            member("MaxNumberOfMessages", "max_number_of_messages"),
            member("MessageAttributeNames", "message_attribute_names"),
            member("VisibilityTimeout", "visibility_timeout"),
            member("WaitTimeSeconds", "wait_time_seconds"),
        ],
        &[count("Messages", "message_count")],
    ),
    op(
        "SQS",
        "SendMessage",
        &[
            QUEUE_URL,
            member("DelaySeconds", "delay_seconds"),
            keys("MessageAttributes", "message_attribute_names"),
        ],
        &[member("MessageId", "message_id")],
    ),
    op(
        "SQS",
        "SendMessageBatch",
        &[QUEUE_URL, count("Entries", "message_count")],
        &[
            count("Failed", "failed_count"),
            count("Successful", "successful_count"),
        ],
    ),
    op(
        "SQS",
        "SetQueueAttributes",
        &[QUEUE_URL, keys("Attributes", "attribute_names")],
        &[],
    ),
    op("SQS", "*", &[QUEUE_URL], &[]),
    // SNS (awsQuery: form-encoded requests, XML responses)
    op(
        "SNS",
        "Publish",
        &[member("TopicArn", "topic_arn")],
        &[member("MessageId", "message_id")],
    ),
    op("SNS", "*", &[member("TopicArn", "topic_arn")], &[]),
    // S3: the bucket and key of every operation, plus the version where there is one.
    op("S3", "GetObject", &[BUCKET, KEY, VERSION], &[]),
    op("S3", "GetObjectAcl", &[BUCKET, KEY, VERSION], &[]),
    op("S3", "GetObjectTagging", &[BUCKET, KEY, VERSION], &[]),
    op("S3", "PutObjectTagging", &[BUCKET, KEY, VERSION], &[]),
    op("S3", "RestoreObject", &[BUCKET, KEY, VERSION], &[]),
    op("S3", "DeleteObject", &[BUCKET, KEY, VERSION], &[]),
    op(
        "S3",
        "CopyObject",
        &[BUCKET, KEY, header("x-amz-copy-source", "copy_source")],
        &[],
    ),
    op(
        "S3",
        "ListObjectsV2",
        &[BUCKET, query("prefix", "prefix")],
        &[],
    ),
    op(
        "S3",
        "ListObjects",
        &[BUCKET, query("prefix", "prefix")],
        &[],
    ),
    op(
        "S3",
        "ListObjectVersions",
        &[BUCKET, query("prefix", "prefix")],
        &[],
    ),
    op("S3", "*", &[BUCKET, KEY], &[]),
    // Lambda
    op(
        "Lambda",
        "Invoke",
        &[
            FUNCTION,
            header("x-amz-invocation-type", "invocation_type"),
            header("x-amz-log-type", "log_type"),
            query("Qualifier", "qualifier"),
        ],
        &[
            header("x-amz-function-error", "function_error"),
            Field {
                name: "status_code",
                source: Source::Status,
            },
        ],
    ),
    op("Lambda", "*", &[FUNCTION], &[]),
    // Kinesis
    op(
        "Kinesis",
        "PutRecords",
        &[STREAM, STREAM_ARN, count("Records", "record_count")],
        &[member("FailedRecordCount", "failed_record_count")],
    ),
    op(
        "Kinesis",
        "PutRecord",
        &[STREAM, STREAM_ARN],
        &[member("ShardId", "shard_id")],
    ),
    op("Kinesis", "*", &[STREAM, STREAM_ARN], &[]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_one_row_and_snake_case_fields() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            for b in &OPERATIONS[i + 1..] {
                assert!(
                    !(a.service == b.service && a.operation == b.operation),
                    "duplicate row {}.{}",
                    a.service,
                    a.operation
                );
            }
            for f in a.request.iter().chain(a.response) {
                assert!(
                    f.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{} is not snake_case",
                    f.name
                );
            }
        }
    }

    #[test]
    fn operations_without_a_row_use_the_service_default() {
        assert_eq!(lookup("DynamoDB", "GetItem").unwrap().operation, "GetItem");
        assert_eq!(
            lookup("DynamoDB", "TransactGetItems").unwrap().operation,
            "*"
        );
        assert_eq!(lookup("S3", "HeadObject").unwrap().request, &[BUCKET, KEY]);
        assert!(lookup("STS", "GetCallerIdentity").is_none());
    }

    #[test]
    fn required_services_are_covered() {
        let expect = [
            ("DynamoDB", "PutItem", "table_name"),
            ("DynamoDB", "BatchWriteItem", "table_names"),
            ("SQS", "SendMessage", "queue_url"),
            ("SQS", "CreateQueue", "queue_name"),
            ("S3", "PutObject", "bucket_name"),
            ("S3", "PutObject", "key"),
            ("SNS", "Publish", "topic_arn"),
            ("Lambda", "Invoke", "function_name"),
            ("Lambda", "Invoke", "invocation_type"),
            ("Kinesis", "PutRecord", "stream_name"),
        ];
        for (service, operation, field) in expect {
            let row = lookup(service, operation).unwrap();
            assert!(
                row.request.iter().any(|f| f.name == field),
                "{service}.{operation} lacks {field}"
            );
        }
    }
}
