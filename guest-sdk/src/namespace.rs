//! [`Namespace`]: every storage function, for one namespace of the workspace.

use std::borrow::Cow;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{decode_error, encode_error};
use crate::types::Listing;
use crate::{Counter, Entry, Key, KeyPage, Keys, Put, Result, Usage, wit};

/// Most attempts [`Namespace::update`] makes before it gives up with the last
/// [`Error::Conflict`](crate::Error::Conflict).
const UPDATE_ATTEMPTS: u32 = 10_000;

/// A namespace of the workspace: its own keys, listing, usage and
/// [`clear`](Namespace::clear). The same key in two namespaces, or in a
/// namespace and the default space, are different entries; a namespace exists
/// while it holds a key, there is nothing to create.
///
/// The free functions of this crate are the methods of
/// [`Namespace::DEFAULT`], the default space.
///
/// ```no_run
/// use cubby_sdk::Namespace;
/// use std::time::Duration;
///
/// let sessions = Namespace::new("sessions");
/// sessions.put("abc123", b"user=ada").ttl(Duration::from_secs(1800)).apply()?;
/// assert!(!cubby_sdk::exists("abc123")?); // not in the default space
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    name: Cow<'static, str>,
}

impl Default for Namespace {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Namespace {
    /// The workspace's default space.
    pub const DEFAULT: Namespace = Namespace {
        name: Cow::Borrowed(""),
    };

    /// The namespace `name` (at most 128 bytes; `""` is the default space).
    /// The host checks the name on first use.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: Cow::Owned(name.into()),
        }
    }

    /// The namespace's name; `""` for the default space.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A key of this namespace, for a [`Transaction`](crate::Transaction).
    pub fn key(&self, key: impl Into<String>) -> Key {
        Key {
            namespace: self.name.to_string(),
            key: key.into(),
        }
    }

    /// Returns the bytes stored under `key`, or `None`.
    pub fn get(&self, key: impl AsRef<str>) -> Result<Option<Vec<u8>>> {
        Ok(wit::get(&self.name, key.as_ref())?)
    }

    /// Returns the entry under `key` with its version and remaining
    /// time-to-live, or `None`.
    pub fn entry(&self, key: impl AsRef<str>) -> Result<Option<Entry>> {
        Ok(wit::get_entry(&self.name, key.as_ref())?.map(Into::into))
    }

    /// Returns the entry under `key` and, atomically, makes it expire `ttl`
    /// from now (sliding expiry, as for sessions). `None` if there is none.
    pub fn get_and_renew(&self, key: impl AsRef<str>, ttl: Duration) -> Result<Option<Entry>> {
        Ok(wit::get_and_renew(&self.name, key.as_ref(), millis(ttl))?.map(Into::into))
    }

    /// Returns whether a value is stored under `key`.
    pub fn exists(&self, key: impl AsRef<str>) -> Result<bool> {
        Ok(wit::exists(&self.name, key.as_ref())?)
    }

    /// Stores `value` under `key`, replacing any previous entry and its
    /// expiry. For a TTL or a condition, use [`put`](Self::put).
    pub fn set(&self, key: impl AsRef<str>, value: impl AsRef<[u8]>) -> Result<()> {
        let options = wit::WriteOptions {
            ttl_ms: None,
            condition: None,
        };
        wit::set(&self.name, key.as_ref(), value.as_ref(), &options)?;
        Ok(())
    }

    /// Starts a write of `value` under `key` that can take a TTL and a
    /// condition; [`Put::apply`] performs it.
    pub fn put(&self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Put {
        Put::new(self.clone(), key.into(), value.into())
    }

    /// Like [`put`](Self::put), with `value` encoded as JSON.
    pub fn put_json<T: Serialize + ?Sized>(
        &self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<Put> {
        let bytes = serde_json::to_vec(value).map_err(encode_error)?;
        Ok(self.put(key, bytes))
    }

    /// Removes `key`; returns whether it existed. A missing key is not an
    /// error.
    pub fn delete(&self, key: impl AsRef<str>) -> Result<bool> {
        Ok(wit::delete(&self.name, key.as_ref(), None)?)
    }

    /// Removes `key` only if its entry still has `version` (otherwise
    /// [`Error::Conflict`](crate::Error::Conflict)).
    pub fn delete_if_version(&self, key: impl AsRef<str>, version: u64) -> Result<bool> {
        let condition = wit::Condition::VersionEquals(version);
        Ok(wit::delete(&self.name, key.as_ref(), Some(&condition))?)
    }

    /// Sets (`Some`) or removes (`None`) the expiry of `key`, keeping its value
    /// and version; `false` if there is no entry.
    pub fn expire(&self, key: impl AsRef<str>, ttl: Option<Duration>) -> Result<bool> {
        Ok(wit::expire(&self.name, key.as_ref(), ttl.map(millis))?)
    }

    /// Adds `delta` to the counter under `key` and returns the new value,
    /// atomically; a missing key starts at 0. See [`Counter`] for more.
    pub fn increment(&self, key: impl AsRef<str>, delta: i64) -> Result<i64> {
        Ok(wit::increment(&self.name, key.as_ref(), delta, None)?)
    }

    /// A [`Counter`] stored under `key` in this namespace.
    pub fn counter(&self, key: impl Into<String>) -> Counter {
        Counter::in_namespace(self.clone(), key.into())
    }

    /// Returns the value under `key` as UTF-8 text, or `None`. A value that is
    /// not UTF-8 is [`Error::Decode`](crate::Error::Decode).
    pub fn get_string(&self, key: impl AsRef<str>) -> Result<Option<String>> {
        let key = key.as_ref();
        self.get(key)?
            .map(|bytes| String::from_utf8(bytes).map_err(|e| decode_error(key, e)))
            .transpose()
    }

    /// Stores `value` as UTF-8 text under `key`.
    pub fn set_string(&self, key: impl AsRef<str>, value: impl AsRef<str>) -> Result<()> {
        self.set(key, value.as_ref().as_bytes())
    }

    /// Returns the JSON value under `key` decoded as `T`, or `None`.
    pub fn get_json<T: DeserializeOwned>(&self, key: impl AsRef<str>) -> Result<Option<T>> {
        let key = key.as_ref();
        self.get(key)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(|e| decode_error(key, e)))
            .transpose()
    }

    /// Stores `value` as JSON under `key`.
    pub fn set_json<T: Serialize + ?Sized>(&self, key: impl AsRef<str>, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(encode_error)?;
        self.set(key, bytes)
    }

    /// Replaces the value under `key` with `f(current)`, retrying with
    /// compare-and-swap until no other writer got in between, and returns the
    /// value written. `f` gets `None` when the key is missing, and may run
    /// more than once. Concurrent updates are never lost. The entry keeps
    /// what is left of its expiry.
    ///
    /// ```no_run
    /// let hits = cubby_sdk::update("hits", |old| {
    ///     let n: u64 = old.and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()).unwrap_or(0);
    ///     (n + 1).to_string().into_bytes()
    /// })?;
    /// # Ok::<(), cubby_sdk::Error>(())
    /// ```
    pub fn update(
        &self,
        key: impl AsRef<str>,
        mut f: impl FnMut(Option<&[u8]>) -> Vec<u8>,
    ) -> Result<Vec<u8>> {
        self.try_update(key.as_ref(), |old| Ok(f(old)))
    }

    /// [`update`](Self::update) for a JSON value: `f` gets the decoded
    /// current value (`None` when missing) and returns the new one. A current
    /// value that does not decode as `T` is [`Error::Decode`](crate::Error::Decode), and nothing is
    /// written.
    ///
    /// ```no_run
    /// let tags: Vec<String> = cubby_sdk::update_json("tags", |tags: Option<Vec<String>>| {
    ///     let mut tags = tags.unwrap_or_default();
    ///     tags.push("new".into());
    ///     tags
    /// })?;
    /// # Ok::<(), cubby_sdk::Error>(())
    /// ```
    pub fn update_json<T: Serialize + DeserializeOwned>(
        &self,
        key: impl AsRef<str>,
        mut f: impl FnMut(Option<T>) -> T,
    ) -> Result<T> {
        let key = key.as_ref();
        let written = self.try_update(key, |old| {
            let old = old
                .map(serde_json::from_slice::<T>)
                .transpose()
                .map_err(|e| decode_error(key, e))?;
            serde_json::to_vec(&f(old)).map_err(encode_error)
        })?;
        serde_json::from_slice(&written).map_err(|e| decode_error(key, e))
    }

    /// The compare-and-swap loop behind `update`: an error from `f` stops it
    /// before anything is written.
    fn try_update(
        &self,
        key: &str,
        mut f: impl FnMut(Option<&[u8]>) -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let mut current = self.entry(key)?;
        let mut attempts = 0;
        loop {
            let new = f(current.as_ref().map(|e| e.value.as_slice()))?;
            let condition = match &current {
                Some(e) => wit::Condition::VersionEquals(e.version),
                None => wit::Condition::Absent,
            };
            let options = wit::WriteOptions {
                // Keep the entry's expiry (what is left of it).
                ttl_ms: current.as_ref().and_then(|e| e.expires_in).map(millis),
                condition: Some(condition),
            };
            match wit::set(&self.name, key, &new, &options) {
                Ok(_) => return Ok(new),
                Err(wit::Error::Conflict(c)) if attempts < UPDATE_ATTEMPTS => {
                    // The conflict carries what is stored now: no re-read.
                    attempts += 1;
                    current = c.current.map(Into::into);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Returns the values of `keys` in order, from one consistent snapshot.
    pub fn get_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_owned()).collect();
        Ok(wit::get_many(&self.name, &keys)?)
    }

    /// Stores every pair, all-or-nothing, in one transaction.
    pub fn set_many<K: AsRef<str>, V: AsRef<[u8]>>(&self, entries: &[(K, V)]) -> Result<()> {
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_vec()))
            .collect();
        Ok(wit::set_many(&self.name, &entries)?)
    }

    /// Removes every key, all-or-nothing; returns how many existed.
    pub fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<u32> {
        let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_owned()).collect();
        Ok(wit::delete_many(&self.name, &keys)?)
    }

    /// Lists one page of keys, optionally only those starting with `prefix`.
    /// `cursor` is `None` for the first page, then the previous page's cursor;
    /// `limit` is the page size wanted (the host clamps it). Most plugins
    /// want [`keys`](Self::keys), which does the paging.
    pub fn list_keys(
        &self,
        prefix: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<KeyPage> {
        Ok(wit::list_keys(&self.name, prefix, cursor, limit)?.into())
    }

    /// Iterates over all keys of the namespace in ascending byte order.
    pub fn keys(&self) -> Keys {
        self.keys_listing(None)
    }

    /// Iterates over the keys that start with `prefix`.
    pub fn keys_with_prefix(&self, prefix: impl Into<String>) -> Keys {
        self.keys_listing(Some(prefix.into()))
    }

    fn keys_listing(&self, prefix: Option<String>) -> Keys {
        Keys::new(Listing::Keys {
            namespace: self.clone(),
            prefix,
        })
    }

    /// Removes every key of the namespace (the host does it a bounded page
    /// per call; this calls until done) and returns how many there were.
    /// Clearing the default space leaves named namespaces alone.
    pub fn clear(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let step = wit::clear(&self.name)?;
            total += u64::from(step.deleted);
            if step.done {
                return Ok(total);
            }
        }
    }

    /// What this namespace stores (live entries only).
    pub fn usage(&self) -> Result<Usage> {
        let u = wit::usage(Some(&self.name))?;
        Ok(Usage {
            keys: u.keys,
            bytes: u.bytes,
        })
    }
}

/// A duration as whole milliseconds for the host, rounded up so that a
/// non-zero duration never becomes 0.
pub(crate) fn millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}
