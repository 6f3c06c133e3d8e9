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
    /// The value is larger than [`Limits::max_value_bytes`](crate::Limits).
    #[error("value of {len} bytes is larger than the limit of {limit} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
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
    /// A batch with more operations than [`Limits::max_batch_ops`](crate::Limits).
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
    /// error); nothing was changed.
    #[error("storage backend failed")]
    Backend(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
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
}

macro_rules! backend_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                Self::Backend(Arc::new(redb::Error::from(e)))
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
