//! A backend wrapped so that every operation is counted and traced (see
//! `crate::telemetry`): each call is a debug-level `cubby.storage` span and
//! one count of `cubby_storage_operations_total`, with the value bytes it
//! read or wrote. Upkeep (sweeping, collecting chunks, audits) is not an
//! operation and passes straight through.

use std::sync::Arc;

use super::{
    Backend, ChunkPut, ExportSink, Page, Publish, Published, Row, SweepPass, WriteRequest,
};
use crate::engine::{
    Action, Cleared, CommitStats, Outcome, Quota, StorageError, TransferError, Usage,
};
use crate::telemetry::{StorageMetrics, StorageOp, storage_outcome, storage_span};

/// `inner`, counted and traced.
pub(crate) struct Instrumented {
    inner: Arc<dyn Backend>,
    metrics: StorageMetrics,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        let metrics = StorageMetrics::new(inner.name());
        Self { inner, metrics }
    }

    /// Runs one operation on workspace `ws` inside its span and counts it;
    /// `bytes` says how many value bytes its answer read.
    fn observe<T>(
        &self,
        op: StorageOp,
        ws: &str,
        written: u64,
        bytes: impl FnOnce(&T) -> u64,
        run: impl FnOnce() -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let span = storage_span(op, self.metrics.backend());
        let result = span.in_scope(run);
        let (outcome, read, written) = match &result {
            Ok(answer) => ("ok", bytes(answer), written),
            Err(e) => (storage_outcome(e), 0, 0),
        };
        self.finish(&span, op, ws, outcome, (read, written));
        result
    }

    /// Ends an operation's span with its outcome, and counts it.
    fn finish(
        &self,
        span: &tracing::Span,
        op: StorageOp,
        ws: &str,
        outcome: &'static str,
        bytes: (u64, u64),
    ) {
        if !span.is_disabled() {
            span.record("outcome", outcome);
        }
        self.metrics.record(op, ws, outcome, bytes);
    }
}

/// The bytes of a row's value held in the row (a streamed value's are read
/// as chunks, and counted there).
fn row_bytes(row: &Option<Row>) -> u64 {
    row.as_ref().map_or(0, |r| r.value.len() as u64)
}

fn none<T>(_: &T) -> u64 {
    0
}

/// The operation a write request is, and the value bytes it writes.
fn write_op(request: &WriteRequest) -> (StorageOp, u64) {
    let written = request
        .ops
        .iter()
        .map(|op| match &op.action {
            Action::Set { value, .. } => value.len() as u64,
            _ => 0,
        })
        .sum();
    if request.blob.is_some() {
        return (StorageOp::PublishStream, written);
    }
    let op = match request.ops.as_slice() {
        [one] => match one.action {
            Action::Check => StorageOp::Check,
            Action::Set { .. } => StorageOp::Set,
            Action::Delete => StorageOp::Delete,
            Action::Increment { .. } | Action::IncrementUnsigned { .. } => StorageOp::Increment,
            Action::Expire(_) => StorageOp::Expire,
            Action::Renew(_) => StorageOp::Renew,
        },
        ops if ops.iter().all(|o| matches!(o.action, Action::Set { .. })) => StorageOp::SetMany,
        ops if ops.iter().all(|o| matches!(o.action, Action::Delete)) => StorageOp::DeleteMany,
        _ => StorageOp::Transaction,
    };
    (op, written)
}

impl Backend for Instrumented {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn location(&self) -> &str {
        self.inner.location()
    }

    fn reads_are_local(&self) -> bool {
        self.inner.reads_are_local()
    }

    fn get(&self, ws: &str, ns: &str, key: &str, now_ms: u64) -> Result<Option<Row>, StorageError> {
        self.observe(StorageOp::Get, ws, 0, row_bytes, || {
            self.inner.get(ws, ns, key, now_ms)
        })
    }

    fn get_many(
        &self,
        ws: &str,
        ns: &str,
        keys: &[&str],
        now_ms: u64,
    ) -> Result<Vec<Option<Row>>, StorageError> {
        let bytes = |rows: &Vec<Option<Row>>| rows.iter().map(row_bytes).sum();
        self.observe(StorageOp::GetMany, ws, 0, bytes, || {
            self.inner.get_many(ws, ns, keys, now_ms)
        })
    }

    fn list_keys(
        &self,
        ws: &str,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Page, StorageError> {
        self.observe(StorageOp::ListKeys, ws, 0, none, || {
            self.inner.list_keys(ws, ns, prefix, after, limit, now_ms)
        })
    }

    fn list_namespaces(
        &self,
        ws: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Page, StorageError> {
        self.observe(StorageOp::ListNamespaces, ws, 0, none, || {
            self.inner.list_namespaces(ws, after, limit, now_ms)
        })
    }

    fn usage(&self, ws: &str, ns: Option<&str>, now_ms: u64) -> Result<Usage, StorageError> {
        self.observe(StorageOp::Usage, ws, 0, none, || {
            self.inner.usage(ws, ns, now_ms)
        })
    }

    fn workspaces(&self, now_ms: u64) -> Result<Vec<(String, Usage)>, StorageError> {
        self.observe(StorageOp::Workspaces, "", 0, none, || {
            self.inner.workspaces(now_ms)
        })
    }

    fn write(&self, request: WriteRequest) -> Result<Vec<Outcome>, StorageError> {
        let (op, written) = write_op(&request);
        let ws = request.workspace.clone();
        self.observe(op, &ws, written, none, || self.inner.write(request))
    }

    fn commit_stats(&self) -> CommitStats {
        self.inner.commit_stats()
    }

    fn clear(
        &self,
        ws: &str,
        ns: &str,
        budget: usize,
        now_ms: u64,
    ) -> Result<Cleared, StorageError> {
        self.observe(StorageOp::Clear, ws, 0, none, || {
            self.inner.clear(ws, ns, budget, now_ms)
        })
    }

    fn remove_workspace(
        &self,
        ws: &str,
        budget: usize,
        now_ms: u64,
    ) -> Result<Cleared, StorageError> {
        self.observe(StorageOp::RemoveWorkspace, ws, 0, none, || {
            self.inner.remove_workspace(ws, budget, now_ms)
        })
    }

    fn sweep(
        &self,
        resume: Option<String>,
        budget: usize,
        now_ms: u64,
    ) -> Result<SweepPass, StorageError> {
        self.inner.sweep(resume, budget, now_ms)
    }

    fn open_blob(&self, ws: &str, idle_until_ms: u64, max_open: u32) -> Result<u64, StorageError> {
        self.observe(StorageOp::OpenStream, ws, 0, none, || {
            self.inner.open_blob(ws, idle_until_ms, max_open)
        })
    }

    fn put_chunk(&self, chunk: ChunkPut) -> Result<(), StorageError> {
        let ws = chunk.workspace.clone();
        let written = chunk.data.len() as u64;
        self.observe(StorageOp::WriteChunk, &ws, written, none, || {
            self.inner.put_chunk(chunk)
        })
    }

    fn drop_blob(&self, ws: &str, blob: u64) -> Result<(), StorageError> {
        self.observe(StorageOp::DropStream, ws, 0, none, || {
            self.inner.drop_blob(ws, blob)
        })
    }

    fn read_chunk(&self, ws: &str, blob: u64, index: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let bytes = |chunk: &Option<Vec<u8>>| chunk.as_ref().map_or(0, |c| c.len() as u64);
        self.observe(StorageOp::ReadChunk, ws, 0, bytes, || {
            self.inner.read_chunk(ws, blob, index)
        })
    }

    fn collect_blobs(&self, now_ms: u64, budget: usize) -> Result<u64, StorageError> {
        self.inner.collect_blobs(now_ms, budget)
    }

    fn stored_quota(&self, ws: &str) -> Result<Option<Quota>, StorageError> {
        self.observe(StorageOp::ReadQuota, ws, 0, none, || {
            self.inner.stored_quota(ws)
        })
    }

    fn store_quota(&self, ws: &str, quota: Option<Quota>) -> Result<(), StorageError> {
        self.observe(StorageOp::WriteQuota, ws, 0, none, || {
            self.inner.store_quota(ws, quota)
        })
    }

    fn stored_quotas(&self) -> Result<Vec<(String, Quota)>, StorageError> {
        self.observe(StorageOp::ListQuotas, "", 0, none, || {
            self.inner.stored_quotas()
        })
    }

    fn export(
        &self,
        ws: &str,
        namespaces: &[String],
        now_ms: u64,
        sink: &mut ExportSink<'_>,
    ) -> Result<(), TransferError> {
        let span = storage_span(StorageOp::Export, self.metrics.backend());
        let result = span.in_scope(|| self.inner.export(ws, namespaces, now_ms, sink));
        let outcome = match &result {
            Ok(()) => "ok",
            Err(TransferError::Storage(e)) => storage_outcome(e),
            // The export's file or stream failed, not the storage.
            Err(_) => "export-failed",
        };
        self.finish(&span, StorageOp::Export, ws, outcome, (0, 0));
        result
    }

    fn staging_id(&self, base: String, workspace: &str) -> Result<String, StorageError> {
        self.inner.staging_id(base, workspace)
    }

    fn publish(&self, publish: &Publish) -> Result<Published, StorageError> {
        self.observe(StorageOp::Import, &publish.workspace, 0, none, || {
            self.inner.publish(publish)
        })
    }

    #[cfg(any(test, feature = "testing"))]
    fn audit(&self, ws: &str, now_ms: u64) -> Result<super::Audit, StorageError> {
        self.inner.audit(ws, now_ms)
    }

    #[cfg(any(test, feature = "testing"))]
    fn raw(&self, statement: &super::RawStatement) -> Result<(), StorageError> {
        self.inner.raw(statement)
    }
}
