//! The runtime's errors. A variant that wraps a lower-level error keeps it as
//! its `source()` (print the chain, e.g. anyhow's `{:#}`, to see it); a
//! failure of the host itself (a task that could not run) is never reported
//! as the plugin's fault.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::BoxError;

/// Why a [`Runtime`](crate::Runtime) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// wasmtime rejected the configuration, or a thread could not start.
    #[error("cannot set up the WebAssembly engine")]
    Engine(#[source] BoxError),
    /// The compilation cache folder could not be used.
    #[error("cannot use {dir} as the compilation cache")]
    Cache {
        /// The folder.
        dir: PathBuf,
        /// What wasmtime reported.
        #[source]
        source: BoxError,
    },
    /// A compilation cache was asked for together with an engine of the
    /// embedder's own, whose configuration (cache included) is fixed.
    #[error(
        "a cache folder cannot be set for an existing engine; configure its cache when creating it"
    )]
    CacheWithOwnEngine,
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly at all.
    #[error("{name} is not a WebAssembly file (no `\\0asm` header)")]
    NotWasm {
        /// The plugin's name.
        name: String,
    },
    /// A core module, not a component.
    #[error(
        "{name} is a core WebAssembly module, not a component; build plugins for the wasm32-wasip2 target"
    )]
    CoreModule {
        /// The plugin's name.
        name: String,
    },
    /// The component does not validate or compile.
    #[error("{name} is not a valid component")]
    Invalid {
        /// The plugin's name.
        name: String,
        /// What wasmtime reported.
        #[source]
        source: BoxError,
    },
    /// The component imports something this host does not provide.
    #[error("{name} imports `{import}`, which this host does not provide")]
    UnsatisfiedImport {
        /// The plugin's name.
        name: String,
        /// The import, as wasmtime names it (e.g. `acme:db/sql`).
        import: String,
        /// What wasmtime reported.
        #[source]
        source: BoxError,
    },
    /// The component imports `wasi:keyvalue/batch@0.2.0-draft2` with a
    /// `get-many` of neither shape Cubby serves
    /// ([`GetManyShape`](crate::GetManyShape)); the source says which it
    /// has and which are served.
    #[error(
        "{name} imports `wasi:keyvalue/batch@0.2.0-draft2` in a shape this host does not serve"
    )]
    UnservedShape {
        /// The plugin's name.
        name: String,
        /// What it imports, and what is served.
        #[source]
        source: crate::UnservedShape,
    },
    /// Neither entry point is exported.
    #[error("{name} exports neither `{handler}` nor `wasi:cli/run`, so there is nothing to call")]
    MissingExport {
        /// The plugin's name.
        name: String,
        /// The handler interface, as the bindings look it up.
        handler: String,
        /// What the bindings reported about the handler export.
        #[source]
        source: BoxError,
    },
    /// Loading failed on the host (its blocking task could not run).
    #[error("loading the plugin failed on the host")]
    Host(#[source] BoxError),
}

/// Why a call to a plugin failed. Every variant ends that call only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// [`Plugin::call`](crate::Plugin::call) on a component without the
    /// handler export.
    #[error(
        "{name} does not export `{handler}`; if it is a command-style plugin (with `fn main`), run it instead"
    )]
    NotAHandler {
        /// The plugin's name.
        name: String,
        /// The handler interface, as the bindings look it up.
        handler: String,
    },
    /// [`Plugin::run`](crate::Plugin::run) on a component without
    /// `wasi:cli/run`.
    #[error(
        "{name} does not export `wasi:cli/run`; if it is a request/response plugin, call it instead"
    )]
    NotACommand {
        /// The plugin's name.
        name: String,
    },
    /// The plugin's `handle` returned an error.
    #[error("plugin returned an error: {0}")]
    Plugin(String),
    /// The call ran past the time limit and was stopped.
    #[error("plugin was stopped after running longer than the time limit of {}", humantime::format_duration(*limit))]
    Timeout {
        /// The limit.
        limit: Duration,
    },
    /// The plugin tried to grow its memory past the limit and was stopped.
    #[error(
        "plugin was stopped: it asked for {requested} bytes of memory, the limit is {limit} bytes"
    )]
    MemoryLimit {
        /// The limit, in bytes.
        limit: usize,
        /// The size it asked to grow to.
        requested: usize,
    },
    /// The plugin trapped (a panic, an `unreachable`, an out-of-bounds
    /// access); the trap is the source. The full wasm backtrace is logged
    /// at debug level.
    #[error("plugin trapped")]
    Trap(#[source] BoxError),
    /// Every instance slot of the runtime's pool was in use by running
    /// calls, for a [`call_blocking`](crate::Plugin::call_blocking) or
    /// [`run_blocking`](crate::Plugin::run_blocking) (async calls wait for a
    /// slot instead), or for any call on an engine of the embedder's own
    /// whose pool ran out. Nothing of this call ran; try again, or build the
    /// runtime with a larger
    /// [`max_instances`](crate::RuntimeBuilder::max_instances).
    /// The source is wasmtime's account of which pool ran out.
    #[error(
        "every plugin instance slot is in use by running calls; try again, or raise the runtime's max_instances"
    )]
    Busy(#[source] BoxError),
    /// The call failed on the host (its blocking task could not run, or the
    /// host could not set up the instance).
    #[error("the call failed on the host")]
    Host(#[source] BoxError),
}

/// The first name quoted in backticks in a wasmtime error's chain: how
/// wasmtime and the generated bindings name an import or export.
pub(crate) fn quoted_name(e: &wasmtime::Error) -> Option<String> {
    e.chain().find_map(|cause| {
        let text = cause.to_string();
        let start = text.find('`')? + 1;
        let len = text[start..].find('`')?;
        Some(text[start..start + len].to_owned())
    })
}
