//! The embedding API: a [`Runtime`] that loads components once and runs each
//! call in a fresh, sandboxed store bound to the workspace the caller names.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::PluginPre;
use crate::context::{self, StorageCtx};
use crate::engine::Workspace;

/// How often the epoch ticker advances; the resolution of the time limit.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Most bytes of stdout or stderr kept per call in [`Output::Capture`] mode.
const CAPTURE_LIMIT: usize = 1024 * 1024;
/// The name of the handler export, for error messages.
const HANDLER_EXPORT: &str = "cubby:storage/handler@0.1.0";

/// Where a plugin's stdout or stderr goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Discarded (the default: a plugin has no ambient authority).
    #[default]
    Discard,
    /// Written to the host process's own stream.
    Inherit,
    /// Kept (up to 1 MiB per call) and returned in [`RunOutput`] by
    /// [`Plugin::run`]; discarded by [`Plugin::call`].
    Capture,
}

/// Configures and builds a [`Runtime`].
///
/// Defaults: 64 MiB of linear memory per instance, 10 s of wall-clock time per
/// call, stdout and stderr discarded, no stdin, no compilation cache.
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    max_memory_bytes: usize,
    timeout: Duration,
    stdout: Output,
    stderr: Output,
    inherit_stdin: bool,
    cache_dir: Option<PathBuf>,
}

impl RuntimeBuilder {
    /// The most linear memory one instance may grow to, in bytes. A plugin
    /// that asks for more is stopped with [`CallError::MemoryLimit`].
    pub fn max_memory_bytes(mut self, bytes: usize) -> Self {
        self.max_memory_bytes = bytes;
        self
    }

    /// The longest one call may run (wall-clock, enforced by epoch
    /// interruption to within about 10 ms). A plugin that runs longer is
    /// stopped with [`CallError::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where plugins' stdout goes.
    pub fn stdout(mut self, output: Output) -> Self {
        self.stdout = output;
        self
    }

    /// Where plugins' stderr goes.
    pub fn stderr(mut self, output: Output) -> Self {
        self.stderr = output;
        self
    }

    /// Whether plugins read the host process's stdin (default: stdin is
    /// closed).
    pub fn inherit_stdin(mut self, inherit: bool) -> Self {
        self.inherit_stdin = inherit;
        self
    }

    /// Caches compiled components in `dir`, keyed by the component's hash and
    /// the engine's configuration, so a later process loads them in
    /// milliseconds instead of compiling again.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Builds the runtime: configures the wasmtime engine, links WASI (with no
    /// preopens, environment or network) and the storage interface, and starts
    /// the epoch ticker that enforces the time limit.
    pub fn build(self) -> Result<Runtime, RuntimeError> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        if let Some(dir) = &self.cache_dir {
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            let cache = wasmtime::Cache::new(cache).map_err(|e| RuntimeError::Cache {
                dir: dir.clone(),
                reason: e.to_string(),
            })?;
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| context::add_to_linker(&mut linker, |s: &mut HostState| &mut s.storage))
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        start_epoch_ticker(&engine).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                config: self,
            }),
        })
    }
}

/// Loads plugins (compiling each once) and holds the limits every call runs
/// under. Cheap to clone. Which data a call sees is chosen per call, by the
/// [`Workspace`] handle the host passes to [`Plugin::call`] or [`Plugin::run`].
///
/// ```
/// use cubby_host::Runtime;
/// # fn main() -> anyhow::Result<()> {
/// let runtime = Runtime::builder()
///     .timeout(std::time::Duration::from_secs(5))
///     .max_memory_bytes(32 << 20)
///     .build()?;
/// # let _ = runtime;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<HostState>,
    config: RuntimeBuilder,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// The default wall-clock limit of one call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default linear-memory limit of one instance, in bytes.
    pub const DEFAULT_MAX_MEMORY_BYTES: usize = 64 << 20;

    /// A builder with the default limits.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            max_memory_bytes: Self::DEFAULT_MAX_MEMORY_BYTES,
            timeout: Self::DEFAULT_TIMEOUT,
            stdout: Output::Discard,
            stderr: Output::Discard,
            inherit_stdin: false,
            cache_dir: None,
        }
    }

    /// Reads, compiles and pre-instantiates the component at `path`.
    ///
    /// Compilation runs on a blocking thread. See [`Runtime::load_bytes`] for
    /// the errors.
    pub async fn load_file(&self, path: impl AsRef<Path>) -> Result<Plugin, LoadError> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        self.load_bytes(path.display().to_string(), bytes).await
    }

    /// Compiles and pre-instantiates a component from its bytes; `name` is
    /// used in messages.
    ///
    /// Errors: the bytes are not WebAssembly, are a core module instead of a
    /// component, do not validate, import something this host does not
    /// provide, or export neither `cubby:storage/handler` nor `wasi:cli/run`.
    pub async fn load_bytes(
        &self,
        name: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<Plugin, LoadError> {
        let name = name.into();
        let runtime = self.clone();
        tokio::task::spawn_blocking(move || runtime.load_blocking(name, &bytes))
            .await
            .map_err(|e| LoadError::Invalid {
                name: "component".into(),
                reason: format!("loading task failed: {e}"),
            })?
    }

    fn load_blocking(&self, name: String, bytes: &[u8]) -> Result<Plugin, LoadError> {
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', _, _, 1, 0]) => {}
            Some([0, b'a', b's', b'm', _, _, 0, 0]) => return Err(LoadError::CoreModule { name }),
            _ => return Err(LoadError::NotWasm { name }),
        }
        let component =
            Component::new(&self.inner.engine, bytes).map_err(|e| LoadError::Invalid {
                name: name.clone(),
                reason: error_chain(&e),
            })?;
        let pre: InstancePre<HostState> =
            self.inner.linker.instantiate_pre(&component).map_err(|e| {
                LoadError::UnsatisfiedImport {
                    name: name.clone(),
                    reason: error_chain(&e),
                }
            })?;
        let handler = PluginPre::new(pre.clone());
        let command = CommandPre::new(pre).ok();
        let handler = match (handler, &command) {
            (Ok(handler), _) => Some(handler),
            (Err(_), Some(_)) => None,
            (Err(e), None) => {
                return Err(LoadError::MissingExport {
                    name,
                    reason: error_chain(&e),
                });
            }
        };
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                runtime: self.clone(),
                name,
                handler,
                command,
            }),
        })
    }

    fn new_store(&self, workspace: &Workspace, args: &[String]) -> (Store<HostState>, Captured) {
        let config = &self.inner.config;
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .args(args);
        if config.inherit_stdin {
            wasi.inherit_stdin();
        }
        let capture =
            |mode| (mode == Output::Capture).then(|| MemoryOutputPipe::new(CAPTURE_LIMIT));
        let captured = Captured {
            stdout: capture(config.stdout),
            stderr: capture(config.stderr),
        };
        if config.stdout == Output::Inherit {
            wasi.inherit_stdout();
        }
        if config.stderr == Output::Inherit {
            wasi.inherit_stderr();
        }
        if let Some(pipe) = &captured.stdout {
            wasi.stdout(pipe.clone());
        }
        if let Some(pipe) = &captured.stderr {
            wasi.stderr(pipe.clone());
        }
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            storage: StorageCtx::new(workspace.clone()),
            limiter: MemoryLimiter {
                max_bytes: config.max_memory_bytes,
                refused: None,
            },
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = config.timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).max(1));
        store.epoch_deadline_trap();
        (store, captured)
    }

    /// Turns a wasmtime error from instantiating or calling into a [`CallError`].
    fn classify(&self, store: &Store<HostState>, e: wasmtime::Error) -> CallError {
        if let Some(requested) = store.data().limiter.refused {
            return CallError::MemoryLimit {
                limit: self.inner.config.max_memory_bytes,
                requested,
            };
        }
        // The full error carries the guest's wasm backtrace over many lines:
        // useful to a plugin author, so it is logged; the caller gets one line.
        tracing::debug!(plugin_error = ?e, "plugin call failed");
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => CallError::Timeout {
                limit: self.inner.config.timeout,
            },
            Some(trap) => CallError::Trap(trap.to_string()),
            None => CallError::Trap(e.root_cause().to_string()),
        }
    }
}

/// A loaded, pre-instantiated component. Cheap to clone; each call gets a
/// fresh instance, so no state is shared between calls except through storage.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    runtime: Runtime,
    name: String,
    handler: Option<PluginPre<HostState>>,
    command: Option<CommandPre<HostState>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.name)
            .field("handler", &self.is_handler())
            .field("command", &self.is_command())
            .finish()
    }
}

/// What a command-style plugin left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutput {
    /// The exit code: 0 when `main` returned normally, the code passed to
    /// `std::process::exit` otherwise, 1 when `main` returned an error.
    pub exit_code: i32,
    /// Captured stdout (empty unless [`Output::Capture`]).
    pub stdout: Vec<u8>,
    /// Captured stderr (empty unless [`Output::Capture`]).
    pub stderr: Vec<u8>,
}

struct Captured {
    stdout: Option<MemoryOutputPipe>,
    stderr: Option<MemoryOutputPipe>,
}

impl Plugin {
    /// The name the plugin was loaded under (its path, for files).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether it exports `cubby:storage/handler` (can be [`call`](Self::call)ed).
    pub fn is_handler(&self) -> bool {
        self.inner.handler.is_some()
    }

    /// Whether it exports `wasi:cli/run` (can be [`run`](Self::run)).
    pub fn is_command(&self) -> bool {
        self.inner.command.is_some()
    }

    /// Calls the plugin's `handle` export with `request`, in a fresh instance
    /// bound to `workspace`, on a blocking thread.
    ///
    /// Errors: a plugin that is not a handler, the plugin's own error
    /// ([`CallError::Plugin`]), a trap, the time or memory limit. None of them
    /// affects other calls or workspaces.
    pub async fn call(&self, workspace: &Workspace, request: &[u8]) -> Result<Vec<u8>, CallError> {
        let this = self.clone();
        let workspace = workspace.clone();
        let request = request.to_vec();
        spawn(move || this.call_blocking(&workspace, &request)).await
    }

    fn call_blocking(&self, workspace: &Workspace, request: &[u8]) -> Result<Vec<u8>, CallError> {
        let pre = self
            .inner
            .handler
            .as_ref()
            .ok_or_else(|| CallError::NotAHandler {
                name: self.inner.name.clone(),
            })?;
        let runtime = &self.inner.runtime;
        let (mut store, _captured) = runtime.new_store(workspace, &[]);
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| runtime.classify(&store, e))?;
        instance
            .cubby_storage_handler()
            .call_handle(&mut store, request)
            .map_err(|e| runtime.classify(&store, e))?
            .map_err(CallError::Plugin)
    }

    /// Runs the plugin's `main` (`wasi:cli/run`) with `args` (`args[0]` is the
    /// program name a plugin sees), in a fresh instance bound to `workspace`,
    /// on a blocking thread.
    pub async fn run(
        &self,
        workspace: &Workspace,
        args: &[String],
    ) -> Result<RunOutput, CallError> {
        let this = self.clone();
        let workspace = workspace.clone();
        let args = args.to_vec();
        spawn(move || this.run_blocking(&workspace, &args)).await
    }

    fn run_blocking(&self, workspace: &Workspace, args: &[String]) -> Result<RunOutput, CallError> {
        let pre = self
            .inner
            .command
            .as_ref()
            .ok_or_else(|| CallError::NotACommand {
                name: self.inner.name.clone(),
            })?;
        let runtime = &self.inner.runtime;
        let (mut store, captured) = runtime.new_store(workspace, args);
        let result = pre
            .instantiate(&mut store)
            .and_then(|command| command.wasi_cli_run().call_run(&mut store));
        let exit_code = match result {
            Ok(Ok(())) => 0,
            Ok(Err(())) => 1,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None => return Err(runtime.classify(&store, e)),
            },
        };
        let take = |pipe: Option<MemoryOutputPipe>| {
            pipe.map(|p| p.contents().to_vec()).unwrap_or_default()
        };
        Ok(RunOutput {
            exit_code,
            stdout: take(captured.stdout),
            stderr: take(captured.stderr),
        })
    }
}

async fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CallError> + Send + 'static,
) -> Result<T, CallError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CallError::Trap(format!("call task failed: {e}")))?
}

/// The data of one store: WASI state, the storage context and the limiter.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    storage: StorageCtx,
    limiter: MemoryLimiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory growth past the limit (`memory.grow` returns -1, as the
/// spec says) and remembers it, so the trap that usually follows is reported
/// as [`CallError::MemoryLimit`].
struct MemoryLimiter {
    max_bytes: usize,
    refused: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is gone.
fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("cubby-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
}

/// The whole cause chain of a wasmtime error on one line.
fn error_chain(e: &wasmtime::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Why a [`Runtime`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// wasmtime rejected the configuration.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    /// The compilation cache folder could not be used.
    #[error("cannot use {dir} as the compilation cache: {reason}")]
    Cache {
        /// The folder.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
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
    #[error("{name} is not a valid component: {reason}")]
    Invalid {
        /// The plugin's name.
        name: String,
        /// What wasmtime reported.
        reason: String,
    },
    /// The component imports something this host does not provide.
    #[error("{name} imports something this host does not provide: {reason}")]
    UnsatisfiedImport {
        /// The plugin's name.
        name: String,
        /// What wasmtime reported.
        reason: String,
    },
    /// Neither entry point is exported.
    #[error(
        "{name} exports neither `{HANDLER_EXPORT}` nor `wasi:cli/run`, so there is nothing to call ({reason})"
    )]
    MissingExport {
        /// The plugin's name.
        name: String,
        /// What wasmtime reported about the handler export.
        reason: String,
    },
}

/// Why a call to a plugin failed. Every variant ends that call only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// [`Plugin::call`] on a component without the handler export.
    #[error(
        "{name} does not export `{HANDLER_EXPORT}`; if it is a command-style plugin (with `fn main`), run it instead"
    )]
    NotAHandler {
        /// The plugin's name.
        name: String,
    },
    /// [`Plugin::run`] on a component without `wasi:cli/run`.
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
    /// The plugin trapped (a panic, an `unreachable`, an out-of-bounds access).
    #[error("plugin trapped: {0}")]
    Trap(String),
}
