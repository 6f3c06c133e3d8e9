//! The per-store storage context: the workspace a store is bound to, and
//! the `wasi:keyvalue` state the store holds (which buckets it may open,
//! its open buckets and compare-and-swap handles).

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::{HasData, ResourceTable};

use crate::engine::{StorageError, Workspace};

/// Most `wasi:keyvalue` buckets and compare-and-swap handles one store may
/// hold open.
pub(crate) const MAX_OPEN_HANDLES: usize = 1024;

/// The storage state of one store: the [`Workspace`] the host bound it to,
/// which `wasi:keyvalue` buckets it may open, and the buckets and
/// compare-and-swap handles it has open. The host creates one for every
/// store; a plugin cannot change it.
///
/// Keep it in your store's data and give [`add_to_linker`](crate::add_to_linker)
/// (or [`add_to_linker_async`](crate::add_to_linker_async)) a function that
/// finds it there.
///
/// ```
/// use cubby_host::{Storage, StorageCtx, StorageOptions};
/// # fn main() -> anyhow::Result<()> {
/// let storage = Storage::in_memory(StorageOptions::default())?;
/// let ctx = StorageCtx::new(storage.workspace("tenant-1")?)
///     // `wasi:keyvalue` guests may open the default space and "cache" only.
///     .allow_buckets(["", "cache"]);
/// assert_eq!(ctx.workspace().id(), "tenant-1");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StorageCtx {
    workspace: Workspace,
    /// The buckets `wasi:keyvalue` guests may open; `None`: every one.
    pub(crate) buckets: Option<Arc<BTreeSet<String>>>,
    /// The `wasi:keyvalue` buckets and compare-and-swap handles this store
    /// has open, at most [`MAX_OPEN_HANDLES`] (the table reuses freed
    /// slots, so its capacity bounds the live ones).
    pub(crate) table: ResourceTable,
}

impl StorageCtx {
    /// A context bound to `workspace`, whose `wasi:keyvalue` guests may open
    /// any bucket (any namespace of the workspace).
    pub fn new(workspace: Workspace) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_OPEN_HANDLES);
        Self {
            workspace,
            buckets: None,
            table,
        }
    }

    /// Lets `wasi:keyvalue` guests open only these buckets (`""` is the
    /// default space). Opening another valid name is `access-denied`; a name
    /// that is not a valid namespace name is `no-such-store`. This restricts
    /// `wasi:keyvalue` only: a plugin that imports `cubby:storage` reaches
    /// every namespace of its workspace (the workspace is the isolation
    /// boundary).
    pub fn allow_buckets<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.buckets = Some(bucket_set(names));
        self
    }

    /// Sets which buckets `wasi:keyvalue` guests may open, shared between
    /// contexts; `None` allows every bucket. See
    /// [`allow_buckets`](Self::allow_buckets).
    pub(crate) fn with_bucket_policy(mut self, buckets: Option<Arc<BTreeSet<String>>>) -> Self {
        self.buckets = buckets;
        self
    }

    /// The workspace this context is bound to.
    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// Runs one blocking engine call on tokio's blocking pool.
    /// The future holds no borrow of the context (whose resource table is
    /// not `Sync`), so it is `Send`.
    pub(crate) fn offload<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Workspace) -> Result<T, StorageError> + Send + 'static,
    ) -> impl Future<Output = Result<T, StorageError>> + Send + 'static {
        let workspace = self.workspace.clone();
        blocking(move || f(&workspace))
    }
}

impl StorageCtx {
    /// Runs one engine call that only reads: on this thread when the
    /// workspace's database is local (such a read waits for no other thread
    /// and no network, like reading a file), else on tokio's blocking pool
    /// as [`offload`](Self::offload) does.
    pub(crate) fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Workspace) -> Result<T, StorageError> + Send + 'static,
    ) -> impl Future<Output = Result<T, StorageError>> + Send + 'static {
        let workspace = self.workspace.clone();
        read(workspace.storage().reads_are_local(), move || f(&workspace))
    }
}

/// Runs one engine call that only reads: on this thread if `local`, else on
/// tokio's blocking pool.
pub(crate) async fn read<T: Send + 'static>(
    local: bool,
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    if local { f() } else { blocking(f).await }
}

/// A set of bucket names, shared by every store of a runtime.
pub(crate) fn bucket_set<S: Into<String>>(
    names: impl IntoIterator<Item = S>,
) -> Arc<BTreeSet<String>> {
    Arc::new(names.into_iter().map(Into::into).collect())
}

/// Runs one blocking engine call on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    // Inside the caller's span, so that the storage operation's span is a
    // child of the plugin call's.
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(f)).await {
        Ok(result) => result,
        // The task panicked or its runtime is shutting down: the host's
        // failure, which the plugin sees as an internal error.
        Err(e) => Err(StorageError::internal(&format!(
            "a storage call did not finish on the blocking pool: {e}"
        ))),
    }
}

/// The [`HasData`] of the generated `add_to_linker` functions: the imports
/// see the store's [`StorageCtx`].
pub(crate) struct HasStorage;

impl HasData for HasStorage {
    type Data<'a> = &'a mut StorageCtx;
}
