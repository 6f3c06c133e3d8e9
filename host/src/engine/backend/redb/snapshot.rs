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

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{ReadTransaction, ReadableDatabase};

use super::schema::{ENTRIES, EntryKey};
use crate::engine::StorageError;

/// One read transaction with the entries table open.
pub(crate) struct Snapshot {
    pub txn: ReadTransaction,
    pub entries: redb::ReadOnlyTable<EntryKey, &'static [u8]>,
}

/// The shared snapshot and the commit generation it belongs to.
#[derive(Default)]
pub(crate) struct Snapshots {
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    /// Bumped by the writer after every commit.
    generation: u64,
    /// A snapshot that includes every commit up to `generation`.
    current: Option<Arc<Snapshot>>,
}

impl Snapshots {
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
        let snapshot = Arc::new(Snapshot { txn, entries });
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
        let snapshots = Snapshots::default();
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
}
