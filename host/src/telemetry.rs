//! Metrics and traces of plugin calls and storage, for the dashboards an
//! operator already has.
//!
//! **Metrics** go through the [`metrics`](https://docs.rs/metrics) facade:
//! nothing is recorded until the application installs a recorder (the
//! Prometheus exporter, OpenTelemetry's, or any other), and without one the
//! instrumentation costs a few branches per call. Install the recorder
//! before the first call: Cubby registers each series once, on first use,
//! with the recorder installed then. The names, types and labels are in
//! [`names`] and in the README's table; [`describe`] gives the recorder
//! their units and help texts.
//!
//! No metric carries the workspace by default (a deployment may have
//! millions); [`set_workspace_label`] adds it to the call and storage
//! metrics for deployments with few.
//!
//! **Traces**: each plugin call is a `tracing` span `cubby.call` at info
//! level (fields `plugin`, `workspace`, and, when it ends, `outcome` and
//! `duration_ms`), and each storage operation a span `cubby.storage` at
//! debug level inside it (`operation`, `backend`, `outcome`), so a
//! `tracing-opentelemetry` layer exports them as they are.
//!
//! Both are compiled out without the crate's `metrics` feature (on by
//! default).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The names of Cubby's metrics, as Prometheus and OpenTelemetry name them
/// (`_total` for counters, the unit as a suffix).
pub mod names {
    /// Counter: plugin calls ended, by `plugin` and `outcome` (`ok`,
    /// `plugin-error`, `trap`, `timeout`, `memory-limit`, `busy`,
    /// `wrong-export`, `host-error`, and `cancelled` for an async call whose
    /// future was dropped before it ended).
    pub const PLUGIN_CALLS: &str = "cubby_plugin_calls_total";
    /// Histogram, seconds: how long a plugin call took, from the call to its
    /// answer (waiting for an instance slot included), by `plugin` and
    /// `outcome`.
    pub const PLUGIN_CALL_DURATION: &str = "cubby_plugin_call_duration_seconds";
    /// Gauge: instance-pool slots held by running calls, summed over the
    /// process's runtimes.
    pub const INSTANCE_SLOTS_IN_USE: &str = "cubby_instance_pool_slots_in_use";
    /// Gauge: instance-pool slots, summed over the process's runtimes.
    pub const INSTANCE_SLOTS: &str = "cubby_instance_pool_slots";
    /// Counter: storage operations ended, by `operation` (`get`, `set`,
    /// `transaction`, …), `backend` (`redb`, `postgres`) and `outcome`
    /// (`ok`, the error names plugins see such as `quota-exceeded` and
    /// `conflict`, and the host's failures: `unavailable`, `disk-full`,
    /// `corrupt`, `backend-error`, `closed`, `internal`).
    pub const STORAGE_OPERATIONS: &str = "cubby_storage_operations_total";
    /// Counter, bytes: value bytes read from the backend, by `backend`.
    pub const STORAGE_READ_BYTES: &str = "cubby_storage_read_bytes_total";
    /// Counter, bytes: value bytes written to the backend, by `backend`.
    pub const STORAGE_WRITTEN_BYTES: &str = "cubby_storage_written_bytes_total";
    /// Histogram: write requests acknowledged by one commit, by `backend`
    /// (redb groups concurrent writes; PostgreSQL commits each alone).
    pub const COMMIT_GROUP_SIZE: &str = "cubby_storage_commit_group_size";
    /// Counter: commits made durable before they were acknowledged (an
    /// fsync on redb), by `backend`.
    pub const DURABLE_COMMITS: &str = "cubby_storage_durable_commits_total";
    /// Histogram, seconds: waiting for a PostgreSQL connection from the
    /// pool (every request, including those that did not wait).
    pub const POSTGRES_POOL_WAIT: &str = "cubby_postgres_pool_wait_seconds";
    /// Counter: PostgreSQL requests tried again, by `reason`
    /// (`serialization-failure`, `connection-lost`).
    pub const POSTGRES_RETRIES: &str = "cubby_postgres_retries_total";
    /// Counter: PostgreSQL requests that failed as unavailable, by `reason`
    /// (`pool` — no connection in time or none could be made,
    /// `connection-lost`, `statement-timeout`, `serialization-failures`).
    pub const POSTGRES_UNAVAILABLE: &str = "cubby_postgres_unavailable_total";
    /// Counter: expired entries the sweeper removed, by `backend`.
    pub const SWEEPER_REMOVED: &str = "cubby_sweeper_removed_entries_total";
}

static WORKSPACE_LABEL: AtomicBool = AtomicBool::new(false);

/// Adds a `workspace` label to the call and storage metrics (off by
/// default). Only for deployments with few workspaces: every workspace then
/// makes series of its own, and a labelled series is looked up on every
/// call instead of once.
pub fn set_workspace_label(on: bool) {
    WORKSPACE_LABEL.store(on, Ordering::Relaxed);
}

fn workspace_label() -> bool {
    WORKSPACE_LABEL.load(Ordering::Relaxed)
}

/// Gives the installed recorder the unit and help text of every metric in
/// [`names`] (Prometheus shows them as `# HELP` lines). Call it once, after
/// installing the recorder.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        use names::*;
        describe_counter!(PLUGIN_CALLS, Unit::Count, "Plugin calls ended, by outcome");
        describe_histogram!(
            PLUGIN_CALL_DURATION,
            Unit::Seconds,
            "Duration of plugin calls, waiting for a slot included"
        );
        describe_gauge!(
            INSTANCE_SLOTS_IN_USE,
            Unit::Count,
            "Instance-pool slots in use"
        );
        describe_gauge!(INSTANCE_SLOTS, Unit::Count, "Instance-pool slots");
        describe_counter!(STORAGE_OPERATIONS, Unit::Count, "Storage operations ended");
        describe_counter!(STORAGE_READ_BYTES, Unit::Bytes, "Value bytes read");
        describe_counter!(STORAGE_WRITTEN_BYTES, Unit::Bytes, "Value bytes written");
        describe_histogram!(
            COMMIT_GROUP_SIZE,
            Unit::Count,
            "Write requests acknowledged by one commit"
        );
        describe_counter!(DURABLE_COMMITS, Unit::Count, "Commits flushed to disk");
        describe_histogram!(
            POSTGRES_POOL_WAIT,
            Unit::Seconds,
            "Wait for a PostgreSQL connection"
        );
        describe_counter!(POSTGRES_RETRIES, Unit::Count, "PostgreSQL requests retried");
        describe_counter!(
            POSTGRES_UNAVAILABLE,
            Unit::Count,
            "PostgreSQL requests failed as unavailable"
        );
        describe_counter!(SWEEPER_REMOVED, Unit::Count, "Expired entries swept");
    }
}

#[cfg(feature = "metrics")]
pub(crate) use metrics::{Counter, Gauge, Histogram};

#[cfg(not(feature = "metrics"))]
pub(crate) use off::{Counter, Gauge, Histogram};

/// The handles' shapes when the instrumentation is compiled out.
#[cfg(not(feature = "metrics"))]
mod off {
    #[derive(Clone)]
    pub struct Counter;
    impl Counter {
        #[inline(always)]
        pub fn increment(&self, _: u64) {}
    }
    #[derive(Clone)]
    pub struct Gauge;
    impl Gauge {
        #[inline(always)]
        pub fn increment(&self, _: f64) {}
        #[inline(always)]
        pub fn decrement(&self, _: f64) {}
    }
    #[derive(Clone)]
    pub struct Histogram;
    impl Histogram {
        #[inline(always)]
        pub fn record(&self, _: f64) {}
    }
}

/// Labels: names and values.
pub(crate) type Labels<'a> = &'a [(&'static str, &'a str)];

#[cfg(feature = "metrics")]
fn owned(labels: Labels<'_>) -> Vec<metrics::Label> {
    labels
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, (*v).to_owned()))
        .collect()
}

/// The counter `name` with `labels`, from the installed recorder.
#[cfg_attr(not(feature = "metrics"), inline(always))]
pub(crate) fn counter(name: &'static str, labels: Labels<'_>) -> Counter {
    #[cfg(feature = "metrics")]
    return metrics::counter!(name, owned(labels));
    #[cfg(not(feature = "metrics"))]
    {
        let _ = (name, labels);
        Counter
    }
}

/// The gauge `name` with `labels`, from the installed recorder.
#[cfg_attr(not(feature = "metrics"), inline(always))]
pub(crate) fn gauge(name: &'static str, labels: Labels<'_>) -> Gauge {
    #[cfg(feature = "metrics")]
    return metrics::gauge!(name, owned(labels));
    #[cfg(not(feature = "metrics"))]
    {
        let _ = (name, labels);
        Gauge
    }
}

/// The histogram `name` with `labels`, from the installed recorder.
#[cfg_attr(not(feature = "metrics"), inline(always))]
pub(crate) fn histogram(name: &'static str, labels: Labels<'_>) -> Histogram {
    #[cfg(feature = "metrics")]
    return metrics::histogram!(name, owned(labels));
    #[cfg(not(feature = "metrics"))]
    {
        let _ = (name, labels);
        Histogram
    }
}

/// A start time, kept only when the instrumentation is compiled in.
#[derive(Clone, Copy)]
pub(crate) struct Timer {
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
}

impl Timer {
    #[inline]
    pub fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            start: std::time::Instant::now(),
        }
    }

    /// Seconds since the start (0 when compiled out).
    #[inline]
    pub fn seconds(&self) -> f64 {
        #[cfg(feature = "metrics")]
        return self.start.elapsed().as_secs_f64();
        #[cfg(not(feature = "metrics"))]
        0.0
    }
}

/// How a plugin call ended, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    Ok,
    PluginError,
    Trap,
    Timeout,
    MemoryLimit,
    Busy,
    WrongExport,
    HostError,
    Cancelled,
}

impl CallOutcome {
    const ALL: usize = 9;

    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::PluginError => "plugin-error",
            Self::Trap => "trap",
            Self::Timeout => "timeout",
            Self::MemoryLimit => "memory-limit",
            Self::Busy => "busy",
            Self::WrongExport => "wrong-export",
            Self::HostError => "host-error",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One plugin's call metrics: each outcome's series, registered on first
/// use.
pub(crate) struct CallMetrics {
    plugin: String,
    series: [OnceLock<(Counter, Histogram)>; CallOutcome::ALL],
}

impl CallMetrics {
    pub fn new(plugin: &str) -> Self {
        Self {
            plugin: plugin.to_owned(),
            series: Default::default(),
        }
    }

    /// Counts a call that ended with `outcome` after `timer` started.
    pub fn record(&self, workspace: &str, outcome: CallOutcome, timer: Timer) {
        let seconds = timer.seconds();
        if workspace_label() {
            let labels = [
                ("plugin", self.plugin.as_str()),
                ("outcome", outcome.name()),
                ("workspace", workspace),
            ];
            counter(names::PLUGIN_CALLS, &labels).increment(1);
            histogram(names::PLUGIN_CALL_DURATION, &labels).record(seconds);
            return;
        }
        let (calls, duration) = self.series[outcome as usize].get_or_init(|| {
            let labels = [
                ("plugin", self.plugin.as_str()),
                ("outcome", outcome.name()),
            ];
            (
                counter(names::PLUGIN_CALLS, &labels),
                histogram(names::PLUGIN_CALL_DURATION, &labels),
            )
        });
        calls.increment(1);
        duration.record(seconds);
    }
}

/// A runtime's instance-pool gauges.
pub(crate) struct PoolMetrics {
    in_use: Gauge,
    slots: Gauge,
    size: f64,
}

impl PoolMetrics {
    pub fn new(slots: u32) -> Self {
        let metrics = Self {
            in_use: gauge(names::INSTANCE_SLOTS_IN_USE, &[]),
            slots: gauge(names::INSTANCE_SLOTS, &[]),
            size: f64::from(slots),
        };
        metrics.slots.increment(metrics.size);
        metrics
    }

    /// A slot was taken; [`released`](Self::released) follows.
    pub fn taken(&self) {
        self.in_use.increment(1.0);
    }

    pub fn released(&self) {
        self.in_use.decrement(1.0);
    }
}

impl Drop for PoolMetrics {
    fn drop(&mut self) {
        self.slots.decrement(self.size);
    }
}

#[cfg(feature = "metrics")]
pub(crate) use storage::{StorageMetrics, StorageOp, storage_outcome, storage_span};

/// The storage operations' metrics and spans (used by the engine's
/// instrumented backend, which exists only with the feature).
#[cfg(feature = "metrics")]
mod storage {
    use std::sync::OnceLock;

    use super::{Counter, counter, names, workspace_label};
    use crate::engine::StorageError;

    /// The `outcome` label of a storage operation that failed.
    pub(crate) fn storage_outcome(e: &StorageError) -> &'static str {
        match e {
            StorageError::Unavailable(_) => "unavailable",
            StorageError::DiskFull(_) => "disk-full",
            StorageError::Corrupt(_) => "corrupt",
            StorageError::Backend(_) => "backend-error",
            StorageError::Closed => "closed",
            StorageError::InvalidWorkspace { .. } | StorageError::Internal(_) => "internal",
            other => other.kind().name(),
        }
    }

    /// Every `outcome` label of a storage operation, for the series table.
    pub(super) const STORAGE_OUTCOMES: usize = 17;

    /// Where an outcome's series sits in the table (`None`: a name not in it,
    /// registered on every use).
    pub(super) fn storage_outcome_index(outcome: &str) -> Option<usize> {
        // "ok" first: it is by far the most common.
        const NAMES: [&str; STORAGE_OUTCOMES] = [
            "ok",
            "invalid-key",
            "invalid-namespace",
            "value-too-large",
            "quota-exceeded",
            "invalid-cursor",
            "not-a-counter",
            "overflow",
            "too-many-operations",
            "conflict",
            "invalid-argument",
            "unavailable",
            "disk-full",
            "corrupt",
            "backend-error",
            "closed",
            "internal",
        ];
        NAMES.iter().position(|n| *n == outcome)
    }

    /// A storage operation, as the `operation` label names it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum StorageOp {
        Get,
        GetMany,
        ListKeys,
        ListNamespaces,
        Usage,
        Workspaces,
        Set,
        Delete,
        Increment,
        Expire,
        Renew,
        Check,
        SetMany,
        DeleteMany,
        Transaction,
        PublishStream,
        OpenStream,
        WriteChunk,
        DropStream,
        ReadChunk,
        Clear,
        RemoveWorkspace,
        ReadQuota,
        WriteQuota,
        ListQuotas,
        Export,
        Import,
    }

    impl StorageOp {
        const ALL: usize = 27;

        pub fn name(self) -> &'static str {
            match self {
                Self::Get => "get",
                Self::GetMany => "get-many",
                Self::ListKeys => "list-keys",
                Self::ListNamespaces => "list-namespaces",
                Self::Usage => "usage",
                Self::Workspaces => "list-workspaces",
                Self::Set => "set",
                Self::Delete => "delete",
                Self::Increment => "increment",
                Self::Expire => "expire",
                Self::Renew => "renew",
                Self::Check => "check",
                Self::SetMany => "set-many",
                Self::DeleteMany => "delete-many",
                Self::Transaction => "transaction",
                Self::PublishStream => "publish-stream",
                Self::OpenStream => "open-stream",
                Self::WriteChunk => "write-chunk",
                Self::DropStream => "drop-stream",
                Self::ReadChunk => "read-chunk",
                Self::Clear => "clear",
                Self::RemoveWorkspace => "remove-workspace",
                Self::ReadQuota => "read-quota",
                Self::WriteQuota => "write-quota",
                Self::ListQuotas => "list-quotas",
                Self::Export => "export",
                Self::Import => "import",
            }
        }
    }

    /// One storage's metrics: each operation and outcome's counter, and the
    /// byte counters, registered on first use.
    pub(crate) struct StorageMetrics {
        backend: &'static str,
        operations: Vec<OnceLock<Counter>>,
        read: OnceLock<Counter>,
        written: OnceLock<Counter>,
    }

    impl StorageMetrics {
        pub fn new(backend: &'static str) -> Self {
            Self {
                backend,
                operations: (0..StorageOp::ALL * STORAGE_OUTCOMES)
                    .map(|_| OnceLock::new())
                    .collect(),
                read: OnceLock::new(),
                written: OnceLock::new(),
            }
        }

        pub fn backend(&self) -> &'static str {
            self.backend
        }

        /// Counts one operation on `workspace` that ended with `outcome`, and
        /// the value bytes it read and wrote.
        #[inline]
        pub fn record(
            &self,
            op: StorageOp,
            workspace: &str,
            outcome: &'static str,
            bytes: (u64, u64),
        ) {
            let (read, written) = bytes;
            if workspace_label() {
                let labels = [
                    ("operation", op.name()),
                    ("backend", self.backend),
                    ("outcome", outcome),
                    ("workspace", workspace),
                ];
                counter(names::STORAGE_OPERATIONS, &labels).increment(1);
                let labels = [("backend", self.backend), ("workspace", workspace)];
                if read > 0 {
                    counter(names::STORAGE_READ_BYTES, &labels).increment(read);
                }
                if written > 0 {
                    counter(names::STORAGE_WRITTEN_BYTES, &labels).increment(written);
                }
                return;
            }
            let register = || {
                counter(
                    names::STORAGE_OPERATIONS,
                    &[
                        ("operation", op.name()),
                        ("backend", self.backend),
                        ("outcome", outcome),
                    ],
                )
            };
            match storage_outcome_index(outcome) {
                Some(i) => self.operations[op as usize * STORAGE_OUTCOMES + i]
                    .get_or_init(register)
                    .increment(1),
                None => register().increment(1),
            }
            let labels = [("backend", self.backend)];
            if read > 0 {
                self.read
                    .get_or_init(|| counter(names::STORAGE_READ_BYTES, &labels))
                    .increment(read);
            }
            if written > 0 {
                self.written
                    .get_or_init(|| counter(names::STORAGE_WRITTEN_BYTES, &labels))
                    .increment(written);
            }
        }
    }

    /// The span of one storage operation.
    #[inline]
    pub(crate) fn storage_span(op: StorageOp, backend: &'static str) -> tracing::Span {
        tracing::debug_span!(
            "cubby.storage",
            operation = op.name(),
            backend,
            outcome = tracing::field::Empty,
        )
    }
}

/// A backend's commit metrics, registered on first use.
pub(crate) struct CommitMetrics {
    backend: &'static str,
    group: OnceLock<(Histogram, Counter)>,
}

impl CommitMetrics {
    pub fn new(backend: &'static str) -> Self {
        Self {
            backend,
            group: OnceLock::new(),
        }
    }

    /// One commit that acknowledged `writes` write requests.
    pub fn committed(&self, writes: u64, durable: bool) {
        let (size, durables) = self.group.get_or_init(|| {
            let labels = [("backend", self.backend)];
            (
                histogram(names::COMMIT_GROUP_SIZE, &labels),
                counter(names::DURABLE_COMMITS, &labels),
            )
        });
        if writes > 0 {
            size.record(writes as f64);
        }
        if durable {
            durables.increment(1);
        }
    }
}

/// What the sweeper removed from `backend`.
pub(crate) fn swept(backend: &'static str, entries: u64) {
    if entries > 0 {
        counter(names::SWEEPER_REMOVED, &[("backend", backend)]).increment(entries);
    }
}

/// One wait for a PostgreSQL connection.
pub(crate) fn postgres_pool_wait(timer: Timer) {
    histogram(names::POSTGRES_POOL_WAIT, &[]).record(timer.seconds());
}

/// A PostgreSQL request tried again.
pub(crate) fn postgres_retry(reason: &'static str) {
    counter(names::POSTGRES_RETRIES, &[("reason", reason)]).increment(1);
}

/// A PostgreSQL request failed as unavailable.
pub(crate) fn postgres_unavailable(reason: &'static str) {
    counter(names::POSTGRES_UNAVAILABLE, &[("reason", reason)]).increment(1);
}

/// The span of one plugin call (a disabled span when compiled out).
#[inline]
pub(crate) fn call_span(plugin: &str, workspace: &str) -> tracing::Span {
    #[cfg(feature = "metrics")]
    return tracing::info_span!(
        "cubby.call",
        plugin,
        workspace,
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    #[cfg(not(feature = "metrics"))]
    {
        let _ = (plugin, workspace);
        tracing::Span::none()
    }
}

/// Records how a call ended on its span.
#[inline]
pub(crate) fn end_call_span(span: &tracing::Span, outcome: CallOutcome, timer: Timer) {
    if !span.is_disabled() {
        span.record("outcome", outcome.name());
        span.record("duration_ms", timer.seconds() * 1e3);
    }
}

#[cfg(all(test, feature = "metrics"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::storage::*;
    use crate::engine::StorageError;

    #[test]
    fn every_storage_outcome_has_its_own_series() {
        let errors = [
            StorageError::InvalidKey(String::new()),
            StorageError::InvalidNamespace(String::new()),
            StorageError::QuotaExceeded(String::new()),
            StorageError::InvalidCursor,
            StorageError::NotACounter,
            StorageError::Overflow,
            StorageError::InvalidArgument(String::new()),
            StorageError::Corrupt(String::new()),
            StorageError::Closed,
            StorageError::Internal(String::new()),
        ];
        let mut seen: Vec<usize> = errors
            .iter()
            .map(|e| storage_outcome_index(storage_outcome(e)).unwrap())
            .chain([storage_outcome_index("ok").unwrap()])
            .collect();
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), n, "two outcomes share a series");
    }
}
