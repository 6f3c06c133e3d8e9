//! The open database, reopened after an I/O failure.
//!
//! When a read or write of the file fails (a failed `write` or `fsync`, a
//! full disk), redb refuses every later operation (`PreviousIo`) until the
//! database is closed and opened again, which also recovers it to its last
//! committed state. So the backend does that by itself: the handle is marked
//! broken, and the writer closes the database and opens the file again
//! before it answers the failed requests, so that a read after the error
//! sees how the failed commit ended (whole or not at all). While it cannot
//! (the fault persists), requests fail with [`StorageError::Unavailable`]
//! and each new request tries again; once it can, the host serves again, no
//! restart needed. A database in memory is never reopened (it would be
//! empty).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::schema;
use crate::engine::{OpenError, StorageError};

/// Opens the database (and checks its schema); called again to reopen.
pub(crate) type Opener = Box<dyn Fn() -> Result<redb::Database, OpenError> + Send + Sync>;

/// The database, and how to open it again.
pub(crate) struct Handle {
    db: RwLock<Option<Arc<redb::Database>>>,
    /// `None` for memory, which cannot be reopened.
    opener: Option<Opener>,
    broken: AtomicBool,
}

impl Handle {
    /// Opens the database with `opener`, which also serves to reopen it.
    pub fn open(opener: Opener) -> Result<Self, OpenError> {
        let db = opener()?;
        Ok(Self {
            db: RwLock::new(Some(Arc::new(db))),
            opener: Some(opener),
            broken: AtomicBool::new(false),
        })
    }

    /// A database that is never reopened (in memory).
    pub fn fixed(db: redb::Database) -> Self {
        Self {
            db: RwLock::new(Some(Arc::new(db))),
            opener: None,
            broken: AtomicBool::new(false),
        }
    }

    /// The open database.
    pub fn get(&self) -> Result<Arc<redb::Database>, StorageError> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(reopening)
    }

    /// Notes a failed request: after an I/O failure the database must be
    /// reopened.
    pub fn failed(&self, e: &StorageError) {
        if is_io_failure(e) && !self.broken.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %crate::engine::error::cause_chain(e),
                "I/O error on the database file; it will be reopened");
        }
    }

    /// Whether the database must be reopened before it serves again.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// Closes the database and opens it again (redb recovers it to its last
    /// commit); on success it serves again.
    pub fn reopen(&self) -> Result<(), StorageError> {
        let Some(opener) = &self.opener else {
            return Err(StorageError::internal(
                "an in-memory database failed and cannot be reopened",
            ));
        };
        // Closed when the last reader that holds it lets go; until then
        // opening the file again is refused as already open.
        drop(
            self.db
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        match opener() {
            Ok(db) => {
                *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
                self.broken.store(false, Ordering::Relaxed);
                tracing::info!("reopened the database file after an I/O error");
                Ok(())
            }
            Err(e) => Err(StorageError::Unavailable(Arc::new(e))),
        }
    }
}

/// The error of a request made while the database waits to be reopened.
pub(crate) fn reopening() -> StorageError {
    StorageError::Unavailable(Arc::new(std::io::Error::other(
        "the database file had an I/O error and is not open again yet",
    )))
}

/// Opens (or creates) a redb database with `builder` settings from
/// `create`, then creates or checks Cubby's tables.
pub(crate) fn open_checked(
    path: &Path,
    create: impl FnOnce() -> Result<redb::Database, redb::DatabaseError>,
) -> Result<redb::Database, OpenError> {
    let db = create().map_err(|e| schema::open_error(path, e))?;
    schema::init(&db, path)?;
    Ok(db)
}

/// Whether `e` is a failure of the file's I/O (after which redb refuses
/// every operation until the database is reopened).
pub(crate) fn is_io_failure(e: &StorageError) -> bool {
    match e {
        StorageError::DiskFull(_) => true,
        StorageError::Backend(source) => matches!(
            source.downcast_ref::<redb::Error>(),
            Some(redb::Error::Io(_) | redb::Error::PreviousIo)
        ),
        _ => false,
    }
}
