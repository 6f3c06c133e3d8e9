//! The storage engine: a redb database shared by all plugin instances, and the
//! [`Workspace`] handle through which one tenant's data is reached.
//!
//! This layer knows nothing of WebAssembly. Its calls block (reads briefly,
//! writes until committed); async callers run them on a blocking thread.
//!
//! # Data model
//! - `entries`: `(workspace, namespace, key)` → record (see `record.rs`). The
//!   key is a redb tuple, so no two distinct triples can alias, whatever bytes
//!   they hold. The namespace `""` is the workspace's default space; named
//!   namespaces are reserved for a later version.
//! - `usage`: `workspace` → `(keys, bytes)`, updated in the same transaction as
//!   every write, so quotas are checked exactly and before anything is written.
//! - `expiry`: `(expires_at_ms, workspace, namespace, key)` → `()`, the index a
//!   sweeper walks to delete expired entries without a full scan.
//! - `meta`: the schema version and the next entry version.
//!
//! # Writes and durability
//! All writes go through one writer thread, which groups the requests that
//! arrive while it is busy into one transaction and one commit (group commit)
//! and answers each request only after that commit. See [`Durability`].

mod error;
mod limits;
mod record;
mod writer;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

pub use error::{OpenError, StorageError};
pub use limits::Limits;
use record::Record;
use writer::{WriteOp, WriteOutcome, Writer};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

type EntryKey = (&'static str, &'static str, &'static str);
const ENTRIES: TableDefinition<EntryKey, &[u8]> = TableDefinition::new("cubby_entries");
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("cubby_usage");
const EXPIRY: TableDefinition<(u64, &str, &str, &str), ()> = TableDefinition::new("cubby_expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("cubby_meta");
const META_SCHEMA: &str = "schema_version";
const META_NEXT_VERSION: &str = "next_version";
/// The default space of a workspace.
const DEFAULT_NAMESPACE: &str = "";
const MAX_WORKSPACE_ID: usize = 128;

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
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            durability: Durability::default(),
            verify_on_open: true,
        }
    }
}

/// Usage of one workspace: what its quotas are checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Number of keys stored.
    pub keys: u64,
    /// Bytes stored: the sum of the lengths of keys and values.
    pub bytes: u64,
}

/// One page of a key listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in ascending byte order.
    pub keys: Vec<String>,
    /// The cursor for the next page, `None` on the last page.
    pub cursor: Option<String>,
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
    limits: Limits,
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
        let writer = Writer::spawn(db.clone(), options.limits.clone(), options.durability)
            .map_err(|source| OpenError::Backend {
                path: path.to_path_buf(),
                source: redb::Error::Io(source),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                limits: options.limits,
                location: path.display().to_string(),
                writer,
            }),
        })
    }

    /// The handle for one workspace. `id` is chosen by the host, never by a
    /// plugin: 1 to 128 characters from `A-Z a-z 0-9 - _ . :`.
    pub fn workspace(&self, id: &str) -> Result<Workspace, StorageError> {
        validate_workspace_id(id)?;
        Ok(Workspace {
            storage: self.clone(),
            id: Arc::from(id),
            namespace: Arc::from(DEFAULT_NAMESPACE),
        })
    }

    /// The limits this database enforces.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Where the database lives: its file path, or `:memory:`.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// Every workspace that holds at least one key, in ascending order, with
    /// its usage.
    pub fn workspaces(&self) -> Result<Vec<(String, Usage)>, StorageError> {
        let txn = self.inner.db.begin_read()?;
        let usage = txn.open_table(USAGE)?;
        let mut out = Vec::new();
        for row in usage.iter()? {
            let (id, counts) = row?;
            let (keys, bytes) = counts.value();
            if keys > 0 {
                out.push((id.value().to_owned(), Usage { keys, bytes }));
            }
        }
        Ok(out)
    }

    fn check_key(&self, key: &str) -> Result<(), StorageError> {
        if key.is_empty() {
            return Err(StorageError::InvalidKey("key is empty".into()));
        }
        let max = self.inner.limits.max_key_bytes;
        if key.len() > max {
            return Err(StorageError::InvalidKey(format!(
                "key is {} bytes, the limit is {max}",
                key.len()
            )));
        }
        Ok(())
    }
}

/// One workspace's data: the only way to reach stored entries.
///
/// Every operation is confined to this workspace; no key, prefix or cursor can
/// reach outside it. Reads never wait for writers. Writes block until they are
/// committed (and, with [`Durability::Durable`], on disk).
#[derive(Clone, Debug)]
pub struct Workspace {
    storage: Storage,
    id: Arc<str>,
    namespace: Arc<str>,
}

impl Workspace {
    /// The workspace id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The value stored under `key`, or `None`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(key, |r| r.map(|r| r.value.to_vec()))
    }

    /// Whether a value is stored under `key`.
    pub fn exists(&self, key: &str) -> Result<bool, StorageError> {
        self.read(key, |r| r.is_some())
    }

    /// Stores `value` under `key`, replacing any previous value. Returns once
    /// the write is committed. An owned `Vec<u8>` is handed to the writer
    /// without a copy.
    pub fn set(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<(), StorageError> {
        self.storage.check_key(key)?;
        let value = value.into();
        let limit = self.storage.inner.limits.max_value_bytes;
        if value.len() > limit {
            return Err(StorageError::ValueTooLarge {
                len: value.len(),
                limit,
            });
        }
        let op = WriteOp::Set {
            key: key.to_owned(),
            value,
        };
        self.write(op).map(|_| ())
    }

    /// Removes `key`; returns whether it existed. Returns once committed.
    pub fn delete(&self, key: &str) -> Result<bool, StorageError> {
        self.storage.check_key(key)?;
        let op = WriteOp::Delete {
            key: key.to_owned(),
        };
        Ok(matches!(self.write(op)?, WriteOutcome::Deleted(true)))
    }

    /// One page of this workspace's keys in ascending byte order, optionally
    /// only those starting with `prefix`. Pass the returned cursor back (with
    /// the same prefix) for the next page. `limit` is clamped as described in
    /// [`Limits::page_size`].
    pub fn list_keys(
        &self,
        prefix: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<KeyPage, StorageError> {
        let prefix = prefix.unwrap_or("");
        let page_size = self.storage.inner.limits.page_size(limit);
        let after = cursor.map(|c| decode_cursor(c, prefix)).transpose()?;
        let start = match &after {
            Some(after) => Bound::Excluded((&*self.id, &*self.namespace, after.as_str())),
            None => Bound::Included((&*self.id, &*self.namespace, prefix)),
        };
        let now = now_ms();
        let txn = self.storage.inner.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let mut keys = Vec::new();
        let mut more = false;
        for row in table.range((start, Bound::Unbounded))? {
            let (k, v) = row?;
            let (ws, ns, key) = k.value();
            if ws != &*self.id || ns != &*self.namespace || !key.starts_with(prefix) {
                break;
            }
            // A record that does not decode is still listed (its key is
            // fine); reading it reports the corruption.
            if Record::decode(v.value()).is_ok_and(|r| r.is_expired(now)) {
                continue;
            }
            if keys.len() == page_size {
                more = true;
                break;
            }
            keys.push(key.to_owned());
        }
        let cursor = more
            .then(|| keys.last().map(|k| hex::encode(k.as_bytes())))
            .flatten();
        Ok(KeyPage { keys, cursor })
    }

    /// Every key (or every key starting with `prefix`) in ascending byte
    /// order, fetched a page of the default size at a time. After an error the
    /// iterator ends.
    ///
    /// ```
    /// # use cubby_host::{Storage, StorageOptions};
    /// # fn main() -> anyhow::Result<()> {
    /// let ws = Storage::in_memory(StorageOptions::default())?.workspace("w")?;
    /// ws.set("user/ada", b"1")?;
    /// ws.set("user/bob", b"2")?;
    /// let users: Vec<String> = ws.keys(Some("user/")).collect::<Result<_, _>>()?;
    /// assert_eq!(users, ["user/ada", "user/bob"]);
    /// # Ok(()) }
    /// ```
    pub fn keys(&self, prefix: Option<&str>) -> Keys<'_> {
        Keys {
            workspace: self,
            prefix: prefix.map(str::to_owned),
            cursor: None,
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    /// The workspace's current usage.
    pub fn usage(&self) -> Result<Usage, StorageError> {
        let txn = self.storage.inner.db.begin_read()?;
        let table = txn.open_table(USAGE)?;
        Ok(table
            .get(&*self.id)?
            .map(|g| {
                let (keys, bytes) = g.value();
                Usage { keys, bytes }
            })
            .unwrap_or_default())
    }

    fn read<R>(
        &self,
        key: &str,
        f: impl FnOnce(Option<Record<'_>>) -> R,
    ) -> Result<R, StorageError> {
        self.storage.check_key(key)?;
        let txn = self.storage.inner.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let found = table.get((&*self.id, &*self.namespace, key))?;
        let record = match &found {
            Some(guard) => Some(Record::decode(guard.value())?).filter(|r| !r.is_expired(now_ms())),
            None => None,
        };
        Ok(f(record))
    }

    fn write(&self, op: WriteOp) -> Result<WriteOutcome, StorageError> {
        self.storage
            .inner
            .writer
            .submit(self.id.clone(), self.namespace.clone(), op)
    }
}

/// An iterator over a workspace's keys; see [`Workspace::keys`].
#[derive(Debug)]
pub struct Keys<'a> {
    workspace: &'a Workspace,
    prefix: Option<String>,
    cursor: Option<String>,
    page: std::vec::IntoIter<String>,
    done: bool,
}

impl Iterator for Keys<'_> {
    type Item = Result<String, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.page.next() {
                return Some(Ok(key));
            }
            if self.done {
                return None;
            }
            match self
                .workspace
                .list_keys(self.prefix.as_deref(), self.cursor.as_deref(), None)
            {
                Ok(page) => {
                    self.done = page.cursor.is_none();
                    self.cursor = page.cursor;
                    self.page = page.keys.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
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

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
            txn.open_table(EXPIRY)?;
        }
        txn.commit()?;
        Ok(Ok(()))
    };
    // An early return above drops `txn`, which aborts it: a refused file is
    // left exactly as it was.
    run().map_err(|e| open_error(path, e))?
}

#[cfg(test)]
mod tests;
