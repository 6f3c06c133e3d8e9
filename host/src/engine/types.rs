//! The values the engine's operations take and return.

use std::time::Duration;

use super::backend::Row;

/// Usage of a workspace or namespace: live entries only, never expired ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Number of keys stored.
    pub keys: u64,
    /// Bytes stored: the sum of the lengths of keys and values.
    pub bytes: u64,
}

/// What a [`Storage`](crate::Storage) has committed since it was opened, in
/// this process ([`Storage::commit_stats`](crate::Storage::commit_stats)).
/// With group commit, one durable commit acknowledges many writes:
/// `durable_commits / writes` is the fsyncs paid per acknowledged write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Write requests acknowledged (each public write operation, batch or
    /// transaction is one; one refused by a condition or quota counts too,
    /// as it was answered from a committed state).
    pub writes: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Commits flushed to stable storage before they were acknowledged
    /// (redb: a commit with its fsync; PostgreSQL: a commit under
    /// `synchronous_commit = on`). Relaxed mode's periodic flushes count
    /// here too.
    pub durable_commits: u64,
}

/// A workspace's quota: checked before every write, inside the write's
/// transaction. The defaults come from [`Limits`](crate::options::Limits); the host
/// can override them per workspace
/// ([`StorageOptions::quota_overrides`](crate::StorageOptions::quota_overrides),
/// [`Storage::override_quota`](crate::Storage::override_quota)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Most keys the workspace may hold.
    pub max_keys: u64,
    /// Most bytes (keys plus values) the workspace may hold.
    pub max_bytes: u64,
}

/// Where the quota that applies to a workspace comes from, in the order
/// they win ([`Storage::quota_with_source`](crate::Storage::quota_with_source)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaSource {
    /// This process's override
    /// ([`StorageOptions::quota_overrides`](crate::StorageOptions::quota_overrides),
    /// [`Storage::override_quota`](crate::Storage::override_quota)).
    Override,
    /// Stored in the database for every process
    /// ([`Storage::store_quota`](crate::Storage::store_quota)).
    Stored,
    /// The default of [`Limits`](crate::options::Limits).
    Default,
}

impl QuotaSource {
    /// `override`, `stored` or `default`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Override => "override",
            Self::Stored => "stored",
            Self::Default => "default",
        }
    }
}

/// One page of a listing (of keys, or of namespace names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys (or names) in ascending byte order.
    pub keys: Vec<String>,
    /// The cursor for the next page, `None` on the last page.
    pub cursor: Option<String>,
}

/// A stored entry with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: Vec<u8>,
    /// Changes on every write of the value and is never reused, so an
    /// unchanged version means an unchanged entry (no ABA problem).
    pub version: u64,
    /// Time left until the entry expires (whole milliseconds, by the
    /// storage's [`Clock`](crate::options::Clock)); `None` if it never does.
    pub expires_in: Option<Duration>,
}

/// A condition on a key's current entry, checked atomically with the write it
/// guards. A failed condition is [`StorageError::Conflict`](crate::StorageError::Conflict).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    /// No live entry is stored under the key (insert-if-absent).
    Absent,
    /// An entry with exactly this version is stored (compare-and-swap).
    VersionEquals(u64),
    /// An entry with exactly these value bytes is stored.
    ValueEquals(Vec<u8>),
}

impl Condition {
    /// Whether the condition holds for the live entry `current`. A streamed
    /// value equals `want` when its size and checksum do.
    pub(crate) fn holds(&self, current: Option<&Row>) -> bool {
        match (self, current) {
            (Self::Absent, current) => current.is_none(),
            (Self::VersionEquals(v), Some(row)) => *v == row.version,
            (Self::ValueEquals(want), Some(row)) => match &row.blob {
                Some(blob) => blob.holds(want),
                None => *want == row.value,
            },
            (_, None) => false,
        }
    }
}

/// How [`Namespace::set_with`](crate::Namespace::set_with) writes.
///
/// ```
/// use cubby_host::ops::WriteOptions;
/// use std::time::Duration;
/// let opts = WriteOptions::default().ttl(Duration::from_secs(60)).if_absent();
/// assert!(opts.condition.is_some());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Expire this long after the write; `None` for no expiry.
    pub ttl: Option<Duration>,
    /// Write only if this holds.
    pub condition: Option<Condition>,
}

impl WriteOptions {
    /// Sets the time-to-live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Writes only if the key holds no live entry.
    pub fn if_absent(mut self) -> Self {
        self.condition = Some(Condition::Absent);
        self
    }

    /// Writes only if the key's entry has this version.
    pub fn if_version(mut self, version: u64) -> Self {
        self.condition = Some(Condition::VersionEquals(version));
        self
    }
}

/// What an [`Op`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Nothing: only check the op's condition.
    Check,
    /// Store a value, replacing the entry (and its expiry).
    Set {
        /// The value.
        value: Vec<u8>,
        /// Expire this long after the write; `None` for no expiry.
        ttl: Option<Duration>,
    },
    /// Remove the key.
    Delete,
    /// Add `delta` to a counter; a missing key counts as 0 and is created
    /// with expiry `ttl` (an existing counter keeps its expiry).
    Increment {
        /// The signed amount to add.
        delta: i64,
        /// The expiry of a counter this op creates.
        ttl: Option<Duration>,
    },
    /// Add `delta` to a counter that must stay non-negative (the `u64`
    /// counters of `wasi:keyvalue@0.2.0-draft`): as [`Action::Increment`],
    /// but a stored negative counter is
    /// [`StorageError::NotACounter`](crate::StorageError::NotACounter) and a
    /// result above `i64::MAX` (the counter encoding's bound) is
    /// [`StorageError::Overflow`](crate::StorageError::Overflow).
    IncrementUnsigned {
        /// The amount to add.
        delta: u64,
        /// The expiry of a counter this op creates.
        ttl: Option<Duration>,
    },
    /// Set (`Some`) or remove (`None`) the expiry of an entry, keeping its
    /// value and version.
    Expire(Option<Duration>),
    /// Return the entry and make it expire this long from now, keeping its
    /// value and version (sliding expiry).
    Renew(Duration),
}

/// One operation of an atomic batch ([`Workspace::transact`](crate::Workspace::transact)).
///
/// ```
/// use cubby_host::ops::{Condition, Op};
/// let ops = [
///     Op::check("lock", Condition::Absent),
///     Op::set("job/1", b"queued".to_vec()).in_namespace("jobs"),
///     Op::increment("jobs-queued", 1),
/// ];
/// assert_eq!(ops[1].namespace, "jobs");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The namespace; `""` is the default space.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// Checked before the action, against the state left by the earlier ops
    /// of the same batch.
    pub condition: Option<Condition>,
    /// What to do.
    pub action: Action,
}

impl Op {
    /// An op on `key` in the default space.
    pub fn new(key: impl Into<String>, action: Action) -> Self {
        Self {
            namespace: String::new(),
            key: key.into(),
            condition: None,
            action,
        }
    }

    /// Stores `value` under `key`, without expiry.
    pub fn set(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self::new(
            key,
            Action::Set {
                value: value.into(),
                ttl: None,
            },
        )
    }

    /// Removes `key`.
    pub fn delete(key: impl Into<String>) -> Self {
        Self::new(key, Action::Delete)
    }

    /// Adds `delta` to the counter under `key`.
    pub fn increment(key: impl Into<String>, delta: i64) -> Self {
        Self::new(key, Action::Increment { delta, ttl: None })
    }

    /// Only checks that `condition` holds for `key`.
    pub fn check(key: impl Into<String>, condition: Condition) -> Self {
        Self::new(key, Action::Check).when(condition)
    }

    /// Moves the op to `namespace`.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Guards the op with `condition`.
    pub fn when(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }
}

/// The result of one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// An [`Action::Check`] held.
    Checked,
    /// An [`Action::Set`] stored the value with this version.
    Set {
        /// The new version.
        version: u64,
    },
    /// An [`Action::Delete`] ran; `true` if there was a live entry.
    Deleted(bool),
    /// An [`Action::Increment`] left the counter at this value.
    Incremented(i64),
    /// An [`Action::Expire`] ran; `false` if there was no entry.
    ExpiryChanged(bool),
    /// An [`Action::Renew`] ran: the entry after renewal, or `None`.
    Renewed(Option<Entry>),
}

/// The result of one bounded step of [`Namespace::clear`](crate::Namespace::clear).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleared {
    /// Live entries removed by this step.
    pub deleted: u64,
    /// Whether the namespace is now empty.
    pub done: bool,
}
