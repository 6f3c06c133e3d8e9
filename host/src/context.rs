//! The per-store storage context, and adding Cubby's imports to a linker.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings;
use crate::engine::{StorageError, Workspace};

/// The storage state of one store: the [`Workspace`] the host bound it to.
/// The host creates one for every store; a plugin cannot change it.
///
/// Keep it in your store's data and give [`add_to_linker`] (or
/// [`add_to_linker_async`]) a function that finds it there.
///
/// ```
/// use cubby_host::{Storage, StorageCtx, StorageOptions};
/// # fn main() -> anyhow::Result<()> {
/// let storage = Storage::in_memory(StorageOptions::default())?;
/// let ctx = StorageCtx::new(storage.workspace("tenant-1")?);
/// assert_eq!(ctx.workspace().id(), "tenant-1");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StorageCtx {
    workspace: Workspace,
}

impl StorageCtx {
    /// A context bound to `workspace`.
    pub fn new(workspace: Workspace) -> Self {
        Self { workspace }
    }

    /// The workspace this context is bound to.
    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// Runs one blocking engine call on tokio's blocking pool.
    pub(crate) async fn offload<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Workspace) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let workspace = self.workspace.clone();
        match tokio::task::spawn_blocking(move || f(&workspace)).await {
            Ok(result) => result,
            // The task panicked or its runtime is shutting down: the
            // host's failure, which the plugin sees as `internal`.
            Err(e) => Err(StorageError::Backend(Arc::new(e))),
        }
    }
}

/// Adds the `cubby:storage/storage` imports to a linker used with wasmtime's
/// sync API (`instantiate`, `call`); `get` finds the [`StorageCtx`] in the
/// store's data.
///
/// The imports block while they read or commit (with PostgreSQL, while they
/// wait for the server): call plugins from a thread that may block, as
/// [`Runtime`](crate::Runtime) does, not from an async task. For async
/// embeddings see [`add_to_linker_async`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
) -> wasmtime::Result<()> {
    bindings::sync::cubby::storage::storage::add_to_linker::<T, HasStorage>(linker, get)
}

/// Adds the `cubby:storage/storage` imports to a linker used with wasmtime's
/// async API (`instantiate_async`, `call_async`, and the `async` bindings in
/// [`bindings`]); `get` finds the [`StorageCtx`] in the store's data. Each
/// storage call runs on tokio's blocking pool, so it never blocks the
/// executor's threads. Must be used inside a tokio runtime.
pub fn add_to_linker_async<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
) -> wasmtime::Result<()> {
    bindings::cubby::storage::storage::add_to_linker::<T, HasStorage>(linker, get)
}

struct HasStorage;

impl HasData for HasStorage {
    type Data<'a> = &'a mut StorageCtx;
}
