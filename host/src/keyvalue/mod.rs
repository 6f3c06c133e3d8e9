//! The standard `wasi:keyvalue` imports, versions `0.2.0-draft` and
//! `0.2.0-draft2`, over the same workspace storage as `cubby:storage`.
//!
//! - A **bucket is a namespace** of the workspace the host bound the store
//!   to: `open("")` is the default space, `open("cache")` the namespace
//!   `cache`. A name that is not a valid namespace name is `no-such-store`;
//!   a valid name the host did not allow ([`StorageCtx::allow_buckets`]) is
//!   `access-denied`.
//! - Every call is one engine call, with the engine's limits, quotas,
//!   durability and expiry. Batches are all-or-nothing (stronger than the
//!   interface asks). Engine errors reach the guest as `other("<kind>:
//!   <message>")`, the kind named as in `cubby:storage`'s `error`
//!   (`quota-exceeded`, `value-too-large`, …).
//! - `list-keys` pages in ascending byte order, resuming after the last key
//!   returned. A `0.2.0-draft2` cursor is the engine's own opaque cursor; a
//!   `0.2.0-draft` cursor is a `u64` that stands for one, kept in the bucket
//!   (the newest [`MAX_LIVE_CURSORS`]): any other number is an
//!   `invalid-cursor` error.
//! - Counters are the engine's decimal counters, readable through either
//!   interface: `0.2.0-draft` adds a `u64` to a counter that must stay
//!   non-negative, `0.2.0-draft2` an `s64`.
//! - `cas::new` reads the entry's version; `swap` writes only if the version
//!   is unchanged, else `cas-failed` with a handle holding the current entry.
//!
//! `bindings.rs` holds the generated traits, `host.rs` their impls for
//! [`StorageCtx`], written once and expanded for each version and flavour.

pub(crate) mod bindings;
mod host;
mod shape;

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};

use wasmtime::component::{Resource, ResourceTableError};

pub(crate) use host::{add_to_linker, add_to_linker_async};
pub use shape::{GetManyShape, UnservedShape};

use crate::context::{MAX_OPEN_HANDLES, StorageCtx};
use crate::engine::{Entry, ErrorKind, Namespace, StorageError};
use crate::guest_error::GuestError;

/// Most `u64` cursors a bucket remembers; an older one is stale.
const MAX_LIVE_CURSORS: usize = 64;

/// An open bucket: the namespace it is, and the `u64` cursors it issued.
pub struct Bucket {
    namespace: Namespace,
    cursors: Cursors,
}

/// A compare-and-swap handle: the entry of `key` as it was read.
pub struct Cas {
    namespace: Namespace,
    key: String,
    current: Option<Entry>,
}

/// The host side of the interface's `error`, and traps.
#[derive(Debug)]
pub enum KvError {
    /// `no-such-store`.
    NoSuchStore,
    /// `access-denied`.
    AccessDenied,
    /// `other(message)`.
    Other(String),
    /// Not the guest's error: the call traps.
    Trap(wasmtime::Error),
}

impl KvError {
    /// The interface's `invalid-cursor` message.
    fn invalid_cursor() -> Self {
        Self::Other(
            "invalid-cursor: this cursor was not returned by this bucket's list-keys, or is \
             too old; list again without a cursor"
                .into(),
        )
    }
}

impl From<StorageError> for KvError {
    /// `other("<kind>: <message>")`, the kind named as in `cubby:storage`'s
    /// `error` ([`GuestError`], the mapping both interfaces share).
    fn from(e: StorageError) -> Self {
        let guest = GuestError::from(e);
        match guest.kind() {
            // This interface's cursors are a bucket's own.
            ErrorKind::InvalidCursor => Self::invalid_cursor(),
            kind => Self::Other(format!("{kind}: {guest}")),
        }
    }
}

impl From<ResourceTableError> for KvError {
    fn from(e: ResourceTableError) -> Self {
        Self::Trap(e.into())
    }
}

/// The `u64` cursors a bucket issued, each standing for an engine cursor.
/// Numbers are unpredictable (hashed with a per-bucket random key), so a
/// guessed one is refused rather than resolved.
struct Cursors {
    issued: VecDeque<(u64, String)>,
    keys: RandomState,
    count: u64,
}

impl Cursors {
    fn new() -> Self {
        Self {
            issued: VecDeque::new(),
            keys: RandomState::new(),
            count: 0,
        }
    }

    /// A number standing for `cursor`, remembered until
    /// [`MAX_LIVE_CURSORS`] newer ones are issued.
    fn issue(&mut self, cursor: String) -> u64 {
        self.count += 1;
        let number = self.keys.hash_one(self.count);
        if self.issued.len() == MAX_LIVE_CURSORS {
            self.issued.pop_front();
        }
        self.issued.push_back((number, cursor));
        number
    }

    /// The engine cursor `number` stands for.
    fn resolve(&self, number: u64) -> Result<String, KvError> {
        self.issued
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, cursor)| cursor.clone())
            .ok_or_else(KvError::invalid_cursor)
    }
}

impl StorageCtx {
    /// Opens the bucket `identifier`: a namespace of this store's workspace.
    fn open_bucket(&mut self, identifier: &str) -> Result<Resource<Bucket>, KvError> {
        let namespace = self
            .workspace()
            .namespace(identifier)
            .map_err(|_| KvError::NoSuchStore)?;
        if let Some(allowed) = &self.buckets
            && !allowed.contains(identifier)
        {
            return Err(KvError::AccessDenied);
        }
        self.push(Bucket {
            namespace,
            cursors: Cursors::new(),
        })
    }

    /// Keeps a new handle, up to [`MAX_OPEN_HANDLES`] per store.
    fn push<T: Send + 'static>(&mut self, value: T) -> Result<Resource<T>, KvError> {
        self.table.push(value).map_err(|e| match e {
            ResourceTableError::Full => KvError::Other(format!(
                "too-many-handles: a plugin instance may hold at most {MAX_OPEN_HANDLES} open \
                 buckets and cas handles; drop some first"
            )),
            e => e.into(),
        })
    }

    /// The namespace of an open bucket.
    fn bucket(&self, handle: &Resource<Bucket>) -> Result<Namespace, KvError> {
        Ok(self.table.get(handle)?.namespace.clone())
    }

    /// A compare-and-swap handle for `key` in `namespace`, holding `current`.
    fn new_cas(
        &mut self,
        namespace: Namespace,
        key: String,
        current: Option<Entry>,
    ) -> Result<Resource<Cas>, KvError> {
        self.push(Cas {
            namespace,
            key,
            current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bucket resolves the newest [`MAX_LIVE_CURSORS`] numbers it issued,
    /// and no other number: not an older one, not a neighbour of a real one.
    #[test]
    fn a_bucket_resolves_only_its_newest_cursors() {
        let mut cursors = Cursors::new();
        let issued: Vec<u64> = (0..MAX_LIVE_CURSORS + 1)
            .map(|i| cursors.issue(format!("c{i}")))
            .collect();
        assert!(matches!(cursors.resolve(issued[0]), Err(KvError::Other(_))));
        for (i, n) in issued.iter().enumerate().skip(1) {
            assert_eq!(cursors.resolve(*n).ok(), Some(format!("c{i}")));
            if !issued.contains(&n.wrapping_add(1)) {
                assert!(cursors.resolve(n.wrapping_add(1)).is_err());
            }
        }
        // Another bucket's numbers are its own.
        let other = Cursors::new().issue("c1".into());
        assert!(!issued.contains(&other) && cursors.resolve(other).is_err());
    }
}
