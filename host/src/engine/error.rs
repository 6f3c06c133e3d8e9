//! Errors of the storage engine.

use std::path::PathBuf;
use std::sync::Arc;

use super::types::Entry;

/// A lower-level error kept as the `source()` of one of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a database could not be opened or connected to.
///
/// Like every error of this crate, a variant that wraps a lower-level error
/// names it as its `source()` rather than repeating it in its message; print
/// the chain (e.g. anyhow's `{:#}`) to see both. No variant ever shows a
/// password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process (or another `Storage` in this one) has the file open.
    #[error(
        "database {path} is in use by another process (a redb file can be opened by one process \
         at a time; to share data between processes, keep it in PostgreSQL instead: a \
         postgres://USER@HOST/DB URL)"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The file exists but is not a readable redb database.
    #[error("{path} is not a Cubby database or is corrupt: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        reason: String,
    },
    /// The database exists but is not one Cubby created (a redb file of
    /// another application, or a PostgreSQL database whose `cubby_` tables
    /// have another shape).
    #[error("{location} is not a Cubby database: {reason}")]
    NotCubby {
        /// The file, or the URL without its password.
        location: String,
        /// What is in the way.
        reason: String,
    },
    /// A Citus coordinator whose Cubby tables are not distributed by
    /// workspace (created before Citus was installed, or by hand): every
    /// request would touch every node. The message names the tables and
    /// the statements that distribute them.
    #[error(
        "database {location} runs Citus, but Cubby's tables {tables} are not distributed by \
         workspace; distribute them on the coordinator (this copies their rows to the \
         workers): {fix}"
    )]
    NotDistributed {
        /// The URL without its password.
        location: String,
        /// The tables that are not as Cubby distributes them.
        tables: String,
        /// The SQL statements to run, `;`-separated.
        fix: String,
    },
    /// The database was written by a Cubby with another schema version.
    #[error(
        "database {location} has schema version {found}; this build of Cubby supports version {supported}"
    )]
    UnsupportedSchema {
        /// The file, or the URL without its password.
        location: String,
        /// The version found in the database.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// The folder for the database could not be created.
    #[error("cannot create folder {path} for the database")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A database URL that cannot be parsed.
    #[error("invalid database URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it (never the password).
        reason: String,
    },
    /// The database server could not be reached or refused the connection
    /// (unreachable host, wrong password, no such database).
    #[error("cannot connect to the database server at {server}")]
    Connect {
        /// Host and port (or socket folder), and the database name.
        server: String,
        /// What the client or the server reported.
        #[source]
        source: BoxError,
    },
    /// Any other failure of the storage backend while opening.
    #[error("cannot open database {location}")]
    Backend {
        /// The file, `:memory:`, or the URL without its password.
        location: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

/// Why a storage operation failed.
///
/// The first group of variants is caused by the caller's arguments and is
/// reported to plugins as such; the rest are host-side failures.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key is empty or too long.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The value is larger than [`Limits::max_value_bytes`](crate::options::Limits).
    #[error("value of {len} bytes is larger than the limit of {limit} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A plain read (`get`, `entry`, `get_many`, `get_and_renew`) of a
    /// streamed value larger than
    /// [`Limits::max_value_bytes`](crate::options::Limits): read it with
    /// [`Namespace::read_stream`](crate::Namespace::read_stream).
    #[error(
        "the value is {size} bytes, more than the limit of {limit} bytes for a plain read: read it as a stream"
    )]
    TooLargeToRead {
        /// The value's length.
        size: u64,
        /// The limit of a plain read.
        limit: usize,
    },
    /// The write would take the workspace past a quota; nothing was written.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// A namespace name longer than 128 bytes.
    #[error("invalid namespace: {0}")]
    InvalidNamespace(String),
    /// A listing cursor that the engine did not hand out for this listing.
    #[error("invalid cursor")]
    InvalidCursor,
    /// `increment` found a stored value that is not a counter (decimal ASCII
    /// in the range of `i64`).
    #[error("the stored value is not a counter")]
    NotACounter,
    /// `increment` would take the counter outside the range of `i64`.
    #[error("the counter would overflow")]
    Overflow,
    /// A batch with more operations than [`Limits::max_batch_ops`](crate::options::Limits).
    #[error("{len} operations in one batch, the limit is {limit}")]
    TooManyOperations {
        /// Operations in the batch.
        len: usize,
        /// The limit.
        limit: u32,
    },
    /// A precondition did not hold; nothing was written.
    #[error("condition of operation {index} does not hold")]
    Conflict {
        /// Which operation of the batch (0 for a single-key call).
        index: usize,
        /// What is stored under that key now.
        current: Option<Entry>,
    },
    /// Any other argument the engine cannot accept (such as a zero
    /// time-to-live).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A workspace id that is empty, too long, or has characters outside
    /// `A-Z a-z 0-9 - _ . :`.
    #[error("invalid workspace id {id:?}: {reason}")]
    InvalidWorkspace {
        /// The rejected id.
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A stored record could not be decoded (the file was damaged or written by
    /// something else).
    #[error("stored entry is corrupt: {0}")]
    Corrupt(String),
    /// The storage backend failed (a disk error, an unexpected database
    /// error). Nothing was changed, except in one case: when the disk fails
    /// while a commit is being written, the write may have been applied
    /// (entirely, never in part). On redb the database is reopened before
    /// the error is returned, so a read afterwards shows which.
    #[error("storage backend failed")]
    Backend(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The disk that holds the database is full (a redb file's, or the
    /// PostgreSQL server's); nothing was changed. Writes work again once
    /// there is room (a redb database is reopened by itself first); reads
    /// go on meanwhile.
    #[error("the disk holding the database is full; nothing was written")]
    DiskFull(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The database server cannot be reached right now, or did not answer in
    /// time. Nothing was changed, except in one case: when the connection is
    /// lost while a commit is on its way, the write may have been applied
    /// (entirely, never in part). The host serves again once the database
    /// is back.
    #[error("the database is unavailable")]
    Unavailable(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The engine's writer has stopped (the `Storage` is shutting down).
    #[error("storage engine is shut down")]
    Closed,
    /// A fault of the host itself: something the engine relies on did not
    /// hold (a bug, logged where it was found). Nothing was changed.
    #[error("internal error of the storage engine: {0}")]
    Internal(String),
}

/// What kind of failure a [`StorageError`] is: one kind per case of the WIT
/// `error` that plugins see (`cubby:storage/storage.error`), named as there.
///
/// The caller's kinds say what was wrong with the request; every host-side
/// failure is [`ErrorKind::Internal`] ([`StorageError::is_host_failure`]).
///
/// ```
/// use cubby_host::{ErrorKind, StorageError};
/// let e = StorageError::InvalidKey("empty".into());
/// assert_eq!(e.kind(), ErrorKind::InvalidKey);
/// assert_eq!(e.kind().name(), "invalid-key");
/// assert!(!e.is_host_failure());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`StorageError::InvalidKey`].
    InvalidKey,
    /// [`StorageError::InvalidNamespace`].
    InvalidNamespace,
    /// [`StorageError::ValueTooLarge`].
    ValueTooLarge,
    /// [`StorageError::QuotaExceeded`].
    QuotaExceeded,
    /// [`StorageError::InvalidCursor`].
    InvalidCursor,
    /// [`StorageError::NotACounter`].
    NotACounter,
    /// [`StorageError::Overflow`].
    Overflow,
    /// [`StorageError::TooManyOperations`].
    TooManyOperations,
    /// [`StorageError::Conflict`].
    Conflict,
    /// [`StorageError::InvalidArgument`].
    InvalidArgument,
    /// A failure of the host, not of the request: a corrupt entry, the
    /// database unavailable or failing, a workspace id the host chose
    /// badly, the engine shut down, or a host bug.
    Internal,
}

impl ErrorKind {
    /// The kind's name as the WIT spells its case: `invalid-key`,
    /// `quota-exceeded`, …, `internal`.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidKey => "invalid-key",
            Self::InvalidNamespace => "invalid-namespace",
            Self::ValueTooLarge => "value-too-large",
            Self::QuotaExceeded => "quota-exceeded",
            Self::InvalidCursor => "invalid-cursor",
            Self::NotACounter => "not-a-counter",
            Self::Overflow => "overflow",
            Self::TooManyOperations => "too-many-operations",
            Self::Conflict => "conflict",
            Self::InvalidArgument => "invalid-argument",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl StorageError {
    /// Which kind of failure this is; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidKey(_) => ErrorKind::InvalidKey,
            Self::InvalidNamespace(_) => ErrorKind::InvalidNamespace,
            Self::ValueTooLarge { .. } | Self::TooLargeToRead { .. } => ErrorKind::ValueTooLarge,
            Self::QuotaExceeded(_) => ErrorKind::QuotaExceeded,
            Self::InvalidCursor => ErrorKind::InvalidCursor,
            Self::NotACounter => ErrorKind::NotACounter,
            Self::Overflow => ErrorKind::Overflow,
            Self::TooManyOperations { .. } => ErrorKind::TooManyOperations,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::InvalidWorkspace { .. }
            | Self::Corrupt(_)
            | Self::Backend(_)
            | Self::DiskFull(_)
            | Self::Unavailable(_)
            | Self::Closed
            | Self::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether this is a failure of the host rather than a refusal of the
    /// request: nothing a plugin passes can cause it, and retrying with other
    /// arguments does not help (the same call may succeed later, see
    /// [`StorageError::Unavailable`]).
    pub fn is_host_failure(&self) -> bool {
        self.kind() == ErrorKind::Internal
    }

    /// A host bug found at `what`: logged, and reported as
    /// [`StorageError::Internal`] rather than panicked on.
    pub(crate) fn internal(what: &str) -> Self {
        tracing::error!(what, "internal error of the storage engine");
        Self::Internal(what.to_owned())
    }
}

macro_rules! backend_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                match redb::Error::from(e) {
                    redb::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                        Self::DiskFull(Arc::new(io))
                    }
                    e => Self::Backend(Arc::new(e)),
                }
            }
        }
    )*};
}
backend_from!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// An error and its causes on one line, `: `-separated (tokio-postgres's
/// own message is only its kind, e.g. "db error"; the cause says what).
pub(crate) fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
