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
//! 2. the glue ([`StorageCtx`], [`add_to_linker`]): the `cubby:storage`
//!    imports bound to one workspace;
//! 3. the runtime ([`Runtime`], [`Plugin`]): components compiled once, each
//!    call in a fresh sandboxed store with memory and time limits;
//! 4. the `cubby` command-line tool (the `cli` module, not public API).
//!
//! ```no_run
//! use cubby_host::{Runtime, Storage, StorageOptions};
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let storage = Storage::open("data/cubby.redb", StorageOptions::default())?;
//!     let runtime = Runtime::builder().build()?;
//!     let notes = runtime.load_file("notes.wasm").await?;
//!     let team_a = storage.workspace("team-a")?;
//!     let reply = notes.call(&team_a, br#"{"op":"add","text":"hi"}"#).await?;
//!     println!("{}", String::from_utf8_lossy(&reply));
//!     Ok(())
//! }
//! ```

#![deny(missing_docs)]

pub mod bindings;
mod context;
mod engine;
mod host;
mod runtime;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

pub use context::{StorageCtx, add_to_linker, add_to_linker_async};
pub use engine::{
    Action, BoxError, Cleared, Clock, Condition, Durability, Entry, KeyPage, Keys, Limits,
    MAX_NAMESPACE_BYTES, ManualClock, Namespace, Op, OpenError, Outcome, PostgresOptions,
    PruneReport, Quota, Storage, StorageError, StorageOptions, SystemClock, Usage, Workspace,
    WriteOptions,
};
pub use runtime::{
    CallError, LoadError, Output, Plugin, RunOutput, Runtime, RuntimeBuilder, RuntimeError,
};
