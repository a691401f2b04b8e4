//! Failure paths moto cannot produce on demand (5xx then success, throttling, S3's extended
//! request id, refused connections, a service that never answers), against a real HTTP
//! server on loopback that answers from a script.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use common::{aws_str, sdk_config, Traced};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xray_aws_sdk::XRayInterceptor;
use xray_core::document::Cause;

/// One scripted answer: status, extra headers, body. `None` never answers.
type Answer = Option<(u16, Vec<(&'static str, &'static str)>, &'static str)>;

/// A loopback HTTP/1.1 server that answers requests in script order (the last answer
/// repeats) and keeps the `X-Amzn-Trace-Id` of every request.
struct ScriptedService {
    addr: SocketAddr,
    trace_headers: Arc<Mutex<Vec<Option<String>>>>,
}

impl ScriptedService {
    async fn start(script: Vec<Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let trace_headers = Arc::new(Mutex::new(Vec::new()));
        let seen = trace_headers.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let script = script.clone();
                let seen = seen.clone();
                tokio::spawn(serve(socket, script, seen));
            }
        });
        Self {
            addr,
            trace_headers,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn trace_headers(&self) -> Vec<Option<String>> {
        self.trace_headers.lock().unwrap().clone()
    }
}

async fn serve(
    mut socket: TcpStream,
    script: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Option<String>>>>,
) {
    loop {
        let Some(head) = read_request(&mut socket).await else {
            return;
        };
        let trace = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-amzn-trace-id")
                .then(|| v.trim().to_string())
        });
        seen.lock().unwrap().push(trace);
        let answer = {
            let mut s = script.lock().unwrap();
            if s.len() > 1 {
                s.pop_front().unwrap()
            } else {
                s.front().cloned().unwrap()
            }
        };
        let Some((status, headers, body)) = answer else {
            // Never answer; keep the connection open until the client gives up.
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        };
        let mut out = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: application/x-amz-json-1.0\r\n",
            body.len()
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(body);
        if socket.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request (head and body); returns the head.
async fn read_request(socket: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(head)
}

fn dynamodb(endpoint: &str, max_attempts: u32) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config(endpoint))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(max_attempts)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .interceptor(XRayInterceptor::new())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

fn exceptions(doc: &xray_core::Document) -> &[xray_core::document::Exception] {
    match &doc.cause {
        Some(Cause::Exceptions(c)) => &c.exceptions,
        other => panic!("expected exceptions, got {other:?}"),
    }
}

#[tokio::test]
async fn retried_call_is_one_subsegment_counting_retries() {
    let service = ScriptedService::start(vec![
        Some((
            500,
            vec![("x-amzn-errortype", "InternalServerError:http://internal/")],
            r#"{"message":"try again"}"#,
        )),
        Some((200, vec![("x-amzn-requestid", "REQ-2")], "{}")),
    ])
    .await;
    let traced = Traced::new();
    let client = dynamodb(&service.endpoint(), 3);

    let (segment, result) = traced
        .run(client.describe_table().table_name("t").send())
        .await;

    result.expect("the second attempt succeeds");
    assert_eq!(segment.subsegments.len(), 1);
    let sub = &segment.subsegments[0];
    assert_eq!(sub.aws.get("retries"), Some(&json!(1)));
    assert_eq!(aws_str(sub, "request_id"), Some("REQ-2"));
    assert_eq!(sub.http.response.as_ref().unwrap().status, Some(200));
    assert!(!sub.fault && !sub.error && sub.cause.is_none());
    // Both attempts carried the same subsegment as parent.
    let headers = service.trace_headers();
    assert_eq!(headers.len(), 2);
    let expected = format!(
        "Root={};Parent={};Sampled=1",
        segment.trace_id.unwrap(),
        sub.id
    );
    assert!(headers
        .iter()
        .all(|h| h.as_deref() == Some(expected.as_str())));
}

#[tokio::test]
async fn throttling_error_code_sets_throttle_and_error_not_fault() {
    let service = ScriptedService::start(vec![Some((
        400,
        vec![("x-amzn-requestid", "REQ-T")],
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#,
    ))])
    .await;
    let traced = Traced::new();
    let client = dynamodb(&service.endpoint(), 1);

    let (segment, result) = traced
        .run(client.describe_table().table_name("t").send())
        .await;

    assert!(result.is_err());
    let sub = &segment.subsegments[0];
    assert!(sub.error && sub.throttle && !sub.fault);
    let ex = &exceptions(sub)[0];
    assert_eq!(
        ex.kind.as_deref(),
        Some("ProvisionedThroughputExceededException")
    );
    assert_eq!(ex.message.as_deref(), Some("slow down"));
    assert!(ex.remote);
    assert_eq!(aws_str(sub, "request_id"), Some("REQ-T"));
}

#[tokio::test]
async fn status_429_is_a_throttle() {
    let service = ScriptedService::start(vec![Some((
        429,
        vec![("x-amzn-errortype", "TooManyRequests")],
        "{}",
    ))])
    .await;
    let traced = Traced::new();
    let client = dynamodb(&service.endpoint(), 1);

    let (segment, result) = traced
        .run(client.describe_table().table_name("t").send())
        .await;

    assert!(result.is_err());
    let sub = &segment.subsegments[0];
    assert!(sub.error && sub.throttle && !sub.fault);
    assert_eq!(exceptions(sub)[0].kind.as_deref(), Some("TooManyRequests"));
}

#[tokio::test]
async fn server_error_is_a_fault_with_the_service_code() {
    let service = ScriptedService::start(vec![Some((
        503,
        vec![("x-amzn-errortype", "ServiceUnavailable")],
        r#"{"message":"down for maintenance"}"#,
    ))])
    .await;
    let traced = Traced::new();
    let client = dynamodb(&service.endpoint(), 1);

    let (segment, result) = traced
        .run(client.describe_table().table_name("t").send())
        .await;

    assert!(result.is_err());
    let sub = &segment.subsegments[0];
    assert!(sub.fault && !sub.error && !sub.throttle);
    let ex = &exceptions(sub)[0];
    assert_eq!(ex.kind.as_deref(), Some("ServiceUnavailable"));
    assert_eq!(ex.message.as_deref(), Some("down for maintenance"));
    assert!(ex.remote);
}

#[tokio::test]
async fn s3_extended_request_id_is_recorded_as_id_2() {
    let service = ScriptedService::start(vec![Some((
        200,
        vec![
            ("x-amz-request-id", "S3REQ"),
            ("x-amz-id-2", "EXTENDED/id+2="),
        ],
        "",
    ))])
    .await;
    let traced = Traced::new();
    let conf = aws_sdk_s3::config::Builder::from(&sdk_config(&service.endpoint()))
        .force_path_style(true)
        .interceptor(XRayInterceptor::new())
        .build();
    let client = aws_sdk_s3::Client::from_conf(conf);

    let (segment, result) = traced
        .run(client.head_object().bucket("b").key("dir/k.txt").send())
        .await;

    result.expect("HeadObject succeeds");
    let sub = &segment.subsegments[0];
    assert_eq!(sub.name, "S3");
    assert_eq!(aws_str(sub, "request_id"), Some("S3REQ"));
    assert_eq!(aws_str(sub, "id_2"), Some("EXTENDED/id+2="));
    assert_eq!(aws_str(sub, "bucket_name"), Some("b"));
    assert_eq!(aws_str(sub, "key"), Some("dir/k.txt"));
}

#[tokio::test]
async fn refused_connection_is_a_fault_with_a_cause() {
    // A port nothing listens on: bind, note it, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let traced = Traced::new();
    let client = dynamodb(&format!("http://{addr}"), 1);

    let (segment, result) = traced
        .run(client.describe_table().table_name("t").send())
        .await;

    let err = result.expect_err("nothing listens");
    assert!(
        matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
        "the caller sees the SDK's own error: {err:?}"
    );
    let sub = &segment.subsegments[0];
    assert!(sub.fault && !sub.error);
    assert!(sub.http.response.is_none());
    let ex = exceptions(sub);
    assert_eq!(ex[0].kind.as_deref(), Some("ConnectorError"));
    assert!(ex.iter().all(|e| e.remote));
    assert_eq!(aws_str(sub, "operation"), Some("DescribeTable"));
}

#[tokio::test]
async fn dropped_call_ends_as_cancelled() {
    let service = ScriptedService::start(vec![None]).await;
    let traced = Traced::new();
    let client = dynamodb(&service.endpoint(), 1);

    let (segment, timed_out) = traced
        .run(async {
            tokio::time::timeout(
                Duration::from_millis(300),
                client.describe_table().table_name("t").send(),
            )
            .await
            .is_err()
        })
        .await;

    assert!(timed_out, "the service never answers");
    assert_eq!(segment.subsegments.len(), 1);
    let sub = &segment.subsegments[0];
    assert!(!sub.in_progress && sub.end_time.is_some());
    assert!(sub.error && !sub.fault, "cancelled by the caller: {sub:?}");
    assert_eq!(exceptions(sub)[0].kind.as_deref(), Some("Cancelled"));
    assert_eq!(aws_str(sub, "operation"), Some("DescribeTable"));
    assert_eq!(service.trace_headers().len(), 1);
}

// ===== ignored calls =====

fn dynamodb_with(endpoint: &str, interceptor: XRayInterceptor) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config(endpoint))
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .interceptor(interceptor)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

#[tokio::test]
async fn a_call_to_an_ignored_host_has_no_subsegment_and_no_trace_header() {
    let service = ScriptedService::start(vec![Some((200, vec![], "{}"))]).await;
    let traced = Traced::new();
    let interceptor = XRayInterceptor::new().ignore_host("LOCALHOST");
    // Both endpoints reach the same service; only `localhost` is ignored.
    let ignored = dynamodb_with(
        &format!("http://localhost:{}", service.addr.port()),
        interceptor.clone(),
    );
    let recorded = dynamodb_with(&service.endpoint(), interceptor);

    let (segment, (a, b)) = traced
        .run(async {
            let a = ignored.list_tables().send().await;
            let b = recorded.list_tables().send().await;
            (a, b)
        })
        .await;

    a.expect("the ignored call still works");
    b.expect("the recorded call works");
    assert_eq!(segment.subsegments.len(), 1, "{segment:#?}");
    let sub = &segment.subsegments[0];
    assert_eq!(aws_str(sub, "operation"), Some("ListTables"));
    let headers = service.trace_headers();
    assert_eq!(headers[0], None, "the ignored call carries no trace header");
    assert!(headers[1]
        .as_deref()
        .is_some_and(|h| h.contains(&format!("Parent={}", sub.id))));
}

#[tokio::test]
async fn a_call_matching_an_ignored_url_is_left_alone() {
    let service = ScriptedService::start(vec![Some((200, vec![], "{}"))]).await;
    let traced = Traced::new();
    // DynamoDB's JSON protocol posts every operation to `/`.
    let client = dynamodb_with(
        &service.endpoint(),
        XRayInterceptor::new().ignore(xray_aws_sdk::IgnoreRule::new().url("/").method("POST")),
    );

    let (segment, result) = traced.run(client.list_tables().send()).await;

    result.unwrap();
    assert!(segment.subsegments.is_empty(), "{segment:#?}");
    assert_eq!(service.trace_headers(), vec![None]);
}

#[tokio::test]
async fn calls_to_the_daemon_address_are_never_recorded() {
    // An X-Ray (or any) client pointed at the daemon's TCP proxy: here the scripted service
    // is the daemon's TCP address, the collector its UDP address.
    let service = ScriptedService::start(vec![Some((200, vec![], "{}"))]).await;
    let collector = xray_local::Collector::start().unwrap();
    let recorder = xray_core::Recorder::builder()
        .daemon_address(format!("tcp:{} udp:{}", service.addr, collector.addr()))
        .sampler(xray_core::sampling::AlwaysSample)
        .ignore_env()
        .build()
        .unwrap();
    let traced = Traced {
        collector,
        recorder,
    };
    let client = dynamodb(&service.endpoint(), 1);

    let (segment, result) = traced.run(client.list_tables().send()).await;

    result.unwrap();
    assert!(segment.subsegments.is_empty(), "{segment:#?}");
    assert_eq!(service.trace_headers(), vec![None]);
}

/// A DynamoDB client whose credentials come from `command` (a credential process), so that
/// the call stops before it is sent.
fn dynamodb_with_credential_process(endpoint: &str, command: &str) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config(endpoint))
        .credentials_provider(
            aws_config::credential_process::CredentialProcessProvider::new(command.to_string()),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .interceptor(XRayInterceptor::new().ignore_host("*.example.com"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

#[tokio::test]
async fn a_call_that_fails_before_it_is_sent_is_still_recorded() {
    let service = ScriptedService::start(vec![Some((200, vec![], "{}"))]).await;
    let traced = Traced::new();
    let client = dynamodb_with_credential_process(&service.endpoint(), "false");

    let (segment, result) = traced.run(client.list_tables().send()).await;

    assert!(result.is_err(), "no credentials");
    assert_eq!(segment.subsegments.len(), 1, "{segment:#?}");
    let sub = &segment.subsegments[0];
    assert_eq!(sub.name, "DynamoDB");
    assert_eq!(aws_str(sub, "operation"), Some("ListTables"));
    assert!(sub.fault && !sub.in_progress && sub.end_time.is_some());
    assert!(sub.start_time <= sub.end_time.unwrap());
    assert!(service.trace_headers().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_call_dropped_before_it_is_sent_ends_as_cancelled() {
    let service = ScriptedService::start(vec![Some((200, vec![], "{}"))]).await;
    let traced = Traced::new();
    // Not killed when the call is dropped: keep it short.
    let client = dynamodb_with_credential_process(&service.endpoint(), "sleep 2");

    let (segment, timed_out) = traced
        .run(async {
            tokio::time::timeout(Duration::from_millis(300), client.list_tables().send())
                .await
                .is_err()
        })
        .await;

    assert!(timed_out, "the credentials do not arrive in time");
    assert_eq!(segment.subsegments.len(), 1, "{segment:#?}");
    let sub = &segment.subsegments[0];
    assert_eq!(aws_str(sub, "operation"), Some("ListTables"));
    assert!(sub.error && !sub.fault && sub.end_time.is_some());
    assert_eq!(exceptions(sub)[0].kind.as_deref(), Some("Cancelled"));
    assert!(service.trace_headers().is_empty(), "nothing was sent");
}
