//! The `tracing-subscriber` layer that turns spans into subsegments.

use std::sync::Arc;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;
use xray_core::{context, Entity};

use crate::fault::ErrorVisitor;
use crate::fields::FieldMapping;

/// Targets whose spans are never recorded by default: X-Ray's own crates, and the AWS SDK,
/// whose calls `xray-aws-sdk` already records as subsegments.
const DEFAULT_SKIPPED: &[&str] = &[
    "xray_core",
    "xray_tower",
    "xray_actix",
    "xray_reqwest",
    "xray_aws_sdk",
    "xray_lambda",
    "xray_tracing",
    "xray_local",
    "aws_smithy_runtime",
    "aws_sdk_",
    "aws_config",
];

/// A [`Layer`] that records `tracing` spans as X-Ray subsegments; see the
/// [crate docs](crate).
///
/// Cheap to clone: the settings sit behind an `Arc`.
///
/// [`Layer`]: tracing_subscriber::Layer
#[derive(Clone, Debug)]
#[must_use = "a layer does nothing until it is added to a subscriber"]
pub struct SubsegmentLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    max_level: LevelFilter,
    skipped: Vec<String>,
    fields: FieldMapping,
    faults: bool,
}

/// What the layer keeps in a span's extensions: the subsegment it opened for the span.
#[derive(Debug)]
pub(crate) struct SpanSubsegment(pub(crate) Entity);

impl Default for SubsegmentLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SubsegmentLayer {
    /// Records spans at `INFO` and more severe levels (what `#[instrument]` and `info_span!`
    /// create), except those of the default skipped targets, with the default
    /// [`FieldMapping`], and turns error events into faults.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                max_level: LevelFilter::INFO,
                skipped: DEFAULT_SKIPPED.iter().map(|s| s.to_string()).collect(),
                fields: FieldMapping::new(),
                faults: true,
            }),
        }
    }

    /// Records spans up to this verbosity (`LevelFilter::DEBUG` adds `debug_span!`s, which
    /// libraries use a lot). Spans more verbose than this still pass through: code inside
    /// them stays attached to the nearest recorded span.
    pub fn max_level(mut self, level: impl Into<LevelFilter>) -> Self {
        Arc::make_mut(&mut self.config).max_level = level.into();
        self
    }

    /// Never records spans whose target (usually the module path) starts with `prefix`.
    /// Added to the defaults: X-Ray's own crates and the AWS SDK (`aws_smithy_runtime`,
    /// `aws_sdk_*`, `aws_config`), whose calls `xray-aws-sdk` records.
    pub fn skip_target(mut self, prefix: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).skipped.push(prefix.into());
        self
    }

    /// How span fields are recorded; see [`FieldMapping`].
    pub fn fields(mut self, mapping: FieldMapping) -> Self {
        Arc::make_mut(&mut self.config).fields = mapping;
        self
    }

    /// Whether an `ERROR` event with an `error` field (what `#[instrument(err)]` emits) marks
    /// the subsegment of its span with `fault` and the error as cause. On by default.
    pub fn record_errors(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.config).faults = yes;
        self
    }
}

impl Config {
    fn records(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.max_level && !self.skips(meta.target())
    }

    fn skips(&self, target: &str) -> bool {
        self.skipped.iter().any(|p| target.starts_with(p.as_str()))
    }
}

/// The subsegment recorded for `span` or, failing that, for its nearest ancestor.
fn nearest<S>(span: Option<SpanRef<'_, S>>) -> Option<Entity>
where
    S: for<'a> LookupSpan<'a>,
{
    span?
        .scope()
        .find_map(|s| s.extensions().get::<SpanSubsegment>().map(|x| x.0.clone()))
}

fn recorded<S>(ctx: &Context<'_, S>, id: &Id) -> Option<Entity>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.span(id)?
        .extensions()
        .get::<SpanSubsegment>()
        .map(|x| x.0.clone())
}

impl<S> Layer<S> for SubsegmentLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !self.config.records(attrs.metadata()) {
            return;
        }
        // A span with an explicit parent nests under that parent's subsegment. Otherwise the
        // current entity is the most precise parent: it is the current span's subsegment, or
        // something opened inside it (a `capture`, a nested segment scope).
        let parent = match attrs.parent() {
            Some(parent) => nearest(ctx.span(parent)).or_else(context::current),
            None if attrs.is_contextual() => {
                context::current().or_else(|| nearest(ctx.lookup_current()))
            }
            None => context::current(),
        };
        // Unsampled traces record nothing: the parent stays current inside the span, and
        // outbound calls still carry its trace id with `Sampled=0`.
        let Some(parent) = parent.filter(Entity::is_sampled) else {
            return;
        };
        let Some(span) = ctx.span(id) else {
            return;
        };
        let sub = parent.begin_subsegment(attrs.metadata().name());
        self.config.fields.record(&sub, attrs);
        span.extensions_mut().insert(SpanSubsegment(sub));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(sub) = recorded(&ctx, id) {
            self.config.fields.record(&sub, values);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(sub) = recorded(&ctx, id) {
            context::enter_unguarded(sub);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(sub) = recorded(&ctx, id) {
            context::exit(&sub);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let sub = span.extensions_mut().remove::<SpanSubsegment>();
        if let Some(SpanSubsegment(sub)) = sub {
            sub.end();
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        // X-Ray's own diagnostics never mark the work they describe as failed.
        if !self.config.faults || *meta.level() != Level::ERROR || self.config.skips(meta.target())
        {
            return;
        }
        let Some(sub) = nearest(ctx.event_span(event)) else {
            return;
        };
        if !sub.is_sampled() {
            return;
        }
        let mut visitor = ErrorVisitor::default();
        event.record(&mut visitor);
        if !visitor.exceptions.is_empty() {
            sub.add_exceptions(visitor.exceptions, true);
        }
    }
}
