//! Adding Cubby's imports to a wasmtime [`Linker`]: `cubby:storage` and the
//! standard `wasi:keyvalue` interfaces, in the sync and the async flavour.

use wasmtime::component::Linker;

use crate::context::{HasStorage, StorageCtx};
use crate::keyvalue::GetManyShape;
use crate::{bindings, keyvalue};

/// Adds Cubby's imports to a linker used with wasmtime's sync API
/// (`instantiate`, `call`): `cubby:storage/storage@0.2.0` and
/// `cubby:storage/streams@0.2.0`, and the standard
/// `wasi:keyvalue` interfaces (`store`, `atomics`, `batch`) of versions
/// `0.2.0-draft` and `0.2.0-draft2`, all over the same workspace. `get`
/// finds the [`StorageCtx`] in the store's data. A component may import any
/// mix of them; what it does not import is not instantiated.
///
/// The imports block while they read or commit (with PostgreSQL, while they
/// wait for the server): call plugins from a thread that may block, as
/// [`Runtime`](crate::Runtime) does, not from an async task. For async
/// embeddings see [`add_to_linker_async`].
///
/// `wasi:keyvalue/batch@0.2.0-draft2` is linked with the standard's
/// `get-many`; for a component of Spin's see [`add_to_linker_for`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
) -> wasmtime::Result<()> {
    add_to_linker_for(linker, get, GetManyShape::Upstream)
}

/// [`add_to_linker`] with `wasi:keyvalue/batch@0.2.0-draft2`'s `get-many`
/// in the shape given: the one a component imports, as
/// [`GetManyShape::of`] tells. A linker holds one shape, so an application
/// that runs components of both keeps a linker for each.
///
/// ```
/// use cubby_host::{GetManyShape, StorageCtx};
/// use wasmtime::component::Linker;
/// # fn main() -> anyhow::Result<()> {
/// let engine = wasmtime::Engine::default();
/// let mut spin = Linker::<StorageCtx>::new(&engine);
/// cubby_host::add_to_linker_for(&mut spin, |ctx| ctx, GetManyShape::Spin)?;
/// # Ok(()) }
/// ```
pub fn add_to_linker_for<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
    shape: GetManyShape,
) -> wasmtime::Result<()> {
    bindings::sync::cubby::storage::storage::add_to_linker::<T, HasStorage>(linker, get)?;
    bindings::sync::cubby::storage::streams::add_to_linker::<T, HasStorage>(linker, get)?;
    keyvalue::add_to_linker(linker, get, shape)
}

/// Adds the same imports as [`add_to_linker`] to a linker used with
/// wasmtime's async API (`instantiate_async`, `call_async`, and the `async`
/// bindings in [`bindings`]); `get` finds the [`StorageCtx`] in the store's
/// data. Writes, and every call to a remote database (PostgreSQL), run on
/// tokio's blocking pool, so they never block the executor's threads while
/// they wait for a commit or the network; reads of a local database (redb,
/// in memory) run on the calling task's thread, as reading a file would,
/// because the hand-off to the blocking pool and back costs tens of
/// microseconds, many times the read. Must be used inside a tokio runtime.
pub fn add_to_linker_async<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
) -> wasmtime::Result<()> {
    add_to_linker_async_for(linker, get, GetManyShape::Upstream)
}

/// [`add_to_linker_async`] with `get-many` in the shape given; see
/// [`add_to_linker_for`].
pub fn add_to_linker_async_for<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
    shape: GetManyShape,
) -> wasmtime::Result<()> {
    bindings::cubby::storage::storage::add_to_linker::<T, HasStorage>(linker, get)?;
    bindings::cubby::storage::streams::add_to_linker::<T, HasStorage>(linker, get)?;
    keyvalue::add_to_linker_async(linker, get, shape)
}
