//! The embedded backend: one redb database file (or memory), opened by one
//! process.
//!
//! - `schema.rs`: the tables, the schema version, opening and upgrading;
//! - `record.rs`: the byte format of one stored entry;
//! - `snapshot.rs`: the read snapshot reads share until the next commit;
//! - `read.rs`: reads, from that snapshot;
//! - `writer.rs`: the writer thread and its group commit;
//! - `tables.rs`: the tables a write transaction works on;
//! - `apply.rs`: one write request, `clear` step, quota or import inside a
//!   transaction;
//! - `sweep.rs`: removing expired entries through the expiry index.
//!
//! Threads: every write goes to one writer thread (`cubby-writer`), which
//! commits the requests waiting at that moment together (one fsync when
//! durable). Reads run on the caller's thread.

mod apply;
#[cfg(any(test, feature = "testing"))]
mod audit;
mod handle;
mod read;
mod record;
mod schema;
mod snapshot;
mod sweep;
mod tables;
mod writer;

use std::path::Path;
use std::sync::Arc;

use handle::{Handle, Opener, open_checked};
use snapshot::{Snapshot, Snapshots};
use writer::{Kind, Shared, Writer};

use super::{
    Backend, ChunkPut, Counters, ExportSink, Page, Publish, Published, Row, SweepPass, WriteRequest,
};
use crate::engine::{
    Cleared, CommitStats, Durability, OpenError, Outcome, Quota, StorageError, StorageOptions,
    TransferError, Usage,
};

#[cfg(test)]
pub(crate) use schema::{ENTRIES, META, META_NEXT_VERSION, META_SCHEMA, SCHEMA_VERSION};

/// A redb database and its writer thread.
pub(crate) struct RedbBackend {
    db: Arc<Handle>,
    snapshots: Arc<Snapshots>,
    counters: Arc<Counters>,
    writer: Writer,
    location: String,
}

impl RedbBackend {
    /// Opens (or creates, with its parent folders) the file at `path`.
    pub fn open(path: &Path, options: &StorageOptions) -> Result<Self, OpenError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| OpenError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let (owned, verify, cache) = (
            path.to_path_buf(),
            options.verify_on_open,
            options.cache_size,
        );
        Self::open_with(
            path,
            options,
            Box::new(move || open_checked(&owned, || builder(verify, cache).create(&owned))),
        )
    }

    /// Opens a database on storage that `backend` makes, for each open.
    #[cfg(any(test, feature = "testing"))]
    pub fn open_on<B: redb::StorageBackend>(
        location: &Path,
        options: &StorageOptions,
        backend: impl Fn() -> B + Send + Sync + 'static,
    ) -> Result<Self, OpenError> {
        let (owned, verify, cache) = (
            location.to_path_buf(),
            options.verify_on_open,
            options.cache_size,
        );
        Self::open_with(
            location,
            options,
            Box::new(move || {
                open_checked(&owned, || {
                    builder(verify, cache).create_with_backend(backend())
                })
            }),
        )
    }

    /// Opens the database with `opener`, which also reopens it after an I/O
    /// failure (see `handle.rs`); `path` names it in messages.
    fn open_with(path: &Path, options: &StorageOptions, opener: Opener) -> Result<Self, OpenError> {
        Self::start(
            Handle::open(opener)?,
            path,
            options.durability,
            options.read_cache_bytes,
        )
    }

    /// A fresh database in memory, with a read cache of `read_cache_bytes`.
    pub fn in_memory(read_cache_bytes: usize) -> Result<Self, OpenError> {
        let path = Path::new(":memory:");
        let db = open_checked(path, || {
            redb::Database::builder().create_with_backend(::redb::backends::InMemoryBackend::new())
        })?;
        // Nothing is fsync'd in memory; relaxed commits would only delay the
        // freeing of pages.
        Self::start(
            Handle::fixed(db),
            path,
            Durability::Durable,
            read_cache_bytes,
        )
    }

    fn start(
        db: Handle,
        path: &Path,
        durability: Durability,
        read_cache_bytes: usize,
    ) -> Result<Self, OpenError> {
        let db = Arc::new(db);
        let snapshots = Arc::new(Snapshots::new(read_cache_bytes));
        let counters = Arc::new(Counters::new("redb"));
        let shared = Shared {
            db: db.clone(),
            snapshots: snapshots.clone(),
            counters: counters.clone(),
        };
        let writer = Writer::spawn(shared, durability).map_err(|source| OpenError::Backend {
            location: path.display().to_string(),
            source: Box::new(source),
        })?;
        Ok(Self {
            db,
            snapshots,
            counters,
            writer,
            location: path.display().to_string(),
        })
    }
}

/// A builder of redb databases with Cubby's settings.
fn builder(verify_on_open: bool, cache_size: Option<usize>) -> redb::Builder {
    let mut builder = redb::Database::builder();
    builder.set_check_integrity_on_open(verify_on_open);
    if let Some(bytes) = cache_size {
        builder.set_cache_size(bytes);
    }
    builder
}

impl RedbBackend {
    /// Runs `read` on a snapshot that includes every commit acknowledged so
    /// far. After an I/O failure, until the writer has reopened the
    /// database (it is woken to), reads fail rather than show a state the
    /// reopen may change.
    fn read<T>(
        &self,
        read: impl FnOnce(&Snapshot) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let result = self.snapshot().and_then(|snap| read(&snap));
        if let Err(e) = &result {
            self.noted(e);
        }
        result
    }

    fn snapshot(&self) -> Result<Arc<Snapshot>, StorageError> {
        if self.db.is_broken() {
            return Err(handle::reopening());
        }
        self.snapshots.read(&*self.db.get()?)
    }

    /// After a read's I/O failure, wakes the writer to reopen the database.
    fn noted(&self, e: &StorageError) {
        self.db.failed(e);
        if self.db.is_broken() {
            self.writer.wake();
        }
    }
}

impl Backend for RedbBackend {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn reads_are_local(&self) -> bool {
        true
    }

    fn get(&self, ws: &str, ns: &str, key: &str, now_ms: u64) -> Result<Option<Row>, StorageError> {
        self.read(|snap| read::get(snap, ws, ns, key, now_ms))
    }

    fn get_many(
        &self,
        ws: &str,
        ns: &str,
        keys: &[&str],
        now_ms: u64,
    ) -> Result<Vec<Option<Row>>, StorageError> {
        self.read(|snap| read::get_many(snap, ws, ns, keys, now_ms))
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
        self.read(|snap| read::list_keys(snap, (ws, ns), prefix, after, limit, now_ms))
    }

    fn list_namespaces(
        &self,
        ws: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Page, StorageError> {
        self.read(|snap| read::list_namespaces(snap, ws, after, limit, now_ms))
    }

    fn usage(&self, ws: &str, ns: Option<&str>, now_ms: u64) -> Result<Usage, StorageError> {
        self.read(|snap| read::usage(snap, ws, ns, now_ms))
    }

    fn workspaces(&self, now_ms: u64) -> Result<Vec<(String, Usage)>, StorageError> {
        self.read(|snap| read::workspaces(snap, now_ms))
    }

    fn write(&self, request: WriteRequest) -> Result<Vec<Outcome>, StorageError> {
        self.writer.submit(Kind::Write, move |t, next_version| {
            apply::write(t, request, next_version)
        })
    }

    fn commit_stats(&self) -> CommitStats {
        self.counters.get()
    }

    fn clear(
        &self,
        ws: &str,
        ns: &str,
        budget: usize,
        now_ms: u64,
    ) -> Result<Cleared, StorageError> {
        let (ws, ns) = (ws.to_owned(), ns.to_owned());
        self.writer.submit(Kind::Upkeep, move |t, _| {
            apply::clear(t, &ws, &ns, budget, now_ms)
        })
    }

    fn remove_workspace(
        &self,
        ws: &str,
        budget: usize,
        now_ms: u64,
    ) -> Result<Cleared, StorageError> {
        let ws = ws.to_owned();
        self.writer.submit(Kind::Upkeep, move |t, _| {
            apply::remove_workspace(t, &ws, budget, now_ms)
        })
    }

    fn sweep(
        &self,
        resume: Option<String>,
        budget: usize,
        now_ms: u64,
    ) -> Result<SweepPass, StorageError> {
        self.writer.submit(Kind::Upkeep, move |t, _| {
            let pass = sweep::sweep_pass(t, resume, budget, now_ms)?;
            let changed = pass.removed > 0;
            Ok((pass, changed))
        })
    }

    fn open_blob(&self, ws: &str, idle_until_ms: u64, max_open: u32) -> Result<u64, StorageError> {
        let ws = ws.to_owned();
        self.writer.submit(Kind::Upkeep, move |t, next_version| {
            apply::open_blob(t, &ws, idle_until_ms, max_open, next_version)
        })
    }

    fn put_chunk(&self, chunk: ChunkPut) -> Result<(), StorageError> {
        self.writer
            .submit(Kind::Chunk, move |t, _| apply::put_chunk(t, &chunk))
    }

    fn drop_blob(&self, ws: &str, blob: u64) -> Result<(), StorageError> {
        let ws = ws.to_owned();
        self.writer
            .submit(Kind::Chunk, move |t, _| apply::drop_blob(t, &ws, blob))
    }

    fn read_chunk(&self, ws: &str, blob: u64, index: u32) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(|snap| read::chunk(snap, ws, blob, index))
    }

    fn collect_blobs(&self, now_ms: u64, budget: usize) -> Result<u64, StorageError> {
        self.writer.submit(Kind::Upkeep, move |t, _| {
            apply::collect_blobs(t, now_ms, budget)
        })
    }

    fn stored_quota(&self, ws: &str) -> Result<Option<Quota>, StorageError> {
        self.read(|snap| read::stored_quota(snap, ws))
    }

    fn store_quota(&self, ws: &str, quota: Option<Quota>) -> Result<(), StorageError> {
        let ws = ws.to_owned();
        self.writer.submit(Kind::Upkeep, move |t, _| {
            Ok(((), apply::store_quota(t, &ws, quota)?))
        })
    }

    fn stored_quotas(&self) -> Result<Vec<(String, Quota)>, StorageError> {
        self.read(read::stored_quotas)
    }

    fn export(
        &self,
        ws: &str,
        namespaces: &[String],
        now_ms: u64,
        sink: &mut ExportSink<'_>,
    ) -> Result<(), TransferError> {
        // The snapshot is held to the end: every entry comes from it.
        let snap = self.snapshot().inspect_err(|e| self.noted(e))?;
        let result = read::export(&snap, ws, namespaces, now_ms, sink);
        if let Err(TransferError::Storage(e)) = &result {
            self.noted(e);
        }
        result
    }

    fn publish(&self, publish: &Publish) -> Result<Published, StorageError> {
        let publish = publish.clone();
        self.writer.submit(Kind::Upkeep, move |t, next_version| {
            apply::publish(t, &publish, next_version)
        })
    }

    #[cfg(any(test, feature = "testing"))]
    fn audit(&self, ws: &str, now_ms: u64) -> Result<super::Audit, StorageError> {
        audit::audit(&*self.db.get()?, ws, now_ms)
    }

    #[cfg(any(test, feature = "testing"))]
    fn raw(&self, _: &super::RawStatement) -> Result<(), StorageError> {
        Err(StorageError::internal("raw statements are PostgreSQL's"))
    }
}
