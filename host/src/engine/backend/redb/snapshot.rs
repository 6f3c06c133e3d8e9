//! The read snapshot that reads share until the next commit.
//!
//! Beginning a redb read transaction and opening the entries table cost more
//! than the lookup itself. So reads reuse one snapshot, taken by the first
//! read after a commit, until the writer commits again: after every commit,
//! and before it answers any request of that commit, the writer bumps the
//! generation and drops the shared snapshot. A read therefore sees every
//! commit acknowledged before it began, exactly as a read transaction of its
//! own would; reuse changes the cost, never what a read sees.
//!
//! A snapshot keeps the pages it reads from alive. Because the writer drops
//! the shared one at each commit, an old snapshot outlives its commit only
//! while a read that took it is still running.
//!
//! Each snapshot has a read cache of its own: what reads of it found under a
//! key (a row, or none), up to a number of bytes. It goes with its snapshot,
//! so it can never answer with anything the snapshot would not.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{ReadTransaction, ReadableDatabase};

use super::schema::{ENTRIES, EntryKey};
use super::tables::row_at;
use crate::engine::StorageError;
use crate::engine::backend::Row;

/// One read transaction with the entries table open, and its read cache.
pub(crate) struct Snapshot {
    pub txn: ReadTransaction,
    pub entries: redb::ReadOnlyTable<EntryKey, &'static [u8]>,
    cache: Mutex<ReadCache>,
}

/// What reads of one snapshot found, by key, within `max_bytes`.
struct ReadCache {
    rows: HashMap<Box<[u8]>, Option<Row>>,
    bytes: usize,
    max_bytes: usize,
}

/// Bytes a cached row counts for besides its key and value (the map's
/// own bookkeeping, roughly).
const ROW_OVERHEAD: usize = 64;

thread_local! {
    /// The key being looked up, encoded (reused so a hit allocates nothing
    /// but the answer).
    static LOOKUP: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Snapshot {
    /// The row stored under a key in this snapshot (live or expired; the
    /// caller judges expiry), from the cache when a read of this snapshot
    /// has found it before.
    pub fn row(&self, ws: &str, ns: &str, key: &str) -> Result<Option<Row>, StorageError> {
        LOOKUP.with_borrow_mut(|lookup| {
            lookup.clear();
            // Lengths first, so that no two triples encode alike.
            for part in [ws, ns] {
                lookup.extend_from_slice(&(part.len() as u64).to_le_bytes());
                lookup.extend_from_slice(part.as_bytes());
            }
            lookup.extend_from_slice(key.as_bytes());
            if let Some(row) = self.lock().rows.get(lookup.as_slice()) {
                return Ok(row.clone());
            }
            let row = row_at(&self.entries, ws, ns, key)?;
            let mut cache = self.lock();
            let size = lookup.len() + row.as_ref().map_or(0, |r| r.value.len()) + ROW_OVERHEAD;
            if cache.bytes + size <= cache.max_bytes {
                cache.bytes += size;
                cache.rows.insert(lookup.as_slice().into(), row.clone());
            }
            Ok(row)
        })
    }

    fn lock(&self) -> MutexGuard<'_, ReadCache> {
        // The cache holds no invariant a panic could break halfway.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The shared snapshot and the commit generation it belongs to.
pub(crate) struct Snapshots {
    slot: Mutex<Slot>,
    /// The read cache's size of each snapshot, in bytes.
    cache_bytes: usize,
}

#[derive(Default)]
struct Slot {
    /// Bumped by the writer after every commit.
    generation: u64,
    /// A snapshot that includes every commit up to `generation`.
    current: Option<Arc<Snapshot>>,
}

impl Snapshots {
    /// Shared snapshots, each with a read cache of `cache_bytes`.
    pub fn new(cache_bytes: usize) -> Self {
        Self {
            slot: Mutex::default(),
            cache_bytes,
        }
    }

    /// A snapshot that includes every commit acknowledged so far.
    pub fn read(&self, db: &redb::Database) -> Result<Arc<Snapshot>, StorageError> {
        let generation = {
            let slot = self.lock();
            if let Some(current) = &slot.current {
                return Ok(current.clone());
            }
            slot.generation
        };
        // Outside the lock: a commit that ends meanwhile bumps the
        // generation, and this snapshot, maybe taken before it, is then used
        // for this read only.
        let txn = db.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        let snapshot = Arc::new(Snapshot {
            txn,
            entries,
            cache: Mutex::new(ReadCache {
                rows: HashMap::new(),
                bytes: 0,
                max_bytes: self.cache_bytes,
            }),
        });
        let mut slot = self.lock();
        if slot.generation == generation && slot.current.is_none() {
            slot.current = Some(snapshot.clone());
        }
        Ok(snapshot)
    }

    /// Called by the writer after a commit, before it answers: later reads
    /// take a new snapshot.
    pub fn committed(&self) {
        let stale = {
            let mut slot = self.lock();
            slot.generation += 1;
            slot.current.take()
        };
        // Dropped outside the lock: ending a read transaction takes redb's
        // own lock.
        drop(stale);
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // The slot holds no invariant a panic could break halfway.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_shared_between_commits_and_never_hold_a_stale_one() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Snapshot>();

        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(ENTRIES).unwrap();
        txn.commit().unwrap();
        let snapshots = Snapshots::new(1 << 20);
        let a = snapshots.read(&db).unwrap();
        let b = snapshots.read(&db).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "no commit between: one snapshot");

        let txn = db.begin_write().unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .insert(("w", "", "k"), &b"v"[..])
            .unwrap();
        txn.commit().unwrap();
        snapshots.committed();
        let c = snapshots.read(&db).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "a commit retires the snapshot");
        assert!(c.entries.get(("w", "", "k")).unwrap().is_some());
        assert!(a.entries.get(("w", "", "k")).unwrap().is_none());
    }

    /// Writes `value` under `("w", "", key)` in a commit of its own and
    /// tells `snapshots`, as the writer does.
    fn commit(db: &redb::Database, snapshots: &Snapshots, key: &str, value: &[u8]) {
        let txn = db.begin_write().unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .insert(
                ("w", "", key),
                &super::super::record::Record::encode(1, None, value)[..],
            )
            .unwrap();
        txn.commit().unwrap();
        snapshots.committed();
    }

    #[test]
    fn the_read_cache_answers_as_its_snapshot_and_stays_within_its_bytes() {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let snapshots = Snapshots::new(4 * (ROW_OVERHEAD + 40));
        commit(&db, &snapshots, "k", b"old");
        let first = snapshots.read(&db).unwrap();
        let value = |snap: &Snapshot, key: &str| snap.row("w", "", key).unwrap().map(|r| r.value);
        assert_eq!(value(&first, "k").as_deref(), Some(&b"old"[..]));
        assert_eq!(value(&first, "absent"), None);
        assert_eq!(first.lock().rows.len(), 2, "a hit and a miss are kept");
        assert_eq!(value(&first, "k").as_deref(), Some(&b"old"[..]));
        // A commit retires snapshot and cache: the next read sees it.
        commit(&db, &snapshots, "k", b"new");
        let second = snapshots.read(&db).unwrap();
        assert_eq!(value(&second, "k").as_deref(), Some(&b"new"[..]));
        // The old snapshot, still held by a read under way, still answers
        // as it was.
        assert_eq!(value(&first, "k").as_deref(), Some(&b"old"[..]));
        // Bounded: reads of many keys keep at most `max_bytes`.
        for i in 0..100 {
            assert_eq!(value(&second, &format!("x{i}")), None);
        }
        let cache = second.lock();
        assert!(
            cache.bytes <= cache.max_bytes && cache.rows.len() <= 4,
            "{}",
            cache.rows.len()
        );
        drop(cache);
        // A cache of 0 bytes keeps nothing, and reads still answer.
        let off = Snapshots::new(0);
        let snap = off.read(&db).unwrap();
        assert_eq!(value(&snap, "k").as_deref(), Some(&b"new"[..]));
        assert!(snap.lock().rows.is_empty());
    }
}
