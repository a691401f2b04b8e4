//! Work outside a request (`in_segment` and friends) and `begin_subsegment`, checked on the
//! documents a real recorder hands to its emitter.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use xray_core::document::{Cause, Exception};
use xray_core::emitter::MemoryEmitter;
use xray_core::sampling::{AlwaysSample, NeverSample, Sampler, SamplingDecision, SamplingRequest};
use xray_core::{context, Document, Recorder};

fn recorder(sampler: impl Sampler) -> (Recorder, MemoryEmitter) {
    let emitter = MemoryEmitter::new();
    let recorder = Recorder::builder()
        .service_name("svc")
        .sampler(sampler)
        .emitter(emitter.clone())
        .ignore_env()
        .build()
        .unwrap();
    (recorder, emitter)
}

fn only(emitter: &MemoryEmitter) -> Document {
    let mut docs = emitter.documents();
    assert_eq!(docs.len(), 1, "exactly one document: {docs:#?}");
    docs.remove(0)
}

fn exceptions(doc: &Document) -> &[Exception] {
    match &doc.cause {
        Some(Cause::Exceptions(c)) => &c.exceptions,
        other => panic!("expected exceptions in the cause, got {other:?}"),
    }
}

fn ended(doc: &Document) -> bool {
    doc.end_time.is_some() && !doc.in_progress
}

#[derive(Debug)]
struct Refused;
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("upstream refused the batch")
    }
}
impl std::error::Error for Refused {}

#[test]
fn closure_runs_as_a_new_segment_with_nested_captures_as_subsegments() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let out = recorder.in_segment("nightly-report", || {
        let segment = xray_core::current().expect("the segment is current inside");
        assert!(segment.is_segment());
        xray_core::put_annotation("kind", "nightly");
        xray_core::capture("query", || 7)
    });
    assert_eq!(out, 7);
    assert!(xray_core::current().is_none(), "nothing current afterwards");
    let doc = only(&emitter);
    assert_eq!(doc.name, "nightly-report");
    assert!(doc.trace_id.is_some() && doc.parent_id.is_none());
    assert!(ended(&doc));
    assert!(!doc.error && !doc.fault && doc.cause.is_none());
    assert_eq!(doc.annotations["kind"], "nightly");
    assert_eq!(doc.subsegments.len(), 1);
    assert_eq!(doc.subsegments[0].name, "query");
}

#[tokio::test]
async fn future_runs_as_a_new_segment_with_nested_captures_as_subsegments() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let out = recorder
        .in_segment_async("consumer", async {
            tokio::task::yield_now().await;
            xray_core::capture_async("handle", async {
                tokio::task::yield_now().await;
                xray_core::put_annotation("message", "m-1");
                5
            })
            .await
        })
        .await;
    assert_eq!(out, 5);
    let doc = only(&emitter);
    assert_eq!(doc.name, "consumer");
    assert!(ended(&doc) && !doc.fault && !doc.error);
    assert_eq!(doc.subsegments[0].name, "handle");
    assert_eq!(doc.subsegments[0].annotations["message"], "m-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_future_can_be_spawned_and_stays_current_across_threads() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let handle = tokio::spawn(recorder.in_segment_async("job", async {
        let before = xray_core::current().unwrap().id();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(xray_core::current().unwrap().id(), before);
        before
    }));
    let id = handle.await.unwrap();
    assert_eq!(only(&emitter).id, id);
}

#[test]
fn err_is_recorded_as_fault_with_the_error_as_cause_and_returned_unchanged() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let out: Result<(), Refused> = recorder.try_in_segment("import", || Err(Refused));
    assert!(out.is_err());
    let doc = only(&emitter);
    assert!(doc.fault && !doc.error && ended(&doc));
    let ex = &exceptions(&doc)[0];
    assert_eq!(ex.message.as_deref(), Some("upstream refused the batch"));
    assert!(ex.kind.as_deref().unwrap().ends_with("Refused"), "{ex:?}");
    assert!(!ex.remote);

    emitter.clear();
    let ok: Result<u8, Refused> = recorder.try_in_segment("import", || Ok(1));
    assert_eq!(ok.unwrap(), 1);
    let doc = only(&emitter);
    assert!(!doc.fault && doc.cause.is_none());
}

#[tokio::test]
async fn err_of_a_future_is_recorded_as_fault_with_the_error_as_cause() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let out = recorder
        .try_in_segment_async("import", async {
            tokio::task::yield_now().await;
            Err::<(), _>(Refused)
        })
        .await;
    assert!(out.is_err());
    let doc = only(&emitter);
    assert!(doc.fault && ended(&doc));
    assert_eq!(
        exceptions(&doc)[0].message.as_deref(),
        Some("upstream refused the batch")
    );
}

#[test]
fn an_error_already_recorded_by_a_capture_inside_is_referenced_not_repeated() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let _ = recorder.try_in_segment("import", || {
        xray_core::try_capture("upload", || Err::<(), _>(Refused))
    });
    let doc = only(&emitter);
    let sub = &doc.subsegments[0];
    assert!(doc.fault && sub.fault);
    let Some(Cause::Reference(id)) = &doc.cause else {
        panic!(
            "the segment refers to the subsegment's exception: {:?}",
            doc.cause
        )
    };
    assert_eq!(*id, exceptions(sub)[0].id.to_string());
}

#[test]
fn panic_is_recorded_as_fault_and_continues() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let caught = catch_unwind(AssertUnwindSafe(|| {
        recorder.in_segment("crashy", || -> u8 { panic!("disk full") })
    }));
    let payload = caught.expect_err("the panic reaches the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"disk full"));
    assert!(
        xray_core::current().is_none(),
        "the context is clean after the panic"
    );
    let doc = only(&emitter);
    assert!(doc.fault && ended(&doc));
    let ex = &exceptions(&doc)[0];
    assert_eq!(ex.kind.as_deref(), Some("panic"));
    assert_eq!(ex.message.as_deref(), Some("panicked: disk full"));
}

#[tokio::test]
async fn panic_in_a_future_is_recorded_as_fault_and_continues() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let handle = tokio::spawn(recorder.in_segment_async("crashy", async {
        tokio::task::yield_now().await;
        panic!("queue vanished");
    }));
    let err = handle.await.expect_err("the task panicked");
    assert!(err.is_panic());
    let doc = only(&emitter);
    assert!(doc.fault && ended(&doc));
    assert_eq!(exceptions(&doc)[0].kind.as_deref(), Some("panic"));
    assert_eq!(
        exceptions(&doc)[0].message.as_deref(),
        Some("panicked: queue vanished")
    );
}

/// A future that is pending on its first poll and ready on its second.
fn pending_once() -> impl Future<Output = u8> {
    let mut polled = false;
    std::future::poll_fn(move |cx| {
        if polled {
            Poll::Ready(1)
        } else {
            polled = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

#[test]
fn a_future_dropped_before_it_finished_ends_once_as_cancelled() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let mut cx = Context::from_waker(Waker::noop());
    {
        let mut fut = pin!(recorder.in_segment_async("job", async {
            xray_core::capture_async("step", pending_once()).await
        }));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(fut.segment().is_some());
        assert!(emitter.documents().is_empty(), "still running");
        assert!(xray_core::current().is_none(), "current only while polled");
    }
    let doc = only(&emitter);
    assert!(ended(&doc));
    assert!(doc.error && !doc.fault, "cancelled, not failed: {doc:?}");
    assert_eq!(exceptions(&doc)[0].kind.as_deref(), Some("Cancelled"));
    // The capture inside was dropped with it, and ended first, so it travels inside.
    assert_eq!(doc.subsegments.len(), 1);
    assert!(ended(&doc.subsegments[0]));
    // Nothing else is ever sent for it.
    recorder.flush(std::time::Duration::from_millis(100));
    assert_eq!(emitter.documents().len(), 1);
}

#[test]
fn a_future_never_polled_records_nothing() {
    let (recorder, emitter) = recorder(AlwaysSample);
    drop(recorder.in_segment_async("job", async { 1 }));
    assert!(emitter.documents().is_empty());
}

#[test]
fn a_completed_future_ends_once_even_when_polled_again_or_dropped_later() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = Box::pin(recorder.in_segment_async("job", pending_once()));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(1));
    assert!(fut.segment().is_none());
    drop(fut);
    let doc = only(&emitter);
    assert!(ended(&doc) && !doc.error && doc.cause.is_none());
}

#[test]
fn never_sample_records_nothing_but_the_work_runs_unsampled_and_current() {
    let (recorder, emitter) = recorder(NeverSample);
    let header = recorder.in_segment("job", || {
        let segment = xray_core::current().expect("current even when unsampled");
        assert!(!segment.is_sampled());
        xray_core::capture("step", || ());
        segment.outbound_header().to_string()
    });
    assert!(header.ends_with("Sampled=0"), "{header}");
    let _ = recorder.try_in_segment("job", || Err::<(), _>(Refused));
    let _ = catch_unwind(AssertUnwindSafe(|| {
        recorder.in_segment("job", || panic!("x"))
    }));
    assert!(emitter.documents().is_empty());
}

/// Remembers the service names it was asked about.
#[derive(Debug, Default, Clone)]
struct Asked(Arc<Mutex<Vec<String>>>);

impl Sampler for Asked {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        let mut asked = self.0.lock().unwrap();
        asked.push(request.service_name.to_string());
        assert!(request.host.is_none() && request.method.is_none() && request.url_path.is_none());
        // Sample every other one.
        SamplingDecision::new(asked.len() % 2 == 1)
    }
}

#[test]
fn the_sampler_decides_with_the_segment_name_as_service_name() {
    let asked = Asked::default();
    let (recorder, emitter) = recorder(asked.clone());
    recorder.in_segment("first", || ());
    recorder.in_segment("second", || ());
    assert_eq!(*asked.0.lock().unwrap(), ["first", "second"]);
    let docs = emitter.documents();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].name, "first");
}

#[test]
fn work_inside_a_traced_request_is_a_new_trace_and_the_request_stays_current() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let request = recorder.begin_segment("api", None);
    context::sync_scope(request.clone(), || {
        let job_trace = recorder.in_segment("job", || xray_core::current().unwrap().trace_id());
        assert_ne!(job_trace, request.trace_id());
        assert!(xray_core::current().unwrap().same_as(&request));
    });
    request.end();
    let docs = emitter.documents();
    assert_eq!(docs.len(), 2);
    assert!(docs.iter().all(|d| d.subsegments.is_empty()));
}

#[test]
fn in_segment_future_is_send_when_the_work_is() {
    fn assert_send<T: Send>(_: &T) {}
    let (recorder, _) = recorder(AlwaysSample);
    let fut = recorder.in_segment_async("job", async { 1 });
    assert_send(&fut);
}

// ===== begin_subsegment =====

#[test]
fn begin_subsegment_is_current_until_its_guard_drops() {
    let (recorder, emitter) = recorder(AlwaysSample);
    recorder.in_segment("job", || {
        let segment = xray_core::current().unwrap();
        let step = xray_core::begin_subsegment("load").expect("a segment is current");
        assert!(xray_core::current().unwrap().same_as(&step));
        xray_core::put_annotation("rows", 3);
        xray_core::capture("parse", || ());
        drop(step);
        assert!(xray_core::current().unwrap().same_as(&segment));
        xray_core::capture("after", || ());
    });
    let doc = only(&emitter);
    let names: Vec<&str> = doc.subsegments.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["load", "after"]);
    let load = &doc.subsegments[0];
    assert!(ended(load));
    assert_eq!(load.annotations["rows"], 3);
    assert_eq!(load.subsegments[0].name, "parse");
    assert!(doc.annotations.is_empty());
}

#[test]
fn begin_subsegment_guards_nest_and_a_panic_marks_the_subsegment() {
    let (recorder, emitter) = recorder(AlwaysSample);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        recorder.in_segment("job", || {
            let _outer = xray_core::begin_subsegment("outer").unwrap();
            let _inner = xray_core::begin_subsegment("inner").unwrap();
            assert_eq!(xray_core::current().unwrap().id(), _inner.id());
            panic!("boom");
        })
    }));
    assert!(xray_core::current().is_none());
    let doc = only(&emitter);
    let outer = &doc.subsegments[0];
    let inner = &outer.subsegments[0];
    assert_eq!(
        (outer.name.as_str(), inner.name.as_str()),
        ("outer", "inner")
    );
    assert!(inner.fault && outer.fault && doc.fault);
    assert!(ended(inner) && ended(outer) && ended(&doc));
}

#[test]
fn begin_subsegment_without_a_current_entity_returns_none() {
    // The process-wide recorder's context-missing strategy (the default logs) is consulted.
    global();
    assert!(xray_core::begin_subsegment("orphan").is_none());
}

// ===== the process-wide recorder =====

fn global() -> &'static MemoryEmitter {
    static EMITTER: OnceLock<MemoryEmitter> = OnceLock::new();
    EMITTER.get_or_init(|| {
        let (recorder, emitter) = recorder(AlwaysSample);
        Recorder::set_global(recorder).expect("no global recorder yet in this test binary");
        emitter
    })
}

fn global_docs(name: &str) -> Vec<Document> {
    global()
        .documents()
        .into_iter()
        .filter(|d| d.name == name)
        .collect()
}

#[tokio::test]
async fn free_functions_record_with_the_process_wide_recorder() {
    global();
    assert_eq!(xray_core::in_segment("g-sync", || 1), 1);
    let r: Result<(), Refused> = xray_core::try_in_segment("g-try", || Err(Refused));
    assert!(r.is_err());
    assert_eq!(xray_core::in_segment_async("g-async", async { 2 }).await, 2);
    let r = xray_core::try_in_segment_async("g-try-async", async { Err::<(), _>(Refused) }).await;
    assert!(r.is_err());
    assert_eq!(global_docs("g-sync").len(), 1);
    assert!(global_docs("g-try")[0].fault);
    assert_eq!(global_docs("g-async").len(), 1);
    assert!(global_docs("g-try-async")[0].fault);
}
