//! The storage engine: a redb database shared by all plugin instances, and the
//! [`Workspace`] and [`Namespace`] handles through which one tenant's data is
//! reached.
//!
//! This layer knows nothing of WebAssembly. Its calls block (reads briefly,
//! writes until committed); async callers run them on a blocking thread.
//!
//! # Data model (schema version 2)
//! - `entries`: `(workspace, namespace, key)` → record (see `record.rs`). The
//!   key is a redb tuple, so no two distinct triples can alias, whatever bytes
//!   they hold. The namespace `""` is the workspace's default space.
//! - `usage`: `workspace` → `(keys, bytes)` and `namespace_usage`:
//!   `(workspace, namespace)` → `(keys, bytes)`, updated in the same
//!   transaction as every write, so quotas are checked exactly and before
//!   anything is written. They count every stored record, including expired
//!   ones not swept yet; what the API reports subtracts those.
//! - `expiry`: `(workspace, expires_at_ms, namespace, key)` → bytes, the index
//!   through which the sweeper finds expired entries, per workspace, without
//!   a full scan.
//! - `meta`: the schema version and the next entry version.
//!
//! # Writes and durability
//! All writes go through one writer thread, which groups the requests that
//! arrive while it is busy into one transaction and one commit (group commit)
//! and answers each request only after that commit. See [`Durability`].

mod clock;
mod error;
mod limits;
mod record;
mod types;
mod workspace;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{OpenError, StorageError};
pub use limits::Limits;
use record::{Record, stored_value_len};
pub use types::{
    Action, Cleared, Condition, Entry, KeyPage, Op, Outcome, PruneReport, Quota, Usage,
    WriteOptions,
};
pub use workspace::{Keys, Namespace, Workspace};
use writer::{Done, Shared, Work, Writer};

/// The schema version this build reads and writes. Version 1 files (Cubby
/// 0.1) are upgraded in place when opened.
pub const SCHEMA_VERSION: u64 = 2;

type EntryKey = (&'static str, &'static str, &'static str);
type ExpiryKey = (&'static str, u64, &'static str, &'static str);
const ENTRIES: TableDefinition<EntryKey, &[u8]> = TableDefinition::new("cubby_entries");
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("cubby_usage");
const NS_USAGE: TableDefinition<(&str, &str), (u64, u64)> =
    TableDefinition::new("cubby_namespace_usage");
const EXPIRY: TableDefinition<ExpiryKey, u64> = TableDefinition::new("cubby_expiry_by_workspace");
/// Schema 1's expiry index, keyed by time first; never written by 0.1.
const EXPIRY_V1: TableDefinition<(u64, &str, &str, &str), ()> =
    TableDefinition::new("cubby_expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("cubby_meta");
const META_SCHEMA: &str = "schema_version";
const META_NEXT_VERSION: &str = "next_version";
const MAX_WORKSPACE_ID: usize = 128;
/// Longest namespace name, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 128;

/// When an acknowledged write reaches the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is fsync'd before any write in it is acknowledged: an
    /// acknowledged write survives a crash of the process or of the machine.
    /// Concurrent writes share one fsync (group commit).
    #[default]
    Durable,
    /// Commits are not fsync'd one by one (redb `Durability::None`); the
    /// writer makes them durable at least once a second while writes arrive,
    /// within a second after the last one, and on shutdown. A crash of the
    /// process or the machine can lose the writes of about the last second;
    /// what survives is always a consistent earlier state, never torn or
    /// corrupt.
    Relaxed,
}

/// Options for opening a [`Storage`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StorageOptions {
    /// Limits enforced on every workspace.
    pub limits: Limits,
    /// When writes are made durable. Ignored for an in-memory database.
    pub durability: Durability,
    /// Verify the checksum of every page when opening a file (default: on).
    /// Opening then reads the whole file once, and a file damaged or altered
    /// since it was written is refused with [`OpenError::Corrupt`]; without
    /// it, such damage may only show up later, possibly as a panic inside
    /// redb.
    pub verify_on_open: bool,
    /// Per-workspace quotas that replace the defaults in `limits`; change
    /// them later with [`Storage::set_quota`].
    pub quotas: HashMap<String, Quota>,
    /// The clock that expiry is measured by (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// How often the background sweeper removes expired entries (default:
    /// every second); `None` turns it off ([`Storage::prune`] still works).
    /// Expired entries are invisible either way; sweeping frees their space.
    pub sweep_interval: Option<Duration>,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            durability: Durability::default(),
            verify_on_open: true,
            quotas: HashMap::new(),
            clock: Arc::new(SystemClock),
            sweep_interval: Some(Duration::from_secs(1)),
        }
    }
}

/// The database shared by every workspace. Cheap to clone: clones share one
/// open database and one writer.
///
/// ```
/// use cubby_host::{Storage, StorageOptions};
/// # fn main() -> anyhow::Result<()> {
/// let storage = Storage::in_memory(StorageOptions::default())?;
/// let ws = storage.workspace("team-a")?;
/// ws.set("greeting", b"hello")?;
/// assert_eq!(ws.get("greeting")?.as_deref(), Some(&b"hello"[..]));
/// assert_eq!(storage.workspace("team-b")?.get("greeting")?, None);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<redb::Database>,
    shared: Arc<Shared>,
    location: String,
    writer: Writer,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens the database file at `path`, creating it (and its parent folders)
    /// if it does not exist.
    ///
    /// Errors: the file is locked by another process ([`OpenError::Locked`]),
    /// is not a redb database or is corrupt, is another application's redb
    /// database, or has an unknown schema version. A failed open changes
    /// nothing in the file.
    pub fn open(path: impl AsRef<Path>, options: StorageOptions) -> Result<Self, OpenError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| OpenError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let db = redb::Database::builder()
            .set_check_integrity_on_open(options.verify_on_open)
            .create(path)
            .map_err(|e| open_error(path, e))?;
        Self::start(db, path, options)
    }

    /// The default database file: `cubby.redb` in the per-user data folder
    /// (`$XDG_DATA_HOME/cubby` or `~/.local/share/cubby` on Linux,
    /// `~/Library/Application Support/cubby` on macOS, `%APPDATA%\cubby\data`
    /// on Windows). `None` when the platform has no home folder.
    pub fn default_path() -> Option<PathBuf> {
        crate::project_dirs().map(|d| d.data_dir().join("cubby.redb"))
    }

    /// Creates an empty database that lives in memory and is gone when the
    /// last clone of this `Storage` is dropped.
    pub fn in_memory(mut options: StorageOptions) -> Result<Self, OpenError> {
        let path = Path::new(":memory:");
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| open_error(path, e))?;
        // Nothing is fsync'd in memory; relaxed commits would only delay the
        // freeing of pages.
        options.durability = Durability::Durable;
        Self::start(db, path, options)
    }

    fn start(db: redb::Database, path: &Path, options: StorageOptions) -> Result<Self, OpenError> {
        init_schema(&db, path)?;
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            limits: options.limits,
            quotas: RwLock::new(options.quotas),
            clock: options.clock,
        });
        let writer = Writer::spawn(
            db.clone(),
            shared.clone(),
            options.durability,
            options.sweep_interval,
        )
        .map_err(|source| OpenError::Backend {
            path: path.to_path_buf(),
            source: redb::Error::Io(source),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                shared,
                location: path.display().to_string(),
                writer,
            }),
        })
    }

    /// The handle for one workspace. `id` is chosen by the host, never by a
    /// plugin: 1 to 128 characters from `A-Z a-z 0-9 - _ . :`.
    pub fn workspace(&self, id: &str) -> Result<Workspace, StorageError> {
        validate_workspace_id(id)?;
        Ok(Workspace::new(self.clone(), Arc::from(id)))
    }

    /// The limits this database enforces.
    pub fn limits(&self) -> &Limits {
        &self.inner.shared.limits
    }

    /// Where the database lives: its file path, or `:memory:`.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The quota of workspace `id`: its override, or the default from
    /// [`Limits`].
    pub fn quota(&self, id: &str) -> Quota {
        self.inner.shared.quota(id)
    }

    /// Sets (`Some`) or removes (`None`, back to the default) the quota of
    /// workspace `id`, for every write from now on. Entries already stored
    /// are kept even if they exceed a lowered quota; the workspace can then
    /// only shrink until it fits.
    pub fn set_quota(&self, id: &str, quota: Option<Quota>) -> Result<(), StorageError> {
        validate_workspace_id(id)?;
        let mut quotas = self
            .inner
            .shared
            .quotas
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match quota {
            Some(q) => quotas.insert(id.to_owned(), q),
            None => quotas.remove(id),
        };
        Ok(())
    }

    /// Every workspace that holds at least one live key, in ascending order,
    /// with its usage.
    pub fn workspaces(&self) -> Result<Vec<(String, Usage)>, StorageError> {
        let txn = self.inner.db.begin_read()?;
        let usage = txn.open_table(USAGE)?;
        let expiry = txn.open_table(EXPIRY)?;
        let now = self.now_ms();
        let mut out = Vec::new();
        for row in usage.iter()? {
            let (id, counts) = row?;
            let id = id.value();
            let (keys, bytes) = counts.value();
            let (gone_keys, gone_bytes) = expired_unswept(&expiry, id, None, now)?;
            let live = Usage {
                keys: keys.saturating_sub(gone_keys),
                bytes: bytes.saturating_sub(gone_bytes),
            };
            if live.keys > 0 {
                out.push((id.to_owned(), live));
            }
        }
        Ok(out)
    }

    /// Removes every expired entry now, in bounded passes (each its own
    /// transaction, so writers are served in between). The background
    /// sweeper does the same a pass at a time; expired entries are invisible
    /// either way, pruning frees their space.
    pub fn prune(&self) -> Result<PruneReport, StorageError> {
        let mut report = PruneReport::default();
        let mut from = None;
        loop {
            let Done::Swept(pass) = self.inner.writer.submit(Work::Sweep { from })? else {
                return Err(StorageError::Closed);
            };
            report.removed += pass.removed;
            match pass.next {
                Some(next) => from = Some(next),
                None => return Ok(report),
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.inner.shared.clock.now_ms()
    }

    fn check_key(&self, key: &str) -> Result<(), StorageError> {
        if key.is_empty() {
            return Err(StorageError::InvalidKey("key is empty".into()));
        }
        let max = self.inner.shared.limits.max_key_bytes;
        if key.len() > max {
            return Err(StorageError::InvalidKey(format!(
                "key is {} bytes, the limit is {max}",
                key.len()
            )));
        }
        Ok(())
    }
}

/// The expiry-index keys of a workspace's entries that have expired at
/// `now_ms` (a deadline at or before it).
fn expired_range(
    ws: &str,
    now_ms: u64,
) -> std::ops::Range<(&str, u64, &'static str, &'static str)> {
    (ws, 0, "", "")..(ws, now_ms.saturating_add(1), "", "")
}

/// The (keys, bytes) of a workspace's (or one namespace's) expired entries
/// that the sweeper has not removed yet.
fn expired_unswept(
    expiry: &impl ReadableTable<ExpiryKey, u64>,
    ws: &str,
    ns: Option<&str>,
    now_ms: u64,
) -> Result<(u64, u64), StorageError> {
    let (mut keys, mut bytes) = (0u64, 0u64);
    for row in expiry.range(expired_range(ws, now_ms))? {
        let (k, v) = row?;
        if ns.is_none_or(|ns| k.value().2 == ns) {
            keys += 1;
            bytes += v.value();
        }
    }
    Ok((keys, bytes))
}

fn decode_cursor(cursor: &str, prefix: &str) -> Result<String, StorageError> {
    let bytes = hex::decode(cursor).map_err(|_| StorageError::InvalidCursor)?;
    let key = String::from_utf8(bytes).map_err(|_| StorageError::InvalidCursor)?;
    if key.is_empty() || !key.starts_with(prefix) {
        return Err(StorageError::InvalidCursor);
    }
    Ok(key)
}

fn validate_workspace_id(id: &str) -> Result<(), StorageError> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_WORKSPACE_ID {
        "it is longer than 128 characters"
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        "only A-Z a-z 0-9 - _ . : are allowed"
    } else {
        return Ok(());
    };
    Err(StorageError::InvalidWorkspace {
        id: id.to_owned(),
        reason,
    })
}

/// The one mapping from redb's errors at open time to [`OpenError`].
fn open_error(path: &Path, e: impl Into<redb::Error>) -> OpenError {
    let path = path.to_path_buf();
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => OpenError::Locked { path },
        redb::Error::Corrupted(reason) => OpenError::Corrupt { path, reason },
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => OpenError::Corrupt {
            path,
            reason: io.to_string(),
        },
        redb::Error::UpgradeRequired(v) => OpenError::Corrupt {
            path,
            reason: format!("written in redb file format {v}, which this build cannot read"),
        },
        source => OpenError::Backend { path, source },
    }
}

/// Creates the tables of a new database, or checks the schema of an existing one.
fn init_schema(db: &redb::Database, path: &Path) -> Result<(), OpenError> {
    let run = || -> Result<Result<(), OpenError>, redb::Error> {
        let txn = db.begin_write()?;
        let has_tables = txn.list_tables()?.next().is_some();
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get(META_SCHEMA)?.map(|g| g.value());
            match found {
                Some(SCHEMA_VERSION) => {}
                Some(1) => {
                    // 0.1 wrote no expiries and no named namespaces; its
                    // time-first expiry index is replaced and the derived
                    // tables are rebuilt from the entries.
                    txn.delete_table(EXPIRY_V1)?;
                    rebuild_derived(&txn)?;
                    meta.insert(META_SCHEMA, SCHEMA_VERSION)?;
                    tracing::info!(path = %path.display(), "upgraded database schema 1 to 2");
                }
                Some(found) => {
                    return Ok(Err(OpenError::UnsupportedSchema {
                        path: path.to_path_buf(),
                        found,
                        supported: SCHEMA_VERSION,
                    }));
                }
                None if has_tables => {
                    return Ok(Err(OpenError::NotCubby {
                        path: path.to_path_buf(),
                    }));
                }
                None => {
                    meta.insert(META_SCHEMA, SCHEMA_VERSION)?;
                    meta.insert(META_NEXT_VERSION, 1)?;
                }
            }
            txn.open_table(ENTRIES)?;
            txn.open_table(USAGE)?;
            txn.open_table(NS_USAGE)?;
            txn.open_table(EXPIRY)?;
        }
        txn.commit()?;
        Ok(Ok(()))
    };
    // An early return above drops `txn`, which aborts it: a refused file is
    // left exactly as it was.
    run().map_err(|e| open_error(path, e))?
}

/// Recomputes the usage tables and the expiry index from the entries.
fn rebuild_derived(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let mut usage: HashMap<String, (u64, u64)> = HashMap::new();
    let mut ns_usage: HashMap<(String, String), (u64, u64)> = HashMap::new();
    let mut expiring = Vec::new();
    {
        let entries = txn.open_table(ENTRIES)?;
        for row in entries.iter()? {
            let (k, v) = row?;
            let (ws, ns, key) = k.value();
            let raw = v.value();
            let bytes = key.len() as u64 + stored_value_len(raw);
            for counts in [
                usage.entry(ws.to_owned()).or_default(),
                ns_usage.entry((ws.to_owned(), ns.to_owned())).or_default(),
            ] {
                counts.0 += 1;
                counts.1 += bytes;
            }
            if let Some(at) = Record::decode(raw).ok().and_then(|r| r.expires_at_ms) {
                expiring.push((ws.to_owned(), at, ns.to_owned(), key.to_owned(), bytes));
            }
        }
    }
    txn.delete_table(USAGE)?;
    txn.delete_table(NS_USAGE)?;
    txn.delete_table(EXPIRY)?;
    let mut table = txn.open_table(USAGE)?;
    for (ws, counts) in &usage {
        table.insert(ws.as_str(), counts)?;
    }
    let mut table = txn.open_table(NS_USAGE)?;
    for ((ws, ns), counts) in &ns_usage {
        table.insert((ws.as_str(), ns.as_str()), counts)?;
    }
    let mut table = txn.open_table(EXPIRY)?;
    for (ws, at, ns, key, bytes) in &expiring {
        table.insert((ws.as_str(), *at, ns.as_str(), key.as_str()), bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
