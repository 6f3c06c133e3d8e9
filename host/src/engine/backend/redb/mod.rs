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
mod read;
mod record;
mod schema;
mod snapshot;
mod sweep;
mod tables;
mod writer;

use std::path::Path;
use std::sync::Arc;

use snapshot::{Snapshot, Snapshots};
use writer::{Kind, Shared, Writer};

use super::{
    Backend, Counters, ExportSink, Page, Publish, Published, Row, SweepPass, WriteRequest,
};
use crate::engine::{
    Cleared, CommitStats, Durability, OpenError, Outcome, Quota, StorageError, StorageOptions,
    TransferError, Usage,
};

#[cfg(test)]
pub(crate) use record::Record;
#[cfg(test)]
pub(crate) use schema::{ENTRIES, EXPIRY_V1, META, META_NEXT_VERSION, META_SCHEMA, QUOTAS, USAGE};

/// A redb database and its writer thread.
pub(crate) struct RedbBackend {
    db: Arc<redb::Database>,
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
        let mut builder = redb::Database::builder();
        builder.set_check_integrity_on_open(options.verify_on_open);
        if let Some(bytes) = options.cache_size {
            builder.set_cache_size(bytes);
        }
        let db = builder
            .create(path)
            .map_err(|e| schema::open_error(path, e))?;
        Self::start(db, path, options.durability)
    }

    /// A fresh database in memory.
    pub fn in_memory() -> Result<Self, OpenError> {
        let path = Path::new(":memory:");
        let db = redb::Database::builder()
            .create_with_backend(::redb::backends::InMemoryBackend::new())
            .map_err(|e| schema::open_error(path, e))?;
        // Nothing is fsync'd in memory; relaxed commits would only delay the
        // freeing of pages.
        Self::start(db, path, Durability::Durable)
    }

    fn start(db: redb::Database, path: &Path, durability: Durability) -> Result<Self, OpenError> {
        schema::init(&db, path)?;
        let db = Arc::new(db);
        let snapshots = Arc::new(Snapshots::default());
        let counters = Arc::new(Counters::default());
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

impl RedbBackend {
    /// A snapshot that includes every commit acknowledged so far.
    fn snapshot(&self) -> Result<Arc<Snapshot>, StorageError> {
        self.snapshots.read(&self.db)
    }
}

impl Backend for RedbBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn get(&self, ws: &str, ns: &str, key: &str, now_ms: u64) -> Result<Option<Row>, StorageError> {
        read::get(&*self.snapshot()?, ws, ns, key, now_ms)
    }

    fn get_many(
        &self,
        ws: &str,
        ns: &str,
        keys: &[&str],
        now_ms: u64,
    ) -> Result<Vec<Option<Row>>, StorageError> {
        read::get_many(&*self.snapshot()?, ws, ns, keys, now_ms)
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
        read::list_keys(&*self.snapshot()?, (ws, ns), prefix, after, limit, now_ms)
    }

    fn list_namespaces(
        &self,
        ws: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Page, StorageError> {
        read::list_namespaces(&*self.snapshot()?, ws, after, limit, now_ms)
    }

    fn usage(&self, ws: &str, ns: Option<&str>, now_ms: u64) -> Result<Usage, StorageError> {
        read::usage(&*self.snapshot()?, ws, ns, now_ms)
    }

    fn workspaces(&self, now_ms: u64) -> Result<Vec<(String, Usage)>, StorageError> {
        read::workspaces(&*self.snapshot()?, now_ms)
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

    fn stored_quota(&self, ws: &str) -> Result<Option<Quota>, StorageError> {
        read::stored_quota(&*self.snapshot()?, ws)
    }

    fn store_quota(&self, ws: &str, quota: Option<Quota>) -> Result<(), StorageError> {
        let ws = ws.to_owned();
        self.writer.submit(Kind::Upkeep, move |t, _| {
            Ok(((), apply::store_quota(t, &ws, quota)?))
        })
    }

    fn stored_quotas(&self) -> Result<Vec<(String, Quota)>, StorageError> {
        read::stored_quotas(&*self.snapshot()?)
    }

    fn export(
        &self,
        ws: &str,
        namespaces: &[String],
        now_ms: u64,
        sink: &mut ExportSink<'_>,
    ) -> Result<(), TransferError> {
        // The snapshot is held to the end: every entry comes from it.
        read::export(&*self.snapshot()?, ws, namespaces, now_ms, sink)
    }

    fn publish(&self, publish: &Publish) -> Result<Published, StorageError> {
        let publish = publish.clone();
        self.writer.submit(Kind::Upkeep, move |t, next_version| {
            apply::publish(t, &publish, next_version)
        })
    }

    #[cfg(any(test, feature = "testing"))]
    fn audit(&self, ws: &str, now_ms: u64) -> Result<super::Audit, StorageError> {
        audit::audit(&self.db, ws, now_ms)
    }
}
