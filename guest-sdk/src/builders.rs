//! Builders: a write with options ([`Put`]), a [`Counter`], and an
//! all-or-nothing [`Transaction`].

use std::time::Duration;

use crate::namespace::millis;
use crate::{Condition, Error, Namespace, Result, wit};

/// A write with a time-to-live and/or a condition, from [`put`](crate::put)
/// or [`Namespace::put`]. Nothing happens until [`apply`](Put::apply).
///
/// ```no_run
/// use std::time::Duration;
/// // Insert-if-absent with expiry: a lock that frees itself.
/// match cubby_sdk::put("lock", b"worker-1").if_absent().ttl(Duration::from_secs(30)).apply() {
///     Ok(_version) => println!("got the lock"),
///     Err(cubby_sdk::Error::Conflict { .. }) => println!("someone else holds it"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Put does nothing until `apply` is called"]
pub struct Put {
    namespace: Namespace,
    key: String,
    value: Vec<u8>,
    ttl: Option<Duration>,
    condition: Option<Condition>,
}

impl Put {
    pub(crate) fn new(namespace: Namespace, key: String, value: Vec<u8>) -> Self {
        Self {
            namespace,
            key,
            value,
            ttl: None,
            condition: None,
        }
    }

    /// Expire `ttl` after the write (at least 1 ms).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Write only if no live entry is stored under the key.
    pub fn if_absent(self) -> Self {
        self.when(Condition::Absent)
    }

    /// Write only if the entry still has `version` (compare-and-swap).
    pub fn if_version(self, version: u64) -> Self {
        self.when(Condition::VersionEquals(version))
    }

    /// Write only if the entry holds exactly `value`.
    pub fn if_value(self, value: impl Into<Vec<u8>>) -> Self {
        self.when(Condition::ValueEquals(value.into()))
    }

    /// Write only if `condition` holds.
    pub fn when(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }

    /// Performs the write and returns the new version. A condition that does
    /// not hold is [`Error::Conflict`], carrying what is stored now.
    pub fn apply(self) -> Result<u64> {
        let options = wit::WriteOptions {
            ttl_ms: self.ttl.map(millis),
            condition: self.condition.map(Into::into),
        };
        Ok(wit::set(
            self.namespace.name(),
            &self.key,
            &self.value,
            &options,
        )?)
    }
}

/// An atomic 64-bit counter stored under one key.
///
/// Increments are atomic across any number of concurrent plugin instances.
/// A counter is stored as decimal text, so [`get_string`](crate::get_string)
/// and the `cubby kv get` command read it as a number.
///
/// ```no_run
/// use cubby_sdk::Counter;
/// use std::time::Duration;
///
/// let visits = Counter::new("visits");
/// let n = visits.increment()?;
/// // A counter for this minute that deletes itself when the minute is over.
/// let this_minute = Counter::new("requests/minute-29017").expire_new_after(Duration::from_secs(60));
/// this_minute.add(1)?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Counter {
    namespace: Namespace,
    key: String,
    ttl: Option<Duration>,
}

impl Counter {
    /// The counter under `key` in the default space.
    pub fn new(key: impl Into<String>) -> Self {
        Self::in_namespace(Namespace::DEFAULT, key.into())
    }

    pub(crate) fn in_namespace(namespace: Namespace, key: String) -> Self {
        Self {
            namespace,
            key,
            ttl: None,
        }
    }

    /// When an increment creates the counter, make it expire `ttl` later (an
    /// existing counter keeps its expiry): the building block of fixed
    /// windows.
    pub fn expire_new_after(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Adds `delta` (may be negative) and returns the new value. A missing
    /// counter starts at 0. [`Error::NotACounter`] if the key holds something
    /// else, [`Error::Overflow`] past the range of `i64`.
    pub fn add(&self, delta: i64) -> Result<i64> {
        Ok(wit::increment(
            self.namespace.name(),
            &self.key,
            delta,
            self.ttl.map(millis),
        )?)
    }

    /// Adds 1 and returns the new value.
    pub fn increment(&self) -> Result<i64> {
        self.add(1)
    }

    /// Subtracts 1 and returns the new value.
    pub fn decrement(&self) -> Result<i64> {
        self.add(-1)
    }

    /// The current value; 0 when the counter does not exist.
    pub fn get(&self) -> Result<i64> {
        match self.namespace.get(&self.key)? {
            None => Ok(0),
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Error::NotACounter),
        }
    }

    /// Deletes the counter (it reads as 0 again); returns whether it existed.
    pub fn reset(&self) -> Result<bool> {
        self.namespace.delete(&self.key)
    }
}

/// A key in a namespace, naming the target of a [`Transaction`] operation. A
/// plain `&str` or `String` is a key in the default space; use
/// [`Namespace::key`] for others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub(crate) namespace: String,
    pub(crate) key: String,
}

impl From<&str> for Key {
    fn from(key: &str) -> Self {
        Namespace::DEFAULT.key(key)
    }
}

impl From<String> for Key {
    fn from(key: String) -> Self {
        Namespace::DEFAULT.key(key)
    }
}

/// The result of one [`Transaction`] operation, in the same position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A check held.
    Checked,
    /// A set stored its value with this version.
    Set(u64),
    /// A delete ran; `true` if there was an entry.
    Deleted(bool),
    /// An increment left the counter at this value.
    Incremented(i64),
}

/// Operations applied in order, all-or-nothing, in one host transaction.
///
/// Each operation may carry a condition ([`when`](Transaction::when) and the
/// `if_*` methods apply to the operation added last), checked against the
/// state the earlier operations left. If any condition fails
/// ([`Error::Conflict`] with its index) or any operation fails (a limit, the
/// quota, a counter error), nothing is written.
///
/// ```no_run
/// use cubby_sdk::{Namespace, Transaction};
///
/// // Move a job from "queued" to "running" only if nobody took it first.
/// let queued = Namespace::new("queued");
/// let running = Namespace::new("running");
/// let job = queued.entry("job-7")?.expect("queued");
/// Transaction::new()
///     .delete(queued.key("job-7")).if_version(job.version)
///     .set(running.key("job-7"), job.value)
///     .increment("jobs-started", 1)
///     .commit()?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a Transaction does nothing until `commit` is called"]
pub struct Transaction {
    ops: Vec<wit::Operation>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, key: impl Into<Key>, action: wit::Action) -> Self {
        let key = key.into();
        self.ops.push(wit::Operation {
            namespace: key.namespace,
            key: key.key,
            condition: None,
            action,
        });
        self
    }

    /// Only checks `condition` for `key`.
    pub fn check(self, key: impl Into<Key>, condition: Condition) -> Self {
        self.push(key, wit::Action::Check).when(condition)
    }

    /// Stores `value` under `key` (no expiry).
    pub fn set(self, key: impl Into<Key>, value: impl Into<Vec<u8>>) -> Self {
        self.set_with_ttl(key, value, None)
    }

    /// Stores `value` under `key`, expiring after `ttl` if given.
    pub fn set_with_ttl(
        self,
        key: impl Into<Key>,
        value: impl Into<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> Self {
        let put = wit::Put {
            value: value.into(),
            ttl_ms: ttl.map(millis),
        };
        self.push(key, wit::Action::Set(put))
    }

    /// Stores `value` as JSON under `key`.
    pub fn set_json<T: serde::Serialize + ?Sized>(
        self,
        key: impl Into<Key>,
        value: &T,
    ) -> Result<Self> {
        let bytes = serde_json::to_vec(value).map_err(crate::error::encode_error)?;
        Ok(self.set(key, bytes))
    }

    /// Removes `key`.
    pub fn delete(self, key: impl Into<Key>) -> Self {
        self.push(key, wit::Action::Delete)
    }

    /// Adds `delta` to the counter under `key`.
    pub fn increment(self, key: impl Into<Key>, delta: i64) -> Self {
        self.push(key, wit::Action::Increment(delta))
    }

    /// Guards the operation added last with `condition` (replacing any
    /// earlier one). Does nothing on an empty transaction.
    pub fn when(mut self, condition: Condition) -> Self {
        if let Some(op) = self.ops.last_mut() {
            op.condition = Some(condition.into());
        }
        self
    }

    /// The last operation applies only if its key holds no live entry.
    pub fn if_absent(self) -> Self {
        self.when(Condition::Absent)
    }

    /// The last operation applies only if its entry has `version`.
    pub fn if_version(self, version: u64) -> Self {
        self.when(Condition::VersionEquals(version))
    }

    /// The last operation applies only if its entry holds exactly `value`.
    pub fn if_value(self, value: impl Into<Vec<u8>>) -> Self {
        self.when(Condition::ValueEquals(value.into()))
    }

    /// How many operations it holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether it holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Applies every operation, all-or-nothing, and returns their outcomes.
    pub fn commit(self) -> Result<Vec<Outcome>> {
        let outcomes = wit::transaction(&self.ops)?;
        Ok(outcomes
            .into_iter()
            .map(|o| match o {
                wit::Outcome::Checked => Outcome::Checked,
                wit::Outcome::Set(v) => Outcome::Set(v),
                wit::Outcome::Deleted(d) => Outcome::Deleted(d),
                wit::Outcome::Incremented(n) => Outcome::Incremented(n),
            })
            .collect())
    }
}
