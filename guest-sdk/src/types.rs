//! Plain data the storage functions take and return.

use std::time::Duration;

use crate::{Namespace, Result, wit};

/// A stored entry with its metadata, from [`entry`](crate::entry).
///
/// ```no_run
/// if let Some(e) = cubby_sdk::entry("session")? {
///     println!("version {}, expires in {:?}", e.version, e.expires_in);
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: Vec<u8>,
    /// Changes on every write of the value and is never reused: an
    /// unchanged version means nobody wrote the key since.
    pub version: u64,
    /// Time left until the entry expires; `None` if it never does.
    pub expires_in: Option<Duration>,
}

impl From<wit::Entry> for Entry {
    fn from(e: wit::Entry) -> Self {
        Self {
            value: e.value,
            version: e.version,
            expires_in: e.expires_in_ms.map(Duration::from_millis),
        }
    }
}

/// A condition on a key's current entry, checked atomically with a write.
///
/// ```no_run
/// use cubby_sdk::Condition;
/// cubby_sdk::Transaction::new()
///     .check("config", Condition::ValueEquals(b"v1".to_vec()))
///     .set("config", b"v2")
///     .commit()?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// No live entry is stored under the key.
    Absent,
    /// An entry with exactly this version is stored.
    VersionEquals(u64),
    /// An entry with exactly these value bytes is stored.
    ValueEquals(Vec<u8>),
}

impl From<Condition> for wit::Condition {
    fn from(c: Condition) -> Self {
        match c {
            Condition::Absent => Self::Absent,
            Condition::VersionEquals(v) => Self::VersionEquals(v),
            Condition::ValueEquals(v) => Self::ValueEquals(v),
        }
    }
}

/// What the workspace (or a namespace) stores: live entries only.
///
/// ```no_run
/// let used = cubby_sdk::usage()?;
/// let limits = cubby_sdk::limits();
/// println!("{} of {} bytes", used.bytes, limits.max_bytes);
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Number of keys.
    pub keys: u64,
    /// Bytes: keys plus values.
    pub bytes: u64,
}

/// The limits and quotas the host enforces on this workspace, from
/// [`limits`](crate::limits).
///
/// ```no_run
/// let batch = cubby_sdk::limits().max_batch as usize;
/// # let _ = batch;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most keys the workspace may hold.
    pub max_keys: u64,
    /// Most bytes (keys plus values) the workspace may hold.
    pub max_bytes: u64,
    /// Longest key, in bytes.
    pub max_key_bytes: u32,
    /// Largest value, in bytes.
    pub max_value_bytes: u32,
    /// Most operations in one batch or transaction.
    pub max_batch: u32,
    /// Largest page of a listing.
    pub max_page: u32,
}

/// One page of a listing, from [`list_keys`](crate::list_keys).
///
/// ```no_run
/// let page: cubby_sdk::KeyPage = cubby_sdk::list_keys(None, None, Some(10))?;
/// println!("{} keys, more: {}", page.keys.len(), page.cursor.is_some());
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys (or namespace names) in ascending byte order.
    pub keys: Vec<String>,
    /// Pass to the same listing for the next page; `None` on the last page.
    pub cursor: Option<String>,
}

impl From<wit::KeyPage> for KeyPage {
    fn from(page: wit::KeyPage) -> Self {
        Self {
            keys: page.keys,
            cursor: page.cursor,
        }
    }
}

/// What a [`Keys`] iterator lists.
#[derive(Debug)]
pub(crate) enum Listing {
    Keys {
        namespace: Namespace,
        prefix: Option<String>,
    },
    Namespaces,
}

/// An iterator over keys (from [`keys`](crate::keys),
/// [`Namespace::keys`]...) or namespace names (from
/// [`namespaces`](crate::namespaces)).
///
/// Each item is a name or the error that stopped the listing (after an error
/// the iterator ends). Pages are fetched lazily, so taking a few keys of a
/// large workspace costs one page.
///
/// ```no_run
/// let first_ten: Vec<String> = cubby_sdk::keys().take(10).collect::<Result<_, _>>()?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug)]
pub struct Keys {
    listing: Listing,
    cursor: Option<String>,
    page: std::vec::IntoIter<String>,
    done: bool,
}

impl Keys {
    pub(crate) fn new(listing: Listing) -> Self {
        Self {
            listing,
            cursor: None,
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    fn fetch(&self) -> Result<KeyPage> {
        let cursor = self.cursor.as_deref();
        match &self.listing {
            Listing::Keys { namespace, prefix } => {
                namespace.list_keys(prefix.as_deref(), cursor, None)
            }
            Listing::Namespaces => Ok(wit::list_namespaces(cursor, None)?.into()),
        }
    }
}

impl Iterator for Keys {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.page.next() {
                return Some(Ok(key));
            }
            if self.done {
                return None;
            }
            match self.fetch() {
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
