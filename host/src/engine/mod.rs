//! The storage engine: the [`Storage`] shared by all plugin instances, and
//! the [`Workspace`] and [`Namespace`] handles through which one tenant's
//! data is reached. This layer knows nothing of WebAssembly. Its calls block
//! (reads briefly, writes until committed); async callers run them on a
//! blocking thread.
//!
//! # Front and backends
//! The **front** is the same for every database:
//! - `storage.rs`: the [`Storage`] handle, quotas, [`Storage::prune`];
//! - `workspace.rs`, `namespace.rs`: [`Workspace`] and [`Namespace`],
//!   lowering each public operation to one backend call;
//! - `rules.rs`: what callers may pass (ids, names, keys, values, batch
//!   sizes, time-to-live) and the cursor encoding;
//! - `stage.rs`: what a write request means (conditions, counters, expiry,
//!   versions), written once for every backend;
//! - `accounting.rs`: usage and quota arithmetic, written once;
//! - `sweeper.rs`: the background thread that removes expired entries;
//! - `options.rs`, `limits.rs`, `clock.rs`, `types.rs`, `error.rs`: what
//!   the front takes and returns. Only the front reads the clock.
//!
//! The **backends** (`backend/`) store the data and apply each request
//! atomically: `backend/redb` (an embedded file, one writer thread with group
//! commit) and `backend/postgres` (a database many host processes share).

mod accounting;
mod backend;
pub(crate) mod blob;
mod clock;
pub(crate) mod error;
mod limits;
mod namespace;
mod options;
mod rules;
mod stage;
mod storage;
mod stream;
mod sweeper;
mod transfer;
mod types;
mod workspace;

#[cfg(any(test, feature = "testing"))]
pub use backend::{Audit, RawStatement};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BoxError, ErrorKind, OpenError, StorageError};
pub use limits::Limits;
pub use namespace::{Keys, Namespace};
pub use options::{Durability, PostgresOptions, StorageOptions};
pub use rules::MAX_NAMESPACE_BYTES;
pub use storage::Storage;
#[cfg(any(test, feature = "testing"))]
pub use storage::backend_calls_on_this_thread;
pub use stream::{StreamOptions, StreamReader, StreamWriter, ValueInfo};
pub use transfer::{
    ExportOptions, ExportSummary, ImportMode, ImportSummary, Progress, TransferError,
};
pub use types::{
    Action, Cleared, CommitStats, Condition, Entry, KeyPage, Op, Outcome, Quota, QuotaSource,
    Usage, WriteOptions,
};
pub use workspace::Workspace;

#[cfg(test)]
mod tests;
