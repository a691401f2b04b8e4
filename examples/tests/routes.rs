//! The route contract of `axum-service` and `actix-service`: the same tests run against both
//! binaries, started as child processes sending to an in-test collector over real UDP.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Options, Service, SAMPLE_NONE};
use xray_core::document::Cause;
use xray_local::Trace;

/// The only segment of a single-service trace.
fn segment(trace: &Trace) -> &xray_core::Document {
    let segments = trace.segments();
    assert_eq!(segments.len(), 1, "{}", trace.outline());
    segments[0].document()
}

/// The children of the trace's only segment, in start order.
fn children(trace: &Trace) -> Vec<xray_core::Document> {
    let segments = trace.segments();
    assert_eq!(segments.len(), 1, "{}", trace.outline());
    let mut docs: Vec<_> = trace
        .children_of(segments[0].id())
        .into_iter()
        .map(|e| e.document().clone())
        .collect();
    docs.sort_by_key(|d| d.start_time);
    docs
}

fn exception_messages(doc: &xray_core::Document) -> Vec<String> {
    match &doc.cause {
        Some(Cause::Exceptions(data)) => data
            .exceptions
            .iter()
            .filter_map(|e| e.message.clone())
            .collect(),
        other => panic!("expected exceptions in the cause, got {other:?}"),
    }
}

pub async fn root_answers_ok_with_a_segment_named_after_the_service(bin: &str, name: &str) {
    let svc = Service::start(bin);
    let (status, body, trace) = svc.traced("/").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let seg = segment(&trace);
    assert_eq!(seg.name, name);
    let request = seg.http.request.as_ref().unwrap();
    assert_eq!(request.method.as_deref(), Some("GET"));
    assert_eq!(request.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(seg.http.response.as_ref().unwrap().status, Some(200));
    assert!(!seg.error && !seg.fault);
}

pub async fn name_option_names_the_segment(bin: &str) {
    let svc = Service::start_with(
        bin,
        Options {
            args: &["--name", "checkout"],
            ..Options::default()
        },
    );
    let (_, _, trace) = svc.traced("/").await;
    assert_eq!(segment(&trace).name, "checkout");
}

pub async fn dynamic_naming_names_the_segment_after_a_matching_host(bin: &str) {
    let svc = Service::start_with(
        bin,
        Options {
            args: &["--name", "fallback", "--dynamic-naming", "*.example.com"],
            ..Options::default()
        },
    );
    let (_, _, id) = svc
        .get_with(
            svc.http
                .get(format!("{}/", svc.base))
                .header("host", "api.example.com:8080"),
        )
        .await;
    let trace = svc
        .collector
        .wait_for_trace_id(id.unwrap(), common::TRACE_TIMEOUT)
        .unwrap();
    assert_eq!(segment(&trace).name, "api.example.com");
    let (_, _, trace) = svc.traced("/").await;
    assert_eq!(segment(&trace).name, "fallback");
}

pub async fn status_route_answers_that_status_and_flags_it(bin: &str) {
    let svc = Service::start(bin);
    let (status, _, trace) = svc.traced("/status/429").await;
    assert_eq!(status, 429);
    let seg = segment(&trace);
    assert!(seg.error && seg.throttle && !seg.fault, "{seg:?}");
    assert_eq!(seg.http.response.as_ref().unwrap().status, Some(429));

    let (status, _, trace) = svc.traced("/status/503").await;
    assert_eq!(status, 503);
    assert!(segment(&trace).fault);

    let (status, _, _) = svc.get("/status/not-a-number").await;
    assert_eq!(status, 400);
}

pub async fn annotated_route_records_annotation_metadata_and_user(bin: &str) {
    let svc = Service::start(bin);
    let (status, _, trace) = svc.traced("/annotated").await;
    assert_eq!(status, 200);
    let seg = segment(&trace);
    assert_eq!(seg.annotations["example_key"], "example_value");
    assert_eq!(seg.metadata["default"]["example"]["answer"], 42);
    assert_eq!(seg.user.as_deref(), Some("example-user"));
}

pub async fn work_route_records_n_sequential_steps(bin: &str) {
    let svc = Service::start(bin);
    let (status, _, trace) = svc.traced("/work/3").await;
    assert_eq!(status, 200);
    let steps = children(&trace);
    let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["step-1", "step-2", "step-3"]);
    for pair in steps.windows(2) {
        assert!(
            pair[0].end_time.unwrap() <= pair[1].start_time,
            "steps overlap"
        );
    }
    let (status, _, _) = svc.get("/work/1001").await;
    assert_eq!(status, 400);
}

pub async fn fanout_route_records_n_concurrent_subsegments(bin: &str) {
    let svc = Service::start(bin);
    let (status, _, trace) = svc.traced("/fanout/4").await;
    assert_eq!(status, 200);
    let branches = children(&trace);
    let mut names: Vec<_> = branches.iter().map(|s| s.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["fanout-1", "fanout-2", "fanout-3", "fanout-4"]);
    // All four were running at one moment: the latest start precedes the earliest end.
    let latest_start = branches.iter().map(|s| s.start_time).max().unwrap();
    let earliest_end = branches.iter().map(|s| s.end_time.unwrap()).min().unwrap();
    assert!(latest_start < earliest_end, "branches did not overlap");
    let (status, _, _) = svc.get("/fanout/101").await;
    assert_eq!(status, 400);
}

pub async fn error_route_answers_500_and_records_fault_with_cause(bin: &str) {
    let svc = Service::start(bin);
    let (status, _, trace) = svc.traced("/error").await;
    assert_eq!(status, 500);
    let seg = segment(&trace);
    assert!(seg.fault);
    assert_eq!(seg.http.response.as_ref().unwrap().status, Some(500));
    let messages = exception_messages(seg);
    assert!(
        messages.iter().any(|m| m.contains("failed on purpose")),
        "{messages:?}"
    );
}

pub async fn panic_route_answers_500_records_the_panic_and_keeps_serving(bin: &str) {
    let svc = Service::start(bin);
    let (status, _, trace) = svc.traced("/panic").await;
    assert_eq!(status, 500);
    let seg = segment(&trace);
    assert!(seg.fault);
    assert_eq!(seg.http.response.as_ref().unwrap().status, Some(500));
    let messages = exception_messages(seg);
    assert!(
        messages.iter().any(|m| m.contains("panicked on purpose")),
        "{messages:?}"
    );
    let (status, body, _) = svc.get("/").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
}

pub async fn call_route_answers_the_downstream_status_and_records_a_remote_call(bin: &str) {
    let svc = Service::start(bin);
    let path = format!("/call?url={}/status/418", svc.base);
    let (status, body, trace) = svc.traced(&path).await;
    assert_eq!((status, body.as_str()), (200, "418"));
    // The service called itself: one trace, two segments, linked through the call.
    let segments = trace.segments();
    assert_eq!(segments.len(), 2, "{}", trace.outline());
    let call = trace
        .entities()
        .iter()
        .find(|e| e.document().namespace.as_deref() == Some("remote"))
        .expect("a remote subsegment");
    let request = call.document().http.request.as_ref().unwrap();
    assert!(request.traced);
    assert!(request.url.as_deref().unwrap().ends_with("/status/418"));
    assert!(call.document().error, "418 is a client error");
    let callee = segments
        .iter()
        .find(|s| s.parent_id() == Some(call.id()))
        .expect("the callee's segment has the call as parent");
    assert_eq!(callee.http_status(), Some(418));
}

pub async fn call_route_answers_502_on_a_transport_error(bin: &str) {
    let svc = Service::start(bin);
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, _, trace) = svc
        .traced(&format!("/call?url=http://127.0.0.1:{port}/"))
        .await;
    assert_eq!(status, 502);
    let call = trace
        .entities()
        .iter()
        .find(|e| e.document().namespace.as_deref() == Some("remote"))
        .expect("a remote subsegment");
    assert!(call.document().fault);
    let (status, _, _) = svc.get("/call").await;
    assert_eq!(status, 400);
}

pub async fn sampling_rules_file_decides(bin: &str) {
    let svc = Service::start_with(
        bin,
        Options {
            rules: SAMPLE_NONE,
            ..Options::default()
        },
    );
    // Without the file, the default rule would sample the first request of each second.
    for _ in 0..3 {
        let (status, _, id) = svc.get("/").await;
        assert_eq!(status, 200);
        assert!(
            id.is_some(),
            "the trace header is answered even when not sampled"
        );
    }
    let docs = svc
        .collector
        .wait_for_documents(1, Duration::from_millis(500));
    assert!(docs.is_empty(), "unsampled requests were sent: {docs:?}");
}

pub async fn rules_served_by_the_daemon_decide_over_the_local_file(bin: &str) {
    // The daemon's sampling API (served by the collector on the daemon address's TCP side)
    // samples `/work/*` always and nothing else; the local file samples nothing.
    const SERVED: &str = r#"{"version": 2, "rules": [{"description": "work", "host": "*",
        "http_method": "*", "url_path": "/work/*", "fixed_target": 0, "rate": 1.0}],
        "default": {"fixed_target": 0, "rate": 0.0}}"#;
    let svc = Service::start_with(
        bin,
        Options {
            rules: SAMPLE_NONE,
            served_rules: Some(SERVED),
            ..Options::default()
        },
    );
    // The service starts at once and fetches the rules in the background: within seconds a
    // request the served rule matches is sampled, which the local file alone never does.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let trace = loop {
        let (status, _, id) = svc.get("/work/1").await;
        assert_eq!(status, 200);
        let id = id.expect("the response names the trace");
        if let Some(trace) = svc
            .collector
            .wait_for_trace_id(id, Duration::from_millis(300))
        {
            break trace;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rule served by the daemon never decided"
        );
    };
    assert_eq!(
        segment(&trace)
            .http
            .request
            .as_ref()
            .unwrap()
            .url
            .as_deref()
            .map(|u| u.ends_with("/work/1")),
        Some(true)
    );
    // A path no served rule matches falls to the served default rule: never sampled.
    for _ in 0..3 {
        let (status, _, id) = svc.get("/").await;
        assert_eq!(status, 200);
        assert!(
            svc.collector
                .wait_for_trace_id(id.unwrap(), Duration::from_millis(200))
                .is_none(),
            "GET / was sampled"
        );
    }
    // The service reported its statistics for the served rule under its client id.
    let api = svc.collector.sampling_api().expect("served");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !api.statistics().iter().any(|s| s["RuleName"] == "local-1") {
        assert!(
            std::time::Instant::now() < deadline,
            "no statistics reported: {:?}",
            api.statistics()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn sigterm_stops_the_service_cleanly_after_flushing(bin: &str) {
    let mut svc = Service::start(bin);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, _, _) = rt.block_on(svc.get("/work/2"));
    assert_eq!(status, 200);
    let exit = svc
        .child
        .terminate(Duration::from_secs(10))
        .expect("the service exits within 10 s of SIGTERM");
    assert!(exit.success(), "exit status {exit}");
    let docs = svc.collector.wait_for_documents(1, Duration::from_secs(2));
    assert_eq!(docs.len(), 1);
}

pub fn sigterm_during_a_burst_still_delivers_a_segment_per_answered_request(bin: &str) {
    const REQUESTS: usize = 400;
    let mut svc = Service::start(bin);
    let pid = svc.child.child.id().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Many requests at once, and SIGTERM as soon as a quarter are answered: the service
    // finishes those in flight and exits right after their segments end, when the emitter
    // thread (which takes documents every 2 to 10 ms) may not have sent them yet. Without the
    // flush on the way out, runs of this test lost up to 11 of 400.
    let answered: HashSet<xray_core::TraceId> = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..REQUESTS {
            let (http, url) = (svc.http.clone(), format!("{}/work/20", svc.base));
            tasks.spawn(async move {
                let res = http.get(url).send().await.ok()?;
                let id = res
                    .headers()
                    .get("x-amzn-trace-id")
                    .and_then(|v| xray_core::TraceHeader::from_bytes(v.as_bytes()).ok())
                    .and_then(|h| h.root);
                let ok = res.status() == 200 && res.bytes().await.is_ok();
                id.filter(|_| ok)
            });
        }
        let (mut ids, mut done) = (HashSet::new(), 0);
        while let Some(id) = tasks.join_next().await {
            ids.extend(id.unwrap());
            done += 1;
            if done == REQUESTS / 4 {
                let sent = std::process::Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()
                    .unwrap();
                assert!(sent.success(), "kill -TERM failed");
            }
        }
        ids
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = svc.child.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit}");
    assert!(
        answered.len() >= REQUESTS / 4,
        "{} answered",
        answered.len()
    );
    let docs = svc
        .collector
        .wait_for_documents(answered.len(), Duration::from_secs(5));
    let delivered: HashSet<_> = docs.iter().filter_map(|d| d.trace_id).collect();
    assert!(
        answered.is_subset(&delivered),
        "{} of {} answered requests have no segment at the daemon",
        answered.difference(&delivered).count(),
        answered.len()
    );
}

pub fn bad_sampling_rules_file_is_refused_naming_the_file(bin: &str) {
    let collector = xray_local::Collector::start().unwrap();
    let dir = common::TempDir::new();
    let rules = dir.file("broken-rules.json", "{\"version\": 2, \"rules\": 7}");
    let out = common::command(bin, &collector)
        .args(["--listen", "127.0.0.1:0", "--sampling-rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken-rules.json"), "{stderr}");
}

macro_rules! route_contract {
    ($module:ident, $bin:expr, $name:expr) => {
        mod $module {
            const BIN: &str = $bin;

            #[tokio::test]
            async fn root_answers_ok_with_a_segment_named_after_the_service() {
                super::root_answers_ok_with_a_segment_named_after_the_service(BIN, $name).await
            }
            #[tokio::test]
            async fn name_option_names_the_segment() {
                super::name_option_names_the_segment(BIN).await
            }
            #[tokio::test]
            async fn dynamic_naming_names_the_segment_after_a_matching_host() {
                super::dynamic_naming_names_the_segment_after_a_matching_host(BIN).await
            }
            #[tokio::test]
            async fn status_route_answers_that_status_and_flags_it() {
                super::status_route_answers_that_status_and_flags_it(BIN).await
            }
            #[tokio::test]
            async fn annotated_route_records_annotation_metadata_and_user() {
                super::annotated_route_records_annotation_metadata_and_user(BIN).await
            }
            #[tokio::test]
            async fn work_route_records_n_sequential_steps() {
                super::work_route_records_n_sequential_steps(BIN).await
            }
            #[tokio::test]
            async fn fanout_route_records_n_concurrent_subsegments() {
                super::fanout_route_records_n_concurrent_subsegments(BIN).await
            }
            #[tokio::test]
            async fn error_route_answers_500_and_records_fault_with_cause() {
                super::error_route_answers_500_and_records_fault_with_cause(BIN).await
            }
            #[tokio::test]
            async fn panic_route_answers_500_records_the_panic_and_keeps_serving() {
                super::panic_route_answers_500_records_the_panic_and_keeps_serving(BIN).await
            }
            #[tokio::test]
            async fn call_route_answers_the_downstream_status_and_records_a_remote_call() {
                super::call_route_answers_the_downstream_status_and_records_a_remote_call(BIN).await
            }
            #[tokio::test]
            async fn call_route_answers_502_on_a_transport_error() {
                super::call_route_answers_502_on_a_transport_error(BIN).await
            }
            #[tokio::test]
            async fn sampling_rules_file_decides() {
                super::sampling_rules_file_decides(BIN).await
            }
            #[tokio::test]
            async fn rules_served_by_the_daemon_decide_over_the_local_file() {
                super::rules_served_by_the_daemon_decide_over_the_local_file(BIN).await
            }
            #[test]
            fn sigterm_stops_the_service_cleanly_after_flushing() {
                super::sigterm_stops_the_service_cleanly_after_flushing(BIN)
            }
            #[test]
            fn sigterm_during_a_burst_still_delivers_a_segment_per_answered_request() {
                super::sigterm_during_a_burst_still_delivers_a_segment_per_answered_request(BIN)
            }
            #[test]
            fn bad_sampling_rules_file_is_refused_naming_the_file() {
                super::bad_sampling_rules_file_is_refused_naming_the_file(BIN)
            }
        }
    };
}

route_contract!(
    axum_service,
    env!("CARGO_BIN_EXE_axum-service"),
    "axum-service"
);
route_contract!(
    actix_service,
    env!("CARGO_BIN_EXE_actix-service"),
    "actix-service"
);
