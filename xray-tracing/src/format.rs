//! Log correlation: the X-Ray trace id in every log line.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use xray_core::{context, Entity, EntityId, TraceId};

use crate::layer::SpanSubsegment;

/// The X-Ray ids a log line is about: the trace, and the segment or subsegment the code was
/// running in.
///
/// Its `Display` form is `trace_id=1-5759e988-bd862e3fe1be46a994272793 segment_id=53995c3f42cd8ad8`,
/// which CloudWatch Logs Insights can search and parse (`parse @message "trace_id=* "`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceIds {
    /// The trace id, `1-{8 hex}-{24 hex}`.
    pub trace_id: TraceId,
    /// The id of the segment or subsegment that was current (like the Java SDK's
    /// `traceId@entityId`, it points at the exact piece of work).
    pub segment_id: EntityId,
}

impl TraceIds {
    fn of(entity: &Entity) -> Self {
        Self {
            trace_id: entity.trace_id(),
            segment_id: entity.id(),
        }
    }
}

impl fmt::Display for TraceIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trace_id={} segment_id={}",
            self.trace_id, self.segment_id
        )
    }
}

/// The ids of the current segment or subsegment, if any. Use it to add the trace id to log
/// formats this crate does not wrap, e.g. a field of a JSON logger:
///
/// ```
/// if let Some(ids) = xray_tracing::current_ids() {
///     tracing::info!(xray_trace_id = %ids.trace_id, "charged");
/// }
/// ```
pub fn current_ids() -> Option<TraceIds> {
    context::current().map(|e| TraceIds::of(&e))
}

/// A [`FormatEvent`] that starts each line with the X-Ray ids of the code that logged it,
/// then formats the event with the wrapped formatter.
///
/// Lines logged outside any segment are left as they are. The ids come from the event's span
/// (as recorded by [`SubsegmentLayer`](crate::SubsegmentLayer)) or, failing that, from the
/// current segment.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(xray_tracing::SubsegmentLayer::new())
///     .with(tracing_subscriber::fmt::layer().event_format(xray_tracing::XRayFormat::default()));
/// // INFO my_app: charged  →  trace_id=1-... segment_id=... 2025-..  INFO my_app: charged
/// # drop(subscriber);
/// ```
///
/// [`FormatEvent`]: tracing_subscriber::fmt::FormatEvent
#[derive(Clone, Debug)]
pub struct XRayFormat<F = Format> {
    inner: F,
}

impl Default for XRayFormat {
    /// Prefixes `tracing-subscriber`'s default (full) format.
    fn default() -> Self {
        Self::new(Format::default())
    }
}

impl<F> XRayFormat<F> {
    /// Prefixes the lines `inner` formats (for example
    /// `tracing_subscriber::fmt::format().compact()`).
    pub fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<S, N, F> FormatEvent<S, N> for XRayFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let from_span = ctx.event_scope().and_then(|mut scope| {
            scope.find_map(|s| {
                s.extensions()
                    .get::<SpanSubsegment>()
                    .map(|x| TraceIds::of(&x.0))
            })
        });
        if let Some(ids) = from_span.or_else(current_ids) {
            write!(writer, "{ids} ")?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}
