//! How a [`Storage`](crate::Storage) is opened: limits, quotas, durability,
//! the clock, sweeping, and the PostgreSQL connection settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Clock, Limits, Quota, SystemClock};

/// When an acknowledged write reaches the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is on disk before any write in it is acknowledged: an
    /// acknowledged write survives a crash of the process or of the machine.
    /// redb: each commit is fsync'd, and concurrent writes share one fsync
    /// (group commit). PostgreSQL: the server's own guarantee with its
    /// default `synchronous_commit = on` (the commit's WAL is flushed).
    #[default]
    Durable,
    /// Commits are not flushed one by one. redb: commits use
    /// `Durability::None`, and the writer makes them durable at least once a
    /// second while writes arrive, within a second after the last one, and on
    /// shutdown. PostgreSQL: the session sets `synchronous_commit = off`, so
    /// the server flushes within three `wal_writer_delay`s (600 ms by
    /// default). A crash can lose the writes of about the last second; what
    /// survives is always a consistent earlier state, never torn or corrupt.
    Relaxed,
}

/// Options for opening a [`Storage`](crate::Storage).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StorageOptions {
    /// Limits enforced on every workspace.
    pub limits: Limits,
    /// When writes are made durable. Ignored for an in-memory database.
    pub durability: Durability,
    /// redb: verify the checksum of every page when opening a file (default:
    /// on). Opening then reads the whole file once, and a file damaged or
    /// altered since it was written is refused with
    /// [`OpenError::Corrupt`](crate::OpenError::Corrupt); without it, such
    /// damage may only show up later, possibly as a panic inside redb.
    pub verify_on_open: bool,
    /// Per-workspace quotas that this process enforces instead of the
    /// defaults in `limits` and of any quota stored in the database; change
    /// them later with [`Storage::override_quota`](crate::Storage::override_quota).
    /// Quotas every process should enforce are stored in the database
    /// instead ([`Storage::store_quota`](crate::Storage::store_quota)).
    pub quota_overrides: HashMap<String, Quota>,
    /// The clock that expiry is measured by (default: the system clock).
    /// Several host processes sharing a PostgreSQL database should have
    /// clocks that agree (NTP): each judges expiry by its own.
    pub clock: Arc<dyn Clock>,
    /// How often the background sweeper removes expired entries (default:
    /// every second); `None` turns it off ([`Storage::prune`](crate::Storage::prune)
    /// still works). Expired entries are invisible either way; sweeping frees
    /// their space.
    pub sweep_interval: Option<Duration>,
    /// How a PostgreSQL database is connected to; ignored by redb.
    pub postgres: PostgresOptions,
    /// redb files: the most memory redb's page cache may hold, in bytes
    /// (`None`: redb's default, 1 GiB). Reads and writes of large
    /// workspaces (exports, imports) keep their own memory flat; this bounds
    /// what the database caches of them. Ignored by PostgreSQL and memory.
    pub cache_size: Option<usize>,
    /// redb: the most bytes (keys and values) the read cache of a snapshot
    /// holds; 0 turns it off (default 8 MiB). Reads between two commits
    /// share one snapshot of the database, and its cache keeps what reads of
    /// it found, so reading the same keys again skips the B-tree. (A read
    /// still running when a commit retires its snapshot keeps that snapshot,
    /// and its cache, until it ends.) The writer
    /// drops snapshot and cache together at every commit, before it
    /// acknowledges any write of it, so a read still sees every write
    /// acknowledged before it began. Ignored by PostgreSQL.
    pub read_cache_bytes: usize,
}

/// The default of [`StorageOptions::read_cache_bytes`].
pub const DEFAULT_READ_CACHE_BYTES: usize = 8 << 20;

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            durability: Durability::default(),
            verify_on_open: true,
            quota_overrides: HashMap::new(),
            clock: Arc::new(SystemClock),
            sweep_interval: Some(Duration::from_secs(1)),
            postgres: PostgresOptions::default(),
            cache_size: None,
            read_cache_bytes: DEFAULT_READ_CACHE_BYTES,
        }
    }
}

/// Connection settings for a PostgreSQL-protocol database
/// ([`Storage::connect`](crate::Storage::connect)).
///
/// Like every options value of this crate ([`StorageOptions`],
/// [`Limits`]), it starts from `Default` and its fields are set one by one:
///
/// ```
/// use cubby_host::StorageOptions;
/// use std::time::Duration;
/// let mut options = StorageOptions::default();
/// options.postgres.pool_size = 32;
/// options.postgres.statement_timeout = Duration::from_secs(5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Most connections this process opens (default 16; 0 counts as 1).
    /// Storage calls beyond that wait for a free connection.
    pub pool_size: usize,
    /// Longest time one SQL statement may run on the server (default 30 s),
    /// and longest time a call waits for a free connection; past either, the
    /// call fails with [`StorageError::Unavailable`](crate::StorageError::Unavailable).
    /// A call that has no answer after twice this plus
    /// [`connect_timeout`](Self::connect_timeout) (retries included) fails
    /// the same way, whatever the network does.
    pub statement_timeout: Duration,
    /// Longest time to establish a connection (default 5 s), unless the URL
    /// sets `connect_timeout`.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}
