//! The resources of `cubby:storage/streams` as the store's table holds
//! them (the bindings map the WIT's `writer` and `reader` to these).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::engine::{StreamReader, StreamWriter, ValueInfo};

/// A `writer` resource: the engine's writer until `finish` takes it.
pub struct Writer(pub(super) Arc<Mutex<Option<StreamWriter>>>);

/// A `reader` resource.
pub struct Reader {
    pub(super) reader: Arc<Mutex<StreamReader>>,
    pub(super) info: ValueInfo,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // An engine call that panicked left nothing half-done in these.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    pub(super) fn new(writer: StreamWriter) -> Self {
        Self(Arc::new(Mutex::new(Some(writer))))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // An unfinished engine writer removes its chunks when dropped, which
        // reaches the database: not on an executor's thread.
        let Some(writer) = lock(&self.0).take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(writer))),
            Err(_) => drop(writer),
        }
    }
}
