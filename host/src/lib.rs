//! # cubby-host
//!
//! A WebAssembly component host that gives sandboxed plugins durable
//! key-value storage, scoped per **workspace**.
//!
//! Layers, each knowing only the one below it:
//! 1. the storage engine ([`Storage`], [`Workspace`]), no wasm: a front that
//!    validates and gives every operation its meaning, over a backend that
//!    keeps the data, an embedded redb file ([`Storage::open`]) or a
//!    PostgreSQL-protocol database shared by many processes
//!    ([`Storage::connect`]);
//! 2. the glue ([`StorageCtx`], [`add_to_linker`], [`add_to_linker_async`],
//!    [`bindings`]): the `cubby:storage` imports and the standard
//!    `wasi:keyvalue` imports (`0.2.0-draft` and `0.2.0-draft2`, a bucket
//!    being a namespace) bound to one workspace, and typed bindings of the
//!    `plugin` world;
//! 3. the runtime ([`Runtime`], [`Plugin`]): components compiled once, each
//!    call in a fresh sandboxed store with memory and time limits. It is
//!    built from the parts of layer 2.
//!
//! The `cubby` command-line tool is a separate crate, `cubby-cli`. Metrics
//! and traces of calls and storage go through the `metrics` facade and
//! `tracing` ([`telemetry`]).
//!
//! # Batteries included: [`Runtime`]
//!
//! The same example as the README's "Embedding the host":
//!
//! ```
//! use cubby_host::{Runtime, Storage, StorageOptions};
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     // One database per process: a file (`Storage::open`), memory, or a
//!     // PostgreSQL database shared with other processes (`Storage::connect`).
//!     let storage = Storage::in_memory(StorageOptions::default())?;
//!     // One runtime: the wasmtime engine, limits, WASI policy.
//!     let runtime = Runtime::builder()
//!         .timeout(std::time::Duration::from_secs(5))
//!         .max_memory_bytes(64 << 20)
//!         .build()?;
//!     // Compiled and pre-instantiated once (here, the example plugin built by the tests).
//!     let notes = runtime.load_file(cubby_artifacts::NOTES).await?;
//!
//!     // The host decides which workspace each call sees.
//!     let team_a = storage.workspace("team-a")?;
//!     let reply = notes.call(&team_a, br#"{"op":"add","text":"hello"}"#).await?;
//!     assert_eq!(reply, br#"{"id":1,"text":"hello"}"#);
//!
//!     // The host can read the same data directly.
//!     assert!(team_a.exists("note/00000000000000000001")?);
//!     assert!(!storage.workspace("team-b")?.exists("note/00000000000000000001")?);
//!     Ok(())
//! }
//! ```
//!
//! # An application's own wasmtime setup
//!
//! An application that owns its `Engine`, `Linker` and `Store` (because it
//! links other interfaces of its own, uses fuel, or pools instances) adds
//! Cubby's imports to its linker with [`add_to_linker`] (sync) or
//! [`add_to_linker_async`], keeps a [`StorageCtx`] in its store data, and
//! calls `handle` through [`bindings::sync::PluginPre`] (or
//! [`bindings::PluginPre`]). The same as `examples/byo_linker.rs`:
//!
//! ```
//! use cubby_host::bindings::sync::PluginPre;
//! use cubby_host::{Storage, StorageCtx, StorageOptions};
//! use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
//! use wasmtime::{Engine, Store};
//! use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
//!
//! // An interface of the application's own.
//! wasmtime::component::bindgen!({
//!     inline: "package example:app;
//!              interface clock { now-ms: func() -> u64; }
//!              world app-plugin { import clock; }",
//! });
//!
//! struct App {
//!     wasi: WasiCtx,
//!     table: ResourceTable,
//!     storage: StorageCtx,
//! }
//!
//! impl WasiView for App {
//!     fn ctx(&mut self) -> WasiCtxView<'_> {
//!         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
//!     }
//! }
//!
//! impl example::app::clock::Host for App {
//!     fn now_ms(&mut self) -> u64 {
//!         1_700_000_000_000
//!     }
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! let engine = Engine::default();
//! let mut linker = Linker::<App>::new(&engine);
//! wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
//! cubby_host::add_to_linker(&mut linker, |app: &mut App| &mut app.storage)?;
//! example::app::clock::add_to_linker::<App, HasSelf<App>>(&mut linker, |app| app)?;
//!
//! // A plugin that imports both (the `embedded` test guest).
//! let component = Component::from_file(&engine, cubby_artifacts::EMBEDDED)?;
//! let plugin = PluginPre::new(linker.instantiate_pre(&component)?)?;
//!
//! let storage = Storage::in_memory(StorageOptions::default())?;
//! let app = App {
//!     wasi: WasiCtx::builder().build(),
//!     table: ResourceTable::new(),
//!     // The application decides which workspace this store sees.
//!     storage: StorageCtx::new(storage.workspace("team-a")?),
//! };
//! let mut store = Store::new(&engine, app);
//! let instance = plugin.instantiate(&mut store)?;
//! let reply = instance
//!     .cubby_storage_handler()
//!     .call_handle(&mut store, b"ada")?
//!     .map_err(anyhow::Error::msg)?;
//! assert_eq!(reply, br#"{"who":"ada","visits":1,"at":1700000000000}"#);
//! assert_eq!(storage.workspace("team-a")?.get("visits/ada")?.as_deref(), Some(&b"1"[..]));
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod bindings;
mod context;
mod engine;
mod guest_error;
mod host;
mod keyvalue;
mod linker;
mod runtime;
pub mod streams;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

pub use context::StorageCtx;
pub use engine::{
    BoxError, ErrorKind, Namespace, OpenError, Storage, StorageError, StorageOptions, StreamReader,
    StreamWriter, Workspace,
};
pub use keyvalue::{GetManyShape, UnservedShape};
pub use linker::{add_to_linker, add_to_linker_async, add_to_linker_async_for, add_to_linker_for};
pub use runtime::{CallError, LoadError, Plugin, RunOutput, Runtime, RuntimeBuilder, RuntimeError};

/// What storage operations take and return: entries, pages of keys,
/// conditions and write options, the operations of a transaction and their
/// outcomes, usage, and the options and metadata of streamed values.
pub mod ops {
    pub use crate::engine::{
        Action, Cleared, CommitStats, Condition, Entry, KeyPage, Keys, MAX_NAMESPACE_BYTES, Op,
        Outcome, StreamOptions, Usage, ValueInfo, WriteOptions,
    };
}

/// How storage and plugins are configured: the limits and quotas every
/// workspace gets, durability, the PostgreSQL connection, the clock expiry
/// is measured by, where plugins' output goes. [`StorageOptions`] gathers
/// the storage's; [`RuntimeBuilder`] the runtime's.
pub mod options {
    pub use crate::engine::{
        Clock, Durability, Limits, ManualClock, PostgresOptions, Quota, QuotaSource, SystemClock,
    };
    pub use crate::runtime::Output;
}

/// Moving a workspace in and out: [`Workspace::export`] and
/// [`Workspace::import`], their options, summaries and errors.
pub mod transfer {
    pub use crate::engine::{
        ExportOptions, ExportSummary, ImportMode, ImportSummary, Progress, TransferError,
    };
}

#[cfg(test)]
mod tests;
