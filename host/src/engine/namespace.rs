//! [`Namespace`]: one namespace of a workspace, and [`Keys`], the iterator
//! over its listing.

use std::sync::Arc;
use std::time::Duration;

use super::backend::{Backend, Page, Row, WriteRequest};
use super::stream::{StreamOptions, StreamReader, StreamWriter, ValueInfo, materialize};
use super::{
    Action, Cleared, Condition, Entry, KeyPage, Op, Outcome, Storage, StorageError, Usage,
    WriteOptions, rules,
};

/// One namespace of a workspace: its own keys, listing, usage and `clear`.
/// Obtained from [`Workspace::namespace`](crate::Workspace::namespace) or
/// [`Workspace::default_space`](crate::Workspace::default_space).
///
/// The pair (namespace, key) is a structured key: the same key in two
/// namespaces, or in a namespace and the default space, are different
/// entries, whatever characters either holds.
#[derive(Clone, Debug)]
pub struct Namespace {
    storage: Storage,
    workspace: Arc<str>,
    name: Arc<str>,
}

impl Namespace {
    pub(crate) fn new(storage: Storage, workspace: Arc<str>, name: Arc<str>) -> Self {
        Self {
            storage,
            workspace,
            name,
        }
    }

    pub(crate) fn workspace_id(&self) -> &str {
        &self.workspace
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }
}

impl Namespace {
    /// The namespace's name; `""` for the default space.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value stored under `key`, or `None`. A streamed value larger
    /// than [`Limits::max_value_bytes`](crate::options::Limits) is
    /// [`StorageError::TooLargeToRead`]: read it with
    /// [`read_stream`](Self::read_stream).
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.read_whole(key)?.map(|row| row.value))
    }

    /// The entry stored under `key`, with its version and remaining
    /// time-to-live, or `None`. A large streamed value is refused as by
    /// [`get`](Self::get).
    pub fn entry(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        let now = self.storage.now_ms();
        Ok(self.read_whole(key)?.map(|row| row.to_entry(now)))
    }

    /// Starts writing a value under `key` as a stream: any size up to
    /// [`Limits::max_stream_bytes`](crate::options::Limits), a chunk in
    /// memory at a time, published atomically by
    /// [`StreamWriter::finish`]. At most
    /// [`Limits::max_open_streams`](crate::options::Limits) writers of a
    /// workspace are open at once.
    pub fn write_stream(
        &self,
        key: &str,
        options: StreamOptions,
    ) -> Result<StreamWriter, StorageError> {
        StreamWriter::open(self.clone(), key, options)
    }

    /// Opens the value under `key` for reading a chunk at a time, or `None`
    /// if there is none. Works for every entry, streamed or not.
    pub fn read_stream(&self, key: &str) -> Result<Option<StreamReader>, StorageError> {
        Ok(self.read(key)?.map(|row| StreamReader::open(self, row)))
    }

    /// The size and metadata of the value under `key`, without reading it;
    /// `None` if there is none.
    pub fn info(&self, key: &str) -> Result<Option<ValueInfo>, StorageError> {
        let now = self.storage.now_ms();
        Ok(self.read(key)?.map(|row| ValueInfo::of(&row, now)))
    }

    /// Whether a value is stored under `key`.
    pub fn exists(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.read(key)?.is_some())
    }

    /// The values of `keys`, in order, read from one consistent snapshot. At
    /// most [`Limits::max_batch_ops`](crate::options::Limits) keys.
    pub fn get_many(&self, keys: &[impl AsRef<str>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let limits = self.storage.limits();
        rules::check_batch(limits, keys.len())?;
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        for key in &keys {
            rules::check_key(limits, key)?;
        }
        let rows =
            self.backend()
                .get_many(&self.workspace, &self.name, &keys, self.storage.now_ms())?;
        rows.into_iter()
            .map(|r| r.map(|r| materialize(self, r).map(|r| r.value)).transpose())
            .collect()
    }

    /// Stores `value` under `key`, replacing any previous entry (and its
    /// expiry); returns the new version. An owned `Vec<u8>` is handed to the
    /// writer without a copy.
    pub fn set(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<u64, StorageError> {
        self.set_with(key, value, WriteOptions::default())
    }

    /// Stores `value` under `key` with a time-to-live and/or a condition;
    /// returns the new version. A failed condition is
    /// [`StorageError::Conflict`] carrying what is stored now.
    ///
    /// ```
    /// use cubby_host::{Storage, StorageError, StorageOptions};
    /// use cubby_host::ops::WriteOptions;
    /// # fn main() -> anyhow::Result<()> {
    /// let ws = Storage::in_memory(StorageOptions::default())?.workspace("w")?;
    /// let v1 = ws.set("doc", b"draft".to_vec())?;
    /// let v2 = ws.set_with("doc", b"final".to_vec(), WriteOptions::default().if_version(v1))?;
    /// let stale = ws.set_with("doc", b"lost".to_vec(), WriteOptions::default().if_version(v1));
    /// match stale {
    ///     Err(StorageError::Conflict { current: Some(now), .. }) => assert_eq!(now.version, v2),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn set_with(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        options: WriteOptions,
    ) -> Result<u64, StorageError> {
        let op = Op {
            condition: options.condition,
            ..self.op(
                key,
                Action::Set {
                    value: value.into(),
                    ttl: options.ttl,
                },
            )
        };
        match self.run_one(op)? {
            Outcome::Set { version } => Ok(version),
            other => Err(unexpected(Some(other))),
        }
    }

    /// Removes `key`; returns whether it existed. Returns once committed.
    pub fn delete(&self, key: &str) -> Result<bool, StorageError> {
        self.delete_op(self.op(key, Action::Delete))
    }

    /// Removes `key` only if `condition` holds (for example, its version is
    /// still the one read); otherwise [`StorageError::Conflict`].
    pub fn delete_if(&self, key: &str, condition: Condition) -> Result<bool, StorageError> {
        self.delete_op(self.op(key, Action::Delete).when(condition))
    }

    fn delete_op(&self, op: Op) -> Result<bool, StorageError> {
        match self.run_one(op)? {
            Outcome::Deleted(existed) => Ok(existed),
            other => Err(unexpected(Some(other))),
        }
    }

    /// Sets (`Some`) or removes (`None`) the expiry of `key`, keeping its
    /// value and version; `false` if there is no entry.
    pub fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool, StorageError> {
        match self.run_one(self.op(key, Action::Expire(ttl)))? {
            Outcome::ExpiryChanged(found) => Ok(found),
            other => Err(unexpected(Some(other))),
        }
    }

    /// Returns the entry under `key` and makes it expire `ttl` from now, in
    /// one atomic write (sliding expiry); the version is kept. `None` (and
    /// nothing written) if there is no entry. A large streamed value is
    /// renewed, then refused as by [`get`](Self::get).
    pub fn get_and_renew(&self, key: &str, ttl: Duration) -> Result<Option<Entry>, StorageError> {
        match self.run_one(self.op(key, Action::Renew(ttl)))? {
            Outcome::Renewed(Some(entry)) if entry.value.is_empty() => {
                // Perhaps a streamed value, whose bytes the write did not
                // read: read them now, if it is still the same value.
                match self.read(key)? {
                    Some(row) if row.blob.is_some() && row.version == entry.version => {
                        let now = self.storage.now_ms();
                        Ok(Some(materialize(self, row)?.to_entry(now)))
                    }
                    _ => Ok(Some(entry)),
                }
            }
            Outcome::Renewed(entry) => Ok(entry),
            other => Err(unexpected(Some(other))),
        }
    }

    /// Adds `delta` to the counter under `key` and returns the new value,
    /// atomically. A missing key counts as 0 and is created, expiring after
    /// `ttl` if given; an existing counter keeps its expiry. A counter is
    /// stored as decimal ASCII; any other stored value is
    /// [`StorageError::NotACounter`], a result outside `i64` is
    /// [`StorageError::Overflow`].
    pub fn increment(
        &self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, StorageError> {
        match self.run_one(self.op(key, Action::Increment { delta, ttl }))? {
            Outcome::Incremented(n) => Ok(n),
            other => Err(unexpected(Some(other))),
        }
    }

    /// Adds `delta` to a counter that must stay non-negative and returns the
    /// new value, atomically: as [`increment`](Self::increment), but a
    /// stored negative counter is [`StorageError::NotACounter`] and a result
    /// above `i64::MAX` is [`StorageError::Overflow`]. For unsigned counters
    /// such as `wasi:keyvalue@0.2.0-draft`'s.
    pub fn increment_unsigned(
        &self,
        key: &str,
        delta: u64,
        ttl: Option<Duration>,
    ) -> Result<u64, StorageError> {
        match self.run_one(self.op(key, Action::IncrementUnsigned { delta, ttl }))? {
            Outcome::Incremented(n) => u64::try_from(n).map_err(|_| unexpected(None)),
            other => Err(unexpected(Some(other))),
        }
    }

    /// Stores every pair, all-or-nothing, in one transaction (a key given
    /// twice keeps the last value).
    pub fn set_many(
        &self,
        entries: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        let ops: Vec<Op> = entries
            .into_iter()
            .map(|(key, value)| Op {
                namespace: self.name.to_string(),
                ..Op::set(key, value)
            })
            .collect();
        self.run_batch(ops).map(|_| ())
    }

    /// Removes every key, all-or-nothing, in one transaction; returns how many
    /// existed.
    pub fn delete_many(&self, keys: &[impl AsRef<str>]) -> Result<u64, StorageError> {
        let ops = keys
            .iter()
            .map(|key| self.op(key.as_ref(), Action::Delete))
            .collect();
        let outcomes = self.run_batch(ops)?;
        Ok(outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Deleted(true)))
            .count() as u64)
    }

    /// One page of this namespace's keys in ascending byte order, optionally
    /// only those starting with `prefix`. Pass the returned cursor back (with
    /// the same prefix) for the next page. `limit` is clamped as described in
    /// [`Limits::page_size`](crate::options::Limits::page_size).
    pub fn list_keys(
        &self,
        prefix: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<KeyPage, StorageError> {
        let prefix = prefix.unwrap_or("");
        let after = cursor
            .map(|c| rules::decode_cursor(c, prefix))
            .transpose()?;
        let page = self.backend().list_keys(
            &self.workspace,
            &self.name,
            prefix,
            after.as_deref(),
            self.storage.limits().page_size(limit),
            self.storage.now_ms(),
        )?;
        Ok(key_page(page))
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
            namespace: self,
            prefix: prefix.map(str::to_owned),
            cursor: None,
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Removes up to one page ([`Limits::max_page_size`](crate::options::Limits)) of
    /// this namespace's keys in one atomic write, so that no call holds the
    /// writer for long; call again until [`Cleared::done`]. Clearing the
    /// default space leaves named namespaces alone; to remove a whole
    /// workspace, see [`Workspace::clear_all`](crate::Workspace::clear_all).
    pub fn clear(&self) -> Result<Cleared, StorageError> {
        self.backend().clear(
            &self.workspace,
            &self.name,
            self.storage.limits().max_page_size.max(1) as usize,
            self.storage.now_ms(),
        )
    }

    /// Removes every key of this namespace, one bounded [`clear`](Self::clear)
    /// step (one transaction) after another, so writers are served in
    /// between; returns how many live entries were removed.
    pub fn clear_all(&self) -> Result<u64, StorageError> {
        let mut removed = 0;
        loop {
            let step = self.clear()?;
            removed += step.deleted;
            if step.done {
                return Ok(removed);
            }
        }
    }

    /// What this namespace stores: live entries only.
    pub fn usage(&self) -> Result<Usage, StorageError> {
        self.usage_of(Some(&self.name))
    }

    pub(crate) fn usage_of(&self, ns: Option<&str>) -> Result<Usage, StorageError> {
        self.backend()
            .usage(&self.workspace, ns, self.storage.now_ms())
    }

    fn backend(&self) -> &dyn Backend {
        self.storage.backend()
    }

    /// The live entry under `key` (a streamed value's bytes not read).
    fn read(&self, key: &str) -> Result<Option<Row>, StorageError> {
        rules::check_key(self.storage.limits(), key)?;
        self.backend()
            .get(&self.workspace, &self.name, key, self.storage.now_ms())
    }

    /// The live entry under `key` with its whole value.
    fn read_whole(&self, key: &str) -> Result<Option<Row>, StorageError> {
        self.read(key)?
            .map(|row| materialize(self, row))
            .transpose()
    }

    fn op(&self, key: &str, action: Action) -> Op {
        Op {
            namespace: self.name.to_string(),
            ..Op::new(key, action)
        }
    }

    fn run_one(&self, op: Op) -> Result<Outcome, StorageError> {
        rules::check_op(self.storage.limits(), &op)?;
        self.run(vec![op])?.pop().ok_or_else(|| unexpected(None))
    }

    pub(crate) fn run_batch(&self, ops: Vec<Op>) -> Result<Vec<Outcome>, StorageError> {
        let limits = self.storage.limits();
        rules::check_batch(limits, ops.len())?;
        for op in &ops {
            rules::check_op(limits, op)?;
        }
        self.run(ops)
    }

    fn run(&self, ops: Vec<Op>) -> Result<Vec<Outcome>, StorageError> {
        self.backend().write(WriteRequest {
            workspace: self.workspace.clone(),
            ops,
            blob: None,
            now_ms: self.storage.now_ms(),
            quota: self.storage.quota_rule(&self.workspace),
        })
    }
}

/// The backend answered an op with an outcome of another kind (or none):
/// cannot happen, but is an error rather than a panic.
fn unexpected(outcome: Option<Outcome>) -> StorageError {
    StorageError::internal(&format!(
        "the backend answered an operation with {outcome:?}"
    ))
}

/// A backend's page, with the cursor that resumes after its last name.
pub(crate) fn key_page(page: Page) -> KeyPage {
    let cursor = page
        .more
        .then(|| page.names.last().map(|k| rules::encode_cursor(k)))
        .flatten();
    KeyPage {
        keys: page.names,
        cursor,
    }
}

/// An iterator over a namespace's keys; see [`Namespace::keys`].
#[derive(Debug)]
pub struct Keys<'a> {
    namespace: &'a Namespace,
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
                .namespace
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
