//! [`Workspace`]: the handle through which one tenant's data is reached.

use std::sync::Arc;
use std::time::Duration;

use super::namespace::key_page;
use super::{
    Condition, Entry, KeyPage, Keys, Namespace, Op, Outcome, Quota, Storage, StorageError,
    StreamOptions, StreamReader, StreamWriter, Usage, ValueInfo, WriteOptions, rules,
};

/// One workspace's data: the only way to reach stored entries.
///
/// Every operation is confined to this workspace; no key, prefix, namespace
/// or cursor can reach outside it. A workspace has a default space and any
/// number of named namespaces ([`Workspace::namespace`]). The key-value
/// methods here (`get`, `set`, …) act on the default space; the same
/// methods on a [`Namespace`] act on that namespace. [`Workspace::usage`]
/// and [`Workspace::clear_all`] are about the whole workspace.
///
/// Reads never wait for writers. Writes block until they are committed (and,
/// with [`Durability::Durable`](crate::options::Durability), on disk).
///
/// ```
/// use cubby_host::{Storage, StorageOptions};
/// # fn main() -> anyhow::Result<()> {
/// let ws = Storage::in_memory(StorageOptions::default())?.workspace("w")?;
/// ws.set("k", b"default space".to_vec())?;
/// let sessions = ws.namespace("sessions")?;
/// sessions.set("k", b"a session".to_vec())?;
/// assert_eq!(ws.get("k")?.as_deref(), Some(&b"default space"[..]));
/// assert_eq!(ws.usage()?.keys, 2, "the whole workspace");
/// assert_eq!(ws.default_space().usage()?.keys, 1, "the default space");
/// assert_eq!(ws.clear_all()?, 2, "every namespace");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Workspace {
    default: Namespace,
}

impl Workspace {
    pub(crate) fn new(storage: Storage, id: Arc<str>) -> Self {
        Self {
            default: Namespace::new(storage, id, Arc::from("")),
        }
    }

    /// The workspace id.
    pub fn id(&self) -> &str {
        self.default.workspace_id()
    }

    /// The storage this workspace lives in.
    pub fn storage(&self) -> &Storage {
        self.default.storage()
    }

    /// The workspace's default space, as a [`Namespace`] (its name is `""`).
    pub fn default_space(&self) -> &Namespace {
        &self.default
    }

    /// The namespace `name` of this workspace (`""` is the default space).
    /// Nothing is created: a namespace exists while it holds a key.
    pub fn namespace(&self, name: &str) -> Result<Namespace, StorageError> {
        rules::check_namespace(name)?;
        Ok(Namespace::new(
            self.storage().clone(),
            Arc::from(self.id()),
            Arc::from(name),
        ))
    }

    /// One page of the names of the namespaces that hold at least one live
    /// key, in ascending byte order; the default space is not listed. Paged
    /// like [`Namespace::list_keys`].
    pub fn namespaces(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<KeyPage, StorageError> {
        let storage = self.storage();
        let after = cursor.map(|c| rules::decode_cursor(c, "")).transpose()?;
        let page = storage.backend().list_namespaces(
            self.id(),
            after.as_deref(),
            storage.limits().page_size(limit),
            storage.now_ms(),
        )?;
        Ok(key_page(page))
    }

    /// What the whole workspace stores (all namespaces): live entries only.
    /// The default space alone: `default_space().usage()`.
    pub fn usage(&self) -> Result<Usage, StorageError> {
        self.default.usage_of(None)
    }

    /// The quota this workspace's writes are checked against: this
    /// process's override ([`Storage::override_quota`]), else the quota stored
    /// in the database ([`Storage::store_quota`]), else the default.
    pub fn quota(&self) -> Result<Quota, StorageError> {
        self.storage().quota(self.id())
    }

    /// Removes the whole workspace: every entry of every namespace, and its
    /// usage. It works in bounded steps (one transaction of at most one
    /// listing page each, so writers are served in between) until nothing
    /// is left; returns how many live entries it removed. Entries written
    /// meanwhile are removed too. The id can be used again afterwards; its
    /// versions still never repeat. To empty one namespace, or the default
    /// space only, see [`Namespace::clear_all`].
    pub fn clear_all(&self) -> Result<u64, StorageError> {
        let storage = self.storage();
        let budget = storage.limits().max_page_size.max(1) as usize;
        let mut removed = 0;
        loop {
            let step = storage
                .backend()
                .remove_workspace(self.id(), budget, storage.now_ms())?;
            removed += step.deleted;
            if step.done {
                return Ok(removed);
            }
        }
    }

    /// Applies `ops` in order, all-or-nothing, in one transaction, and
    /// returns one [`Outcome`] per op. Each op's condition is checked against
    /// the state the earlier ops left; if one fails
    /// ([`StorageError::Conflict`] with its index) or any op fails (a limit,
    /// the quota, a counter error), nothing is written. At most
    /// [`Limits::max_batch_ops`](crate::options::Limits) ops.
    ///
    /// ```
    /// use cubby_host::{Storage, StorageError, StorageOptions};
    /// use cubby_host::ops::{Condition, Op, Outcome};
    /// # fn main() -> anyhow::Result<()> {
    /// let ws = Storage::in_memory(StorageOptions::default())?.workspace("w")?;
    /// let take_lock = || ws.transact(vec![
    ///     Op::set("lock", b"me".to_vec()).when(Condition::Absent),
    ///     Op::increment("locks-taken", 1),
    /// ]);
    /// assert_eq!(take_lock()?[1], Outcome::Incremented(1));
    /// assert!(matches!(take_lock(), Err(StorageError::Conflict { index: 0, .. })));
    /// assert_eq!(ws.get("locks-taken")?.as_deref(), Some(&b"1"[..]));
    /// # Ok(()) }
    /// ```
    pub fn transact(&self, ops: Vec<Op>) -> Result<Vec<Outcome>, StorageError> {
        self.default.run_batch(ops)
    }

    /// The value stored under `key` in the default space; see [`Namespace::get`].
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.default.get(key)
    }

    /// The entry under `key` in the default space; see [`Namespace::entry`].
    pub fn entry(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        self.default.entry(key)
    }

    /// Whether the default space holds `key`; see [`Namespace::exists`].
    pub fn exists(&self, key: &str) -> Result<bool, StorageError> {
        self.default.exists(key)
    }

    /// Starts writing a value under `key` in the default space as a
    /// stream; see [`Namespace::write_stream`].
    pub fn write_stream(
        &self,
        key: &str,
        options: StreamOptions,
    ) -> Result<StreamWriter, StorageError> {
        self.default.write_stream(key, options)
    }

    /// Opens the value under `key` in the default space for reading as a
    /// stream; see [`Namespace::read_stream`].
    pub fn read_stream(&self, key: &str) -> Result<Option<StreamReader>, StorageError> {
        self.default.read_stream(key)
    }

    /// The size and metadata of the value under `key` in the default space;
    /// see [`Namespace::info`].
    pub fn info(&self, key: &str) -> Result<Option<ValueInfo>, StorageError> {
        self.default.info(key)
    }

    /// The values of `keys` in the default space; see [`Namespace::get_many`].
    pub fn get_many(&self, keys: &[impl AsRef<str>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.default.get_many(keys)
    }

    /// Stores `value` under `key` in the default space; see [`Namespace::set`].
    pub fn set(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<u64, StorageError> {
        self.default.set(key, value)
    }

    /// Stores `value` under `key` in the default space with a time-to-live
    /// and/or a condition; see [`Namespace::set_with`].
    pub fn set_with(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        options: WriteOptions,
    ) -> Result<u64, StorageError> {
        self.default.set_with(key, value, options)
    }

    /// Removes `key` from the default space; see [`Namespace::delete`].
    pub fn delete(&self, key: &str) -> Result<bool, StorageError> {
        self.default.delete(key)
    }

    /// Removes `key` from the default space if `condition` holds; see
    /// [`Namespace::delete_if`].
    pub fn delete_if(&self, key: &str, condition: Condition) -> Result<bool, StorageError> {
        self.default.delete_if(key, condition)
    }

    /// Sets or removes the expiry of `key` in the default space; see
    /// [`Namespace::expire`].
    pub fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool, StorageError> {
        self.default.expire(key, ttl)
    }

    /// Returns the entry under `key` in the default space and renews its
    /// expiry; see [`Namespace::get_and_renew`].
    pub fn get_and_renew(&self, key: &str, ttl: Duration) -> Result<Option<Entry>, StorageError> {
        self.default.get_and_renew(key, ttl)
    }

    /// Adds `delta` to the counter under `key` in the default space; see
    /// [`Namespace::increment`].
    pub fn increment(
        &self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, StorageError> {
        self.default.increment(key, delta, ttl)
    }

    /// Stores every pair in the default space, all-or-nothing; see
    /// [`Namespace::set_many`].
    pub fn set_many(
        &self,
        entries: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        self.default.set_many(entries)
    }

    /// Removes every key from the default space, all-or-nothing; see
    /// [`Namespace::delete_many`].
    pub fn delete_many(&self, keys: &[impl AsRef<str>]) -> Result<u64, StorageError> {
        self.default.delete_many(keys)
    }

    /// One page of the default space's keys; see [`Namespace::list_keys`].
    pub fn list_keys(
        &self,
        prefix: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<KeyPage, StorageError> {
        self.default.list_keys(prefix, cursor, limit)
    }

    /// Every key of the default space, page by page; see [`Namespace::keys`].
    pub fn keys(&self, prefix: Option<&str>) -> Keys<'_> {
        self.default.keys(prefix)
    }
}
