//! The emitter's worker: takes queued documents, cuts them into `PutTraceSegments` calls,
//! retries what the API throttles, fails or returns unprocessed, and settles each document
//! in the emitter's counters.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_xray::config::http::HttpResponse;
use aws_sdk_xray::error::{ProvideErrorMetadata, SdkError};

use super::batch::{next_call, parts, Part, Settled, MAX_DOCUMENTS_PER_CALL};
use super::queue::Queue;
use super::sdk::Sdk;
use crate::emitter::Counters;

/// How the worker sends; set by the builder.
#[derive(Clone, Debug)]
pub(super) struct Settings {
    /// Most bytes of documents per call.
    pub(super) call_bytes: usize,
    /// Time allowed for one call.
    pub(super) request_timeout: Duration,
    /// Attempts per call when throttled, answered with 5xx or not answered.
    pub(super) attempts: u32,
    /// Times a document returned in `UnprocessedTraceSegments` is sent again.
    pub(super) resends: u32,
    /// How long the worker waits for more documents before sending a partial call.
    pub(super) linger: Duration,
    /// First back-off; doubled per attempt, up to [`MAX_BACKOFF`], with jitter.
    pub(super) backoff: Duration,
}

/// Longest back-off between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often an idle worker looks whether the emitter was dropped.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Thread-safe counters behind [`ApiStats`](super::ApiStats).
#[derive(Debug, Default)]
pub(super) struct ApiCounters {
    pub(super) calls: AtomicU64,
    pub(super) throttled: AtomicU64,
    pub(super) server_errors: AtomicU64,
    pub(super) transport_errors: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) unprocessed: AtomicU64,
    pub(super) resent: AtomicU64,
    pub(super) superseded: AtomicU64,
}

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// 429 or a throttling error code: try again after a back-off.
    Throttled,
    /// 5xx: try again after a back-off.
    Server,
    /// No answer (connection refused, timeout, unreadable response): try again.
    Transport,
    /// The request itself was refused (4xx other than throttling), or could not be built:
    /// sending it again would not help.
    Rejected,
}

fn classify<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Failure {
    match e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            let status = se.raw().status().as_u16();
            if status == 429
                || matches!(
                    code,
                    "ThrottledException"
                        | "ThrottlingException"
                        | "TooManyRequestsException"
                        | "RequestLimitExceeded"
                )
            {
                Failure::Throttled
            } else if status >= 500 || code == "InternalFailure" {
                Failure::Server
            } else {
                Failure::Rejected
            }
        }
        SdkError::ConstructionFailure(_) => Failure::Rejected,
        _ => Failure::Transport,
    }
}

/// The back-off after attempt `n` (1-based): `first` doubled per attempt, at most
/// [`MAX_BACKOFF`], then a random half to all of it (so that many emitters throttled together
/// do not come back together).
pub(super) fn backoff(first: Duration, n: u32) -> Duration {
    let cap = first
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    cap.mul_f64(0.5 + fastrand::f64() / 2.0)
}

pub(super) struct Worker {
    pub(super) queue: Arc<Queue>,
    pub(super) counters: Arc<Counters>,
    pub(super) api: Arc<ApiCounters>,
    pub(super) sdk: Arc<Sdk>,
    pub(super) settings: Settings,
    pending: VecDeque<Part>,
    /// The last call got no answer: later calls get one attempt each until one is answered,
    /// so an unreachable endpoint does not hold documents back for long.
    unreachable: bool,
    /// Documents failed so far, for warnings at powers of two.
    failed: u64,
}

impl Worker {
    pub(super) fn new(
        queue: Arc<Queue>,
        counters: Arc<Counters>,
        api: Arc<ApiCounters>,
        sdk: Arc<Sdk>,
        settings: Settings,
    ) -> Self {
        Self {
            queue,
            counters,
            api,
            sdk,
            settings,
            pending: VecDeque::new(),
            unreachable: false,
            failed: 0,
        }
    }

    pub(super) async fn run(mut self) {
        let client = self.sdk.client().await.clone();
        loop {
            let q = self.queue.clone();
            if self.pending.is_empty() {
                if q.len() == 0 {
                    if q.closed.load(Ordering::Acquire) {
                        break;
                    }
                    let _ = tokio::time::timeout(IDLE_CHECK, q.notify.notified()).await;
                    continue;
                }
                // Documents keep coming: gather a call's worth, unless a flush or the end of
                // the emitter asks for them now.
                if !q.flush_requested.load(Ordering::Acquire)
                    && !q.closed.load(Ordering::Acquire)
                    && q.len() < MAX_DOCUMENTS_PER_CALL
                {
                    let _ = tokio::time::timeout(self.settings.linger, q.notify.notified()).await;
                }
            }
            q.flush_requested.store(false, Ordering::Release);
            let mut settled = 0;
            for doc in q.take_all() {
                let (p, fate) = parts(doc, &self.counters);
                self.pending.extend(p);
                if let Some(fate) = fate {
                    self.count(fate);
                    settled += 1;
                }
            }
            q.finished(settled);
            while !self.pending.is_empty() {
                let call = next_call(&mut self.pending, self.settings.call_bytes);
                let resend = self.send(&client, call).await;
                if resend > 0 {
                    // Documents the API returned unprocessed lead the next call, after a
                    // pause: they were likely turned away for the rate.
                    let n = self.pending.front().map_or(1, |p| p.returned);
                    tokio::time::sleep(backoff(self.settings.backoff, n)).await;
                }
            }
        }
        tracing::debug!("X-Ray API emitter stopped");
    }

    fn count(&mut self, fate: Settled) {
        match fate {
            Settled::Sent => Counters::add(&self.counters.sent, 1),
            Settled::Failed => {
                Counters::add(&self.counters.errors, 1);
                self.failed += 1;
            }
        }
    }

    /// Settles `part`; returns how many documents that finished (0 or 1).
    fn settle(&mut self, part: Part, delivered: bool) -> u64 {
        match part.settle(delivered) {
            Some(fate) => {
                self.count(fate);
                1
            }
            None => 0,
        }
    }

    /// Warns about documents that failed: on the first, then ever more rarely (at powers of
    /// two).
    fn warn_failed(&self, before: u64, why: &str) {
        if self.failed > before && (before == 0 || (before + 1).next_power_of_two() <= self.failed)
        {
            tracing::warn!(
                failed = self.failed,
                reason = why,
                "could not send segments to the X-Ray API (PutTraceSegments); they are lost"
            );
        }
    }

    /// Sends one call, retrying it while the API throttles, fails with 5xx or does not
    /// answer; settles its documents, or puts those returned unprocessed back at the front
    /// of the pending ones. Returns how many were put back.
    async fn send(&mut self, client: &aws_sdk_xray::Client, call: Vec<Part>) -> usize {
        let documents: Vec<String> = call.iter().map(|p| p.body.clone()).collect();
        let attempts = if self.unreachable {
            1
        } else {
            self.settings.attempts.max(1)
        };
        let mut attempt = 0;
        let (failure, detail) = loop {
            attempt += 1;
            Counters::add(&self.api.calls, 1);
            let request = client
                .put_trace_segments()
                .set_trace_segment_documents(Some(documents.clone()))
                .customize()
                .config_override(super::sdk::no_sdk_retries())
                .send();
            let (failure, detail) =
                match tokio::time::timeout(self.settings.request_timeout, request).await {
                    Ok(Ok(out)) => {
                        self.unreachable = false;
                        let unprocessed: Vec<(String, String)> = out
                            .unprocessed_trace_segments()
                            .iter()
                            .map(|u| {
                                let why = format!(
                                    "{}: {}",
                                    u.error_code().unwrap_or("?"),
                                    u.message().unwrap_or("")
                                );
                                (u.id().unwrap_or_default().to_string(), why)
                            })
                            .collect();
                        return self.answered(call, unprocessed);
                    }
                    Ok(Err(e)) => {
                        let detail = aws_sdk_xray::error::DisplayErrorContext(&e).to_string();
                        let f = classify(&e);
                        tracing::debug!(error = %detail, ?f, "PutTraceSegments failed");
                        (f, detail)
                    }
                    Err(_) => (
                        Failure::Transport,
                        format!("no answer within {:?}", self.settings.request_timeout),
                    ),
                };
            let counter = match failure {
                Failure::Throttled => &self.api.throttled,
                Failure::Server => &self.api.server_errors,
                Failure::Transport => &self.api.transport_errors,
                Failure::Rejected => &self.api.rejected,
            };
            Counters::add(counter, 1);
            if failure == Failure::Rejected || attempt >= attempts {
                break (failure, detail);
            }
            tokio::time::sleep(backoff(self.settings.backoff, attempt)).await;
        };
        if failure == Failure::Transport {
            self.unreachable = true;
        }
        let before = self.failed;
        let mut settled = 0;
        for part in call {
            settled += self.settle(part, false);
        }
        self.queue.finished(settled);
        let kind = match failure {
            Failure::Throttled => "throttled",
            Failure::Server => "server error",
            Failure::Transport => "no answer",
            Failure::Rejected => "request refused",
        };
        self.warn_failed(
            before,
            &format!("{kind} after {attempt} attempt(s): {detail}"),
        );
        0
    }

    /// Settles an answered call: documents not listed as unprocessed are delivered; listed
    /// ones are sent again (at most `resends` times) unless they are in-progress segments
    /// whose completed version was delivered or waits to be sent, which supersedes them.
    fn answered(&mut self, call: Vec<Part>, unprocessed: Vec<(String, String)>) -> usize {
        let mut returned: HashMap<String, Vec<String>> = HashMap::new();
        for (id, why) in unprocessed {
            returned.entry(id).or_default().push(why);
        }
        let complete_ids: Vec<String> = call
            .iter()
            .chain(self.pending.iter())
            .filter(|p| !p.in_progress)
            .map(|p| p.id.clone())
            .collect();
        let before = self.failed;
        let mut settled = 0;
        let mut again = Vec::new();
        for mut part in call {
            let why = returned.get_mut(&part.id).and_then(Vec::pop);
            let Some(why) = why else {
                settled += self.settle(part, true);
                continue;
            };
            Counters::add(&self.api.unprocessed, 1);
            if part.in_progress && complete_ids.contains(&part.id) {
                Counters::add(&self.api.superseded, 1);
                settled += self.settle(part, true);
            } else if part.returned < self.settings.resends {
                part.returned += 1;
                Counters::add(&self.api.resent, 1);
                again.push(part);
            } else {
                tracing::debug!(id = %part.id, reason = %why, "X-Ray kept returning a document unprocessed");
                settled += self.settle(part, false);
            }
        }
        for (id, whys) in returned {
            for why in whys {
                tracing::debug!(%id, reason = %why, "X-Ray returned an unprocessed document this emitter did not send");
            }
        }
        self.queue.finished(settled);
        self.warn_failed(before, "returned unprocessed too often");
        let n = again.len();
        for part in again.into_iter().rev() {
            self.pending.push_front(part);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        let first = Duration::from_millis(100);
        for n in 1..=4 {
            let cap = first * (1 << (n - 1));
            for _ in 0..50 {
                let b = backoff(first, n);
                assert!(b >= cap / 2 && b <= cap, "{n}: {b:?}");
            }
        }
        assert!(backoff(first, 40) <= MAX_BACKOFF);
    }
}
