//! A disk that fails when a test says: [`FaultyDisk`] wraps redb's file
//! backend and fails a chosen operation (a read, a write, a `set_len` or a
//! `sync_data`), writes half a buffer and then fails, or runs out of space.

use std::fs::OpenOptions;
use std::io::{Error, ErrorKind};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::StorageBackend;
use redb::backends::FileBackend;

use crate::{OpenError, Storage, StorageOptions};

/// What the next fault does to the operation it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails and does nothing.
    Fail,
    /// A write writes the first half of its buffer, then fails (other
    /// operations just fail).
    Torn,
}

#[derive(Debug, Default)]
struct Plan {
    /// Operations done (reads, writes, `set_len`s, `sync_data`s).
    ops: u64,
    /// The kind of each operation done, in order.
    kinds: Vec<&'static str>,
    /// The operation (by count) that fails, and how.
    at: Option<(u64, Fault)>,
    /// The operation that failed: its count and kind.
    fired: Option<(u64, &'static str)>,
    /// Whether writes and `set_len`s fail for want of space.
    full: bool,
}

/// A database file whose backend fails on a schedule the test sets. Cheap
/// to clone: clones share the schedule.
#[derive(Debug, Clone)]
pub struct FaultyDisk {
    path: PathBuf,
    plan: Arc<Mutex<Plan>>,
}

impl FaultyDisk {
    /// The disk of the database file at `path` (created on first open).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            plan: Arc::default(),
        }
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Operations done so far.
    pub fn ops(&self) -> u64 {
        self.plan().ops
    }

    /// The kind of every operation done so far ("read", "write",
    /// "set_len", "sync_data"), in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.plan().kinds.clone()
    }

    /// The `n`-th operation from now (1 is the next) meets `fault`, once.
    pub fn fail_in(&self, n: u64, fault: Fault) {
        let mut plan = self.plan();
        plan.at = Some((plan.ops + n, fault));
        plan.fired = None;
    }

    /// The operation that met the fault, if one did: its count and kind.
    pub fn fired(&self) -> Option<(u64, &'static str)> {
        self.plan().fired
    }

    /// From now on every write and `set_len` fails with "no space left"
    /// until [`clear`](Self::clear).
    pub fn fill(&self) {
        self.plan().full = true;
    }

    /// No more faults.
    pub fn clear(&self) {
        let mut plan = self.plan();
        plan.at = None;
        plan.full = false;
    }

    /// Opens storage on this disk (again after each I/O failure, on the same
    /// schedule).
    pub fn open(&self, options: StorageOptions) -> Result<Storage, OpenError> {
        let disk = self.clone();
        Storage::open_on(&self.path, options, move || disk.backend())
    }

    fn backend(&self) -> FaultyBackend {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path);
        FaultyBackend {
            inner: file.map_err(Arc::new).and_then(|f| {
                FileBackend::new(f).map_err(|e| Arc::new(Error::other(e.to_string())))
            }),
            plan: self.plan.clone(),
        }
    }
}

/// redb's file backend, with the faults of a [`FaultyDisk`].
#[derive(Debug)]
struct FaultyBackend {
    inner: Result<FileBackend, Arc<Error>>,
    plan: Arc<Mutex<Plan>>,
}

impl FaultyBackend {
    fn inner(&self) -> Result<&FileBackend, Error> {
        self.inner
            .as_ref()
            .map_err(|e| Error::new(e.kind(), e.to_string()))
    }

    /// The file, for the locking calls (never faulted).
    fn locks(&self) -> Result<&FileBackend, redb::BackendError> {
        self.inner().map_err(redb::BackendError::Io)
    }

    /// Counts an operation of `kind`; the fault it meets, if any.
    fn count(&self, kind: &'static str) -> Result<Option<Fault>, Error> {
        let mut plan = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        plan.ops += 1;
        plan.kinds.push(kind);
        if plan.full && matches!(kind, "write" | "set_len") {
            return Err(Error::new(
                ErrorKind::StorageFull,
                "injected: no space left on device",
            ));
        }
        match plan.at {
            Some((at, fault)) if at == plan.ops => {
                plan.fired = Some((plan.ops, kind));
                plan.at = None;
                Ok(Some(fault))
            }
            _ => Ok(None),
        }
    }
}

fn injected(kind: &str) -> Error {
    Error::other(format!("injected {kind} failure"))
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, Error> {
        self.inner()?.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), Error> {
        match self.count("read")? {
            None => self.inner()?.read(offset, out),
            Some(_) => Err(injected("read")),
        }
    }

    fn set_len(&self, len: u64) -> Result<(), Error> {
        match self.count("set_len")? {
            None => self.inner()?.set_len(len),
            Some(_) => Err(injected("set_len")),
        }
    }

    fn sync_data(&self) -> Result<(), Error> {
        match self.count("sync_data")? {
            None => self.inner()?.sync_data(),
            Some(_) => Err(injected("sync_data")),
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        match self.count("write")? {
            None => self.inner()?.write(offset, data),
            Some(Fault::Fail) => Err(injected("write")),
            Some(Fault::Torn) => {
                self.inner()?.write(offset, &data[..data.len() / 2])?;
                Err(injected("torn write"))
            }
        }
    }

    fn close(&self) -> Result<(), Error> {
        self.inner()?.close()
    }

    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.locks()?.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.locks()?.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.locks()?.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.locks()?.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.locks()?.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.locks()?.query_lock_range(start, end)
    }
}
