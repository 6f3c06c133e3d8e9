//! The per-instance storage context: what a plugin's `storage` imports act on.

use wasmtime::component::{HasData, Linker};

use crate::bindings::cubby::storage::storage::{self as wit, Host};
use crate::bindings::{WitError, WitKeyPage};
use crate::engine::{StorageError, Workspace};

/// The storage state of one plugin instance: the [`Workspace`] the host bound
/// it to. Created by the host for every store; a plugin cannot change it.
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
}

/// Adds the `cubby:storage/storage` imports to `linker`; `get` finds the
/// [`StorageCtx`] in the store's data.
///
/// The storage functions block while they read or commit; call the plugin from
/// a thread that may block (as [`Runtime`](crate::Runtime) does), not from an
/// async worker.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasStorage>(linker, get)
}

struct HasStorage;

impl HasData for HasStorage {
    type Data<'a> = &'a mut StorageCtx;
}

/// The one place where engine errors become the WIT error. Host-side failures
/// are logged in full and reach the plugin as a short `internal` message.
impl From<StorageError> for WitError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidKey(why) => WitError::InvalidKey(why),
            StorageError::ValueTooLarge { limit, .. } => WitError::ValueTooLarge(limit as u64),
            StorageError::QuotaExceeded(why) => WitError::QuotaExceeded(why),
            StorageError::InvalidCursor => WitError::InvalidCursor,
            other => {
                tracing::error!(error = ?other, "storage call failed on the host");
                WitError::Internal(match other {
                    StorageError::Corrupt(_) => "stored entry is corrupt".into(),
                    _ => "storage is unavailable".into(),
                })
            }
        }
    }
}

type WitResult<T> = wasmtime::Result<Result<T, WitError>>;

impl Host for StorageCtx {
    fn get(&mut self, key: String) -> WitResult<Option<Vec<u8>>> {
        Ok(self.workspace.get(&key).map_err(Into::into))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> WitResult<()> {
        Ok(self.workspace.set(&key, value).map_err(Into::into))
    }

    fn delete(&mut self, key: String) -> WitResult<bool> {
        Ok(self.workspace.delete(&key).map_err(Into::into))
    }

    fn exists(&mut self, key: String) -> WitResult<bool> {
        Ok(self.workspace.exists(&key).map_err(Into::into))
    }

    fn list_keys(
        &mut self,
        prefix: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> WitResult<WitKeyPage> {
        Ok(self
            .workspace
            .list_keys(prefix.as_deref(), cursor.as_deref(), limit)
            .map(|page| WitKeyPage {
                keys: page.keys,
                cursor: page.cursor,
            })
            .map_err(Into::into))
    }
}
