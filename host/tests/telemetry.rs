//! The instrumentation seen from inside the process: a plugin call is one
//! `cubby.call` span whose storage operations are `cubby.storage` spans
//! inside it, whichever thread runs them; metrics carry a `workspace` label
//! only when the application asks for it.
//!
//! One test per concern, each in this binary of its own because the global
//! subscriber and the workspace-label switch are the process's.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cubby_host::telemetry::{self, names};
use cubby_host::{Runtime, Storage, StorageOptions};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// One span as the capture saw it.
#[derive(Debug, Clone)]
struct Seen {
    name: &'static str,
    /// The parent's place in [`Spans::seen`].
    parent: Option<usize>,
    fields: HashMap<String, String>,
}

/// Every span in the order they began, and where each live span's id
/// points (an id may be used again once its span has closed).
#[derive(Debug, Default)]
struct Spans {
    seen: Vec<Seen>,
    live: HashMap<u64, usize>,
}

/// A layer that keeps every span and its fields.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Spans>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|p| p.id().into_u64());
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap();
        let parent = parent.and_then(|p| spans.live.get(&p).copied());
        spans.seen.push(Seen {
            name: attrs.metadata().name(),
            parent,
            fields,
        });
        let at = spans.seen.len() - 1;
        spans.live.insert(id.into_u64(), at);
    }

    fn on_record(&self, id: &Id, values: &tracing::span::Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some(at) = spans.live.get(&id.into_u64()).copied() {
            values.record(&mut Fields(&mut spans.seen[at].fields));
        }
    }
}

#[test]
fn a_call_is_a_span_and_its_storage_operations_are_spans_inside_it() {
    let capture = Capture::default();
    tracing_subscriber::registry()
        .with(capture.clone())
        .try_init()
        .unwrap();
    let storage = Storage::in_memory(StorageOptions::default()).unwrap();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let runtime = Runtime::builder().build().unwrap();
    let probe = tokio
        .block_on(runtime.load_bytes("probe", std::fs::read(cubby_artifacts::PROBE).unwrap()))
        .unwrap();
    let ws = storage.workspace("team-a").unwrap();
    // Blocking; then async, where the write runs on tokio's blocking pool
    // and the read on the calling task.
    probe
        .call_blocking(&ws, br#"{"op":"set","key":"k","value":"v"}"#)
        .unwrap();
    tokio
        .block_on(probe.call(
            &ws,
            br#"{"op":"tx","ops":[{"key":"t","action":"set","value":"1"},{"key":"u","action":"delete"}]}"#,
        ))
        .unwrap();
    tokio
        .block_on(probe.call(&ws, br#"{"op":"get","key":"k"}"#))
        .unwrap();
    let spans = capture.0.lock().unwrap().seen.clone();
    // This test's calls (the other tests of this binary call other plugins).
    let calls: Vec<(usize, &Seen)> = spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.name == "cubby.call" && s.fields["plugin"] == "probe")
        .collect();
    assert_eq!(calls.len(), 3, "{spans:#?}");
    for (at, call) in &calls {
        assert_eq!(call.fields["workspace"], "team-a");
        assert_eq!(call.fields["outcome"], "ok");
        assert!(call.fields["duration_ms"].parse::<f64>().unwrap() > 0.0);
        let inside: Vec<&Seen> = spans
            .iter()
            .filter(|s| s.name == "cubby.storage" && s.parent == Some(*at))
            .collect();
        assert_eq!(inside.len(), 1, "{call:?}: {spans:#?}");
        assert_eq!(inside[0].fields["backend"], "redb");
        assert_eq!(inside[0].fields["outcome"], "ok");
    }
    let operations: Vec<&str> = spans
        .iter()
        .filter(|s| s.name == "cubby.storage")
        .map(|s| s.fields["operation"].as_str())
        .collect();
    for op in ["set", "transaction", "get"] {
        assert!(operations.contains(&op), "{operations:?}");
    }
}

#[test]
fn the_workspace_label_is_there_only_when_asked_for() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let storage = Storage::in_memory(StorageOptions::default()).unwrap();
        storage.workspace("quiet").unwrap().set("k", b"v").unwrap();
        telemetry::set_workspace_label(true);
        storage.workspace("loud").unwrap().set("k", b"v").unwrap();
        telemetry::set_workspace_label(false);
    });
    let text = handle.render();
    let ops: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(names::STORAGE_OPERATIONS))
        .collect();
    assert!(
        ops.iter().any(|l| l.contains(r#"workspace="loud""#)),
        "{text}"
    );
    assert!(!text.contains(r#"workspace="quiet""#), "{text}");
    assert_eq!(
        ops.iter().filter(|l| l.contains("workspace=")).count(),
        1,
        "{text}"
    );
}

#[test]
fn an_async_call_dropped_before_it_ends_is_counted_as_cancelled() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        let storage = Storage::in_memory(StorageOptions::default()).unwrap();
        let runtime = Runtime::builder().build().unwrap();
        let probe = tokio
            .block_on(runtime.load_bytes("spinner", std::fs::read(cubby_artifacts::PROBE).unwrap()))
            .unwrap();
        let ws = storage.workspace("w").unwrap();
        let cut = tokio.block_on(async {
            let call = probe.call(&ws, br#"{"op":"spin"}"#);
            tokio::time::timeout(std::time::Duration::from_millis(200), call).await
        });
        assert!(cut.is_err(), "the spinning call ended: {cut:?}");
    });
    let text = handle.render();
    assert!(
        text.lines().any(|l| l.starts_with(names::PLUGIN_CALLS)
            && l.contains(r#"plugin="spinner""#)
            && l.contains(r#"outcome="cancelled""#)
            && l.ends_with(" 1")),
        "{text}"
    );
}
