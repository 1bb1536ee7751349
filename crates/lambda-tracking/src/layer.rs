//! A `tracing` layer that writes every event as one JSON line carrying the correlation ID
//! of the invocation it happened in.
//!
//! Why a layer of its own instead of `tracing_subscriber::fmt().json()`: the fmt JSON
//! format puts span fields under `span`/`spans`, and the record format needs
//! `correlation_id` at the top level of every line, where CloudWatch filter patterns,
//! Powertools-style tooling and the operator look for it.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::record::{self, InvocationIds, CORRELATION_FIELD, REQUEST_ID_FIELD};

/// Writes each `tracing` event as a JSON line (see the crate docs for the fields).
/// Built by [`crate::Tracking::layer`].
#[derive(Clone, Debug)]
pub struct TrackingLayer<W> {
    make_writer: W,
}

impl<W> TrackingLayer<W> {
    pub(crate) fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

impl<S, W> Layer<S> for TrackingLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut ids = SpanIds::default();
        attrs.record(&mut ids);
        if ids.0 != InvocationIds::default() {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(ids);
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        // A span may declare `correlation_id = Empty` and record it once known.
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(ids) = extensions.get_mut::<SpanIds>() {
            values.record(ids);
        } else {
            let mut ids = SpanIds::default();
            values.record(&mut ids);
            if ids.0 != InvocationIds::default() {
                extensions.insert(ids);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = record::base(metadata.level().as_str(), "");
        line.remove("message"); // the event's own `message` field, when it has one
        line.insert("target".into(), metadata.target().into());
        line.extend(fields.0);
        invocation_ids(event, &ctx).add_to(&mut line);
        record::write_line(&self.make_writer, &line);
    }
}

/// The ids of the innermost spans around `event` that have them.
fn invocation_ids<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> InvocationIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut found = InvocationIds::default();
    let Some(scope) = ctx.event_scope(event) else {
        return found;
    };
    for span in scope {
        if let Some(SpanIds(ids)) = span.extensions().get::<SpanIds>() {
            if found.correlation_id.is_none() {
                found.correlation_id.clone_from(&ids.correlation_id);
            }
            if found.request_id.is_none() {
                found.request_id.clone_from(&ids.request_id);
            }
        }
    }
    found
}

/// The correlation and request ids a span was given, kept in its extensions.
#[derive(Default)]
struct SpanIds(InvocationIds);

impl Visit for SpanIds {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            CORRELATION_FIELD => self.0.correlation_id = Some(value.to_owned()),
            REQUEST_ID_FIELD => self.0.request_id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` and `?value` arrive here; Display-formatted ids must not gain quotes.
        let text = format!("{value:?}");
        self.record_str(field, text.trim_matches('"'));
    }
}

/// An event's fields as JSON values.
#[derive(Default)]
struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
