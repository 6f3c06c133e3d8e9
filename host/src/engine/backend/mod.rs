//! The seam between the front and the backends.
//!
//! The front (`Storage`, `Workspace`, `Namespace`) validates every argument,
//! reads the clock, and lowers every public operation to one call of
//! [`Backend`]. A backend stores entries keyed by the structured triple
//! (workspace, namespace, key), applies each write request atomically in one
//! transaction that touches one workspace, and answers reads. Two backends:
//!
//! - [`redb`]: an embedded database file (or memory) that one process opens;
//!   one writer thread group-commits concurrent requests.
//! - [`postgres`]: a PostgreSQL-protocol database that many host processes
//!   share; one SQL transaction per request, serialised per workspace by a
//!   lock on the workspace's usage row.
//!
//! What a request means (conditions, counters, expiry, versions) is decided
//! once, in [`stage`](super::stage), and what it costs once, in
//! [`accounting`](super::accounting); backends supply the stored rows and
//! keep the data. Backends never read a clock: every call carries the
//! front's `now_ms`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::blob::BlobRef;
use super::{
    Cleared, CommitStats, Condition, Entry, Op, Outcome, Quota, QuotaSource, StorageError,
    TransferError, Usage,
};
use crate::telemetry::CommitMetrics;

#[cfg(feature = "metrics")]
pub(crate) mod instrumented;
pub(crate) mod postgres;
pub(crate) mod redb;

/// An entry as stored, with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// The value; empty for a streamed value, whose bytes are in chunks.
    pub value: Vec<u8>,
    /// Changes on every write of the value; never repeats within a workspace.
    pub version: u64,
    /// Absolute deadline, milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
    /// Where a streamed value's chunks are.
    pub blob: Option<BlobRef>,
}

impl Row {
    /// An entry holding `value` itself.
    pub fn inline(value: Vec<u8>, version: u64, expires_at_ms: Option<u64>) -> Self {
        Self {
            value,
            version,
            expires_at_ms,
            blob: None,
        }
    }

    /// What the value takes in storage, as usage counts it.
    pub fn stored_len(&self) -> u64 {
        self.blob.map_or(self.value.len() as u64, |b| b.stored)
    }

    /// Whether the entry is live at `now_ms`: it is gone from its deadline on.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| at > now_ms)
    }

    /// The entry as the API reports it at `now_ms`.
    pub fn to_entry(&self, now_ms: u64) -> Entry {
        Entry {
            value: self.value.clone(),
            version: self.version,
            expires_in: self
                .expires_at_ms
                .map(|at| Duration::from_millis(at.saturating_sub(now_ms))),
        }
    }
}

/// One write request: ops on one workspace, applied in order and
/// all-or-nothing, in one transaction.
#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub workspace: Arc<str>,
    pub ops: Vec<Op>,
    /// A streamed value to publish after the ops (the finish of a stream
    /// write); its blob must be a write in progress of the workspace.
    pub blob: Option<BlobPut>,
    pub now_ms: u64,
    /// Which quota is checked before anything is written.
    pub quota: QuotaRule,
}

/// Publishing a streamed value under a key: a `set` whose value is a blob.
#[derive(Debug, Clone)]
pub(crate) struct BlobPut {
    pub namespace: String,
    pub key: String,
    pub condition: Option<Condition>,
    pub blob: BlobRef,
    pub ttl: Option<Duration>,
}

/// One chunk of a write in progress, to store.
#[derive(Debug)]
pub(crate) struct ChunkPut {
    pub workspace: Arc<str>,
    pub blob: u64,
    pub index: u32,
    /// The chunk as stored (compressed if the value is).
    pub data: Vec<u8>,
    /// The bytes of the blob's chunks with this one (so that storing the
    /// same chunk twice counts it once).
    pub stored_after: u64,
    /// When the write counts as abandoned if no chunk follows.
    pub idle_until_ms: u64,
    /// Checked with the workspace's usage and every write in progress.
    pub quota: QuotaRule,
}

/// Which quota a write is checked against: the process's override if it
/// has one, else the quota stored in the database for the workspace, else
/// the default. The backend reads the stored quota in the write's own
/// transaction, so a quota set by another process applies at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuotaRule {
    /// Set in this process ([`Storage::override_quota`](crate::Storage::override_quota)).
    pub fixed: Option<Quota>,
    /// From [`Limits`](crate::options::Limits).
    pub default: Quota,
}

impl QuotaRule {
    /// A rule that lets anything through (staging areas).
    pub fn unlimited() -> Self {
        let all = Quota {
            max_keys: u64::MAX,
            max_bytes: u64::MAX,
        };
        Self {
            fixed: Some(all),
            default: all,
        }
    }

    /// The quota that applies, given the one stored for the workspace.
    pub fn resolve(self, stored: Option<Quota>) -> Quota {
        self.resolve_from(stored).0
    }

    /// The quota that applies, given the one stored for the workspace, and
    /// where it comes from.
    pub fn resolve_from(self, stored: Option<Quota>) -> (Quota, QuotaSource) {
        match (self.fixed, stored) {
            (Some(quota), _) => (quota, QuotaSource::Override),
            (None, Some(quota)) => (quota, QuotaSource::Stored),
            (None, None) => (self.default, QuotaSource::Default),
        }
    }

    /// The quota that applies; `stored` (a read of the database) is called
    /// only when no override decides it.
    pub fn resolve_with<E>(
        self,
        stored: impl FnOnce() -> Result<Option<Quota>, E>,
    ) -> Result<Quota, E> {
        match self.fixed {
            Some(quota) => Ok(quota),
            None => Ok(self.resolve(stored()?)),
        }
    }
}

/// What an export sees, in this order: the totals of what it selected, then
/// every selected live entry in (namespace, key) byte order, all from one
/// snapshot; a streamed value's entry is followed by its chunks, in order.
#[derive(Debug)]
pub(crate) enum Exported<'a> {
    Totals(Usage),
    Entry {
        ns: &'a str,
        key: &'a str,
        value: &'a [u8],
        expires_at_ms: Option<u64>,
        blob: Option<BlobRef>,
    },
    /// The next chunk of the last entry's blob, as stored.
    Chunk(&'a [u8]),
}

/// Receives what an export sees; an error stops the export.
pub(crate) type ExportSink<'s> = dyn FnMut(Exported<'_>) -> Result<(), TransferError> + 's;

/// How a staging area is published into a workspace.
#[derive(Debug, Clone)]
pub(crate) struct Publish {
    /// The staging area (a workspace id no caller can name).
    pub staging: String,
    /// The workspace it goes into.
    pub workspace: String,
    /// `true`: the workspace ends holding exactly the staged entries;
    /// `false`: staged entries overwrite, others stay.
    pub replace: bool,
    pub quota: QuotaRule,
    pub now_ms: u64,
}

/// What [`Backend::publish`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Published {
    /// Staged entries written into the workspace.
    pub written: u64,
    /// Staged entries that had expired by the time of publishing.
    pub expired: u64,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub(crate) struct Page {
    /// Keys or names in ascending byte order.
    pub names: Vec<String>,
    /// Whether at least one more follows.
    pub more: bool,
}

/// What one bounded sweep pass did.
#[derive(Debug, Clone, Default)]
pub(crate) struct SweepPass {
    /// Expired entries removed.
    pub removed: u64,
    /// Where the next pass resumes (the backend's own token); `None` when
    /// this pass reached the end.
    pub resume: Option<String>,
}

/// A backend's running [`CommitStats`], also reported as metrics.
pub(crate) struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
    durable_commits: AtomicU64,
    metrics: CommitMetrics,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Counters").field(&self.get()).finish()
    }
}

impl Counters {
    /// The counters of a backend of kind `backend` (its `name`).
    pub fn new(backend: &'static str) -> Self {
        Self {
            writes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            durable_commits: AtomicU64::new(0),
            metrics: CommitMetrics::new(backend),
        }
    }

    /// Counts `writes` acknowledged by one commit (or by none, when
    /// `commits` is 0); `durable` when that commit was flushed.
    pub fn add(&self, writes: u64, commits: u64, durable: bool) {
        self.writes.fetch_add(writes, Ordering::Relaxed);
        self.commits.fetch_add(commits, Ordering::Relaxed);
        if durable {
            self.durable_commits.fetch_add(commits, Ordering::Relaxed);
        }
        if commits > 0 {
            self.metrics.committed(writes, durable);
        }
    }

    pub fn get(&self) -> CommitStats {
        CommitStats {
            writes: self.writes.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            durable_commits: self.durable_commits.load(Ordering::Relaxed),
        }
    }
}

/// A place where entries live. Every read sees only entries live at the
/// `now_ms` it is given; every write is atomic.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The backend's kind, as the metrics' `backend` label names it.
    fn name(&self) -> &'static str;

    /// Where the data lives, for messages (a file path, `:memory:`, or a
    /// URL without its password).
    fn location(&self) -> &str;

    /// Whether reads are answered from this process's memory or a local
    /// file, never over a network, and wait for no other thread: the async
    /// imports run them on the calling thread instead of tokio's blocking
    /// pool.
    fn reads_are_local(&self) -> bool;

    /// The live entry under a key.
    fn get(&self, ws: &str, ns: &str, key: &str, now_ms: u64) -> Result<Option<Row>, StorageError>;

    /// The live entries under several keys, in order, from one snapshot.
    fn get_many(
        &self,
        ws: &str,
        ns: &str,
        keys: &[&str],
        now_ms: u64,
    ) -> Result<Vec<Option<Row>>, StorageError>;

    /// Up to `limit` live keys of a namespace that start with `prefix`, in
    /// byte order, after `after` (exclusive) if given.
    fn list_keys(
        &self,
        ws: &str,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Page, StorageError>;

    /// Up to `limit` names of the workspace's namespaces that hold a live key,
    /// in byte order, after `after` if given; never the default space.
    fn list_namespaces(
        &self,
        ws: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Page, StorageError>;

    /// Live usage of a workspace, or of one of its namespaces.
    fn usage(&self, ws: &str, ns: Option<&str>, now_ms: u64) -> Result<Usage, StorageError>;

    /// Every workspace with at least one live key, in byte order, with its
    /// live usage.
    fn workspaces(&self, now_ms: u64) -> Result<Vec<(String, Usage)>, StorageError>;

    /// Applies a write request: stages it, checks the quota, writes, commits.
    /// Returns once the commit is as durable as the backend promises.
    fn write(&self, request: WriteRequest) -> Result<Vec<Outcome>, StorageError>;

    /// What this backend has committed since it was opened.
    fn commit_stats(&self) -> CommitStats;

    /// Removes up to `budget` entries of one namespace in one transaction.
    fn clear(
        &self,
        ws: &str,
        ns: &str,
        budget: usize,
        now_ms: u64,
    ) -> Result<Cleared, StorageError>;

    /// One bounded step of removing a whole workspace: up to `budget` of its
    /// entries, in any namespace, in one transaction. The step that finds
    /// none left also removes the workspace's usage and namespace rows; the
    /// workspace then leaves no trace but what keeps its versions from ever
    /// repeating. `deleted` counts live entries.
    fn remove_workspace(
        &self,
        ws: &str,
        budget: usize,
        now_ms: u64,
    ) -> Result<Cleared, StorageError>;

    /// Removes up to `budget` entries expired at `now_ms`, resuming at
    /// `resume`, with their usage; safe to run in several processes at once.
    fn sweep(
        &self,
        resume: Option<String>,
        budget: usize,
        now_ms: u64,
    ) -> Result<SweepPass, StorageError>;

    /// Starts a write in progress in a workspace: hands out a blob id (never
    /// handed out again in the workspace) and records it as open until
    /// `idle_until_ms`. Refused with [`StorageError::InvalidArgument`] when
    /// the workspace already has `max_open` writes in progress.
    fn open_blob(&self, ws: &str, idle_until_ms: u64, max_open: u32) -> Result<u64, StorageError>;

    /// Stores one chunk of a write in progress (an error if the write is no
    /// longer in progress), after checking that the workspace's usage plus
    /// every write in progress, this chunk included, stays within its quota.
    /// Need not be durable: the publish that follows is.
    fn put_chunk(&self, chunk: ChunkPut) -> Result<(), StorageError>;

    /// Removes a write in progress and its chunks (nothing if it is gone).
    fn drop_blob(&self, ws: &str, blob: u64) -> Result<(), StorageError>;

    /// One stored chunk of a blob (as stored: compressed if the value is);
    /// `None` if it is gone.
    fn read_chunk(&self, ws: &str, blob: u64, index: u32) -> Result<Option<Vec<u8>>, StorageError>;

    /// Removes loose blobs whose time is up at `now_ms` (abandoned writes,
    /// replaced values past their grace), up to about `budget` chunks;
    /// returns the chunks removed. Safe to run in several processes at once.
    fn collect_blobs(&self, now_ms: u64, budget: usize) -> Result<u64, StorageError>;

    /// The quota stored for a workspace, if any.
    fn stored_quota(&self, ws: &str) -> Result<Option<Quota>, StorageError>;

    /// Stores (`Some`) or removes (`None`) a workspace's quota.
    fn store_quota(&self, ws: &str, quota: Option<Quota>) -> Result<(), StorageError>;

    /// Every stored quota, in workspace order.
    fn stored_quotas(&self) -> Result<Vec<(String, Quota)>, StorageError>;

    /// Streams the live entries of a workspace (of the `namespaces` given,
    /// or all) to `sink` from one snapshot, totals first (see [`Exported`]).
    /// Memory does not grow with the workspace.
    fn export(
        &self,
        ws: &str,
        namespaces: &[String],
        now_ms: u64,
        sink: &mut ExportSink<'_>,
    ) -> Result<(), TransferError>;

    /// The id of an import's staging area for `workspace`, made from
    /// `base` (unique, and no caller's to name). A backend that places
    /// workspaces on several nodes keeps the staging area on the node of
    /// `workspace` (Citus: in the same shard), so that publishing it is a
    /// transaction on one node.
    fn staging_id(&self, base: String, workspace: &str) -> Result<String, StorageError> {
        let _ = workspace;
        Ok(base)
    }

    /// Moves a staging area's live entries into a workspace in one
    /// transaction, with fresh versions, after checking the workspace's
    /// quota against the result (nothing is written if it fails); the
    /// staging area is removed in the same transaction.
    fn publish(&self, publish: &Publish) -> Result<Published, StorageError>;

    #[cfg(any(test, feature = "testing"))]
    /// Looks behind the API at one workspace: what is stored and a recount
    /// of it, so checks can compare the two. Reads everything the workspace
    /// stores.
    fn audit(&self, ws: &str, now_ms: u64) -> Result<Audit, StorageError>;

    #[cfg(any(test, feature = "testing"))]
    /// One statement of the benchmark's baseline, sent the way the backend
    /// sends its own (PostgreSQL only: the same pool, retry and runner).
    fn raw(&self, statement: &RawStatement) -> Result<(), StorageError>;
}

#[cfg(any(test, feature = "testing"))]
/// A statement as bare as SQL allows, for the benchmark to compare the
/// backend's own calls with.
#[derive(Debug, Clone)]
pub enum RawStatement {
    /// A prepared `SELECT` of one entry's value, by its primary key.
    Select {
        /// The workspace.
        ws: String,
        /// The namespace (`""`: the default space).
        ns: String,
        /// The key.
        key: String,
    },
    /// An autocommit `INSERT … ON CONFLICT DO UPDATE` of one row into a
    /// two-column table of the benchmark's own (created if missing).
    Upsert {
        /// The row's key.
        key: String,
        /// Its value.
        value: Vec<u8>,
    },
}

#[cfg(any(test, feature = "testing"))]
/// What [`Backend::audit`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Audit {
    /// Entry rows stored, expired ones not swept yet included.
    pub rows: u64,
    /// Rows in the expiry index (redb) or with a deadline (PostgreSQL).
    pub expiring_rows: u64,
    /// The stored usage counters (which include unswept expired entries).
    pub stored_usage: Usage,
    /// The sum of the stored per-namespace usage counters. redb keeps none
    /// for the default space (its usage is the workspace's beyond the named
    /// namespaces), so there its rows are counted instead: the invariant
    /// that this equals `stored_usage` then says the derived figure is
    /// exact.
    pub stored_namespace_usage: Usage,
    /// Live usage recounted from the entries themselves.
    pub recounted: Usage,
    /// Whether the workspace has a usage row.
    pub usage_row: bool,
    /// Per-namespace usage rows of the workspace.
    pub namespace_rows: u64,
    /// Stored chunks of the workspace's streamed values (those of entries,
    /// of writes in progress, and of values waiting to be collected).
    pub chunk_rows: u64,
    /// The workspace's loose blobs: writes in progress, and values no entry
    /// holds any more, waiting to be collected.
    pub loose_blobs: u64,
}
