//! The embedding API: a [`Runtime`] that loads components once and runs each
//! call in a fresh, sandboxed store bound to the workspace the caller names.
//!
//! - this file: [`RuntimeBuilder`], [`Runtime`], loading;
//! - `plugin.rs`: [`Plugin`], calling and running;
//! - `store.rs`: one call's store (WASI, storage context, memory limit);
//! - `error.rs`: [`RuntimeError`], [`LoadError`], [`CallError`].
//!
//! The runtime is built from the public parts an embedder with its own
//! wasmtime setup uses: [`add_to_linker`](crate::add_to_linker),
//! [`StorageCtx`](crate::StorageCtx) and
//! [`bindings::sync::PluginPre`](crate::bindings::sync::PluginPre).

mod epoch;
mod error;
mod plugin;
mod store;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime_wasi::p2::bindings::sync::CommandPre;

pub use error::{CallError, LoadError, RuntimeError};
use plugin::Handler;

use crate::telemetry::PoolMetrics;
pub use plugin::{Plugin, RunOutput};

use crate::bindings::sync::PluginPre;
use crate::keyvalue::GetManyShape;
use error::quoted_name;
use store::HostState;

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
/// call, up to 100 instances at once from a pool, stdout and stderr
/// discarded, no stdin, no environment variables, every `wasi:keyvalue`
/// bucket allowed, no compilation cache.
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    max_memory_bytes: usize,
    timeout: Duration,
    max_instances: u32,
    pooling: bool,
    stdout: Output,
    stderr: Output,
    inherit_stdin: bool,
    cache_dir: Option<PathBuf>,
    engine: Option<Engine>,
    env: Vec<(String, String)>,
    buckets: Option<Arc<BTreeSet<String>>>,
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

    /// How many plugin instances may exist at once, which is how many calls
    /// may run at once (default 100). Instances come from a pool the runtime
    /// sets up once, so a call does not map, zero and unmap memory: its
    /// instance takes a free slot and gives it back reset. An async
    /// [`Plugin::call`] or [`Plugin::run`] that finds every slot taken waits
    /// for one; [`Plugin::call_blocking`] and [`Plugin::run_blocking`] fail
    /// at once with [`CallError::Busy`] instead of blocking their thread.
    ///
    /// The pool reserves (but does not commit) address space for every slot:
    /// about 4 GiB per linear memory (so that the compiled code needs no
    /// bounds checks), up to 4 memories per instance (a component with more
    /// fails to load), so the default reserves about 1.6 TiB of the 128 TiB a
    /// 64-bit Linux process has. Memory is only resident while slots are in
    /// use. Up to 1 MiB of each slot used before stays resident (64 KiB on
    /// Linux before 6.7 and other systems) so that the next call need not
    /// fault it in again; before a slot is reused, every page a call wrote is
    /// reset to the plugin's initial memory, so nothing of one call is
    /// visible to the next.
    ///
    /// Ignored with [`engine`](Self::engine) (the embedder's engine decides).
    pub fn max_instances(mut self, instances: u32) -> Self {
        self.max_instances = instances.max(1);
        self
    }

    /// Whether instances come from the pool (the default) or are allocated
    /// and freed on every call (`false`: each call costs tens of
    /// microseconds more, but no address space is reserved up front and
    /// there is no limit on concurrent calls). If the operating system
    /// refuses the pool's reservation (for example under `ulimit -v`), the
    /// runtime falls back to allocating per call and logs a warning.
    pub fn pooling(mut self, pooling: bool) -> Self {
        self.pooling = pooling;
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

    /// Sets an environment variable every plugin sees (through
    /// `wasi:cli/environment`). Nothing of the host's own environment is
    /// passed otherwise. Repeat for more; a later value for the same key
    /// wins.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// Lets `wasi:keyvalue` plugins open only these buckets (`""` is the
    /// default space; by default every bucket may be opened). Opening
    /// another valid name is `access-denied`. See
    /// [`StorageCtx::allow_buckets`](crate::StorageCtx::allow_buckets).
    pub fn allow_buckets<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.buckets = Some(crate::context::bucket_set(names));
        self
    }

    /// Caches compiled components in `dir`, keyed by the component's hash and
    /// the engine's configuration, so a later process loads them in
    /// milliseconds instead of compiling again. Only for the engine the
    /// runtime creates (not with [`engine`](Self::engine)).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Runs plugins on an engine of the embedder's own instead of one the
    /// runtime creates, so that components compiled for it can be shared.
    /// Create it from [`Runtime::engine_config`] (extended as you like): the
    /// time limit needs epoch interruption, and Cubby increments the
    /// engine's epoch every 10 ms while the engine lives, once however many
    /// runtimes share it (do not increment it yourself as well, or time
    /// limits end early).
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Builds the runtime: configures the wasmtime engine, links WASI (with no
    /// preopens or network, and only the environment set with
    /// [`env`](Self::env)), `cubby:storage` and `wasi:keyvalue` (see
    /// [`add_to_linker`](crate::add_to_linker)), and starts the epoch ticker
    /// that enforces the time limit.
    pub fn build(mut self) -> Result<Runtime, RuntimeError> {
        let own_engine = self.engine.is_some();
        let engine = match self.engine.take() {
            Some(_) if self.cache_dir.is_some() => return Err(RuntimeError::CacheWithOwnEngine),
            Some(engine) => engine,
            None => self.new_engine()?,
        };
        let linkers = Linkers::new(&engine).map_err(|e| RuntimeError::Engine(e.into()))?;
        epoch::keep_ticking(&engine).map_err(|e| RuntimeError::Engine(e.into()))?;
        let pooled = self.pooling && !own_engine;
        let slots = pooled.then(|| Arc::new(Semaphore::new(self.max_instances as usize)));
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                pool_metrics: pooled.then(|| PoolMetrics::new(self.max_instances)),
                slots,
                linkers,
                config: self,
            }),
        })
    }
}

impl RuntimeBuilder {
    /// The engine the runtime creates: pooled instances when asked for and
    /// the system allows, the compile cache when asked for.
    fn new_engine(&mut self) -> Result<Engine, RuntimeError> {
        let mut config = Runtime::engine_config();
        if let Some(dir) = &self.cache_dir {
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            let cache = wasmtime::Cache::new(cache).map_err(|e| RuntimeError::Cache {
                dir: dir.clone(),
                source: e.into(),
            })?;
            config.cache(Some(cache));
        }
        if self.pooling {
            let mut pooled = config.clone();
            pooled.allocation_strategy(pool_config(self.max_instances));
            match Engine::new(&pooled) {
                Ok(engine) => return Ok(engine),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "cannot reserve the instance pool; allocating instances per call instead"
                    );
                    self.pooling = false;
                }
            }
        }
        Engine::new(&config).map_err(|e| RuntimeError::Engine(e.into()))
    }
}

/// Most linear memories one instance may have with the pooling allocator
/// (a Rust plugin has one); a component with more fails to load.
const MAX_MEMORIES_PER_INSTANCE: u32 = 4;
/// Most tables one pooled instance may have (a Rust plugin has two).
const MAX_TABLES_PER_INSTANCE: u32 = 16;
/// Most core module instances one pooled instance may have (a Rust plugin
/// has a handful; plugins built by other languages' toolchains more).
const MAX_CORE_INSTANCES_PER_INSTANCE: u32 = 64;
/// How much of a used memory slot stays resident for the next instance
/// where Linux's `PAGEMAP_SCAN` (kernel 6.7 and later) tells which pages a
/// call wrote: only those are reset, by copying or zeroing, so the next
/// instance finds them mapped instead of faulting them in again.
const KEEP_RESIDENT_SCANNED: usize = 1 << 20;
/// How much stays resident without `PAGEMAP_SCAN`, where every byte kept is
/// reset on every call whether it was written or not.
const KEEP_RESIDENT: usize = 64 << 10;

/// The instance pool for `instances` concurrent instances, each within the
/// per-instance maxima above.
fn pool_config(instances: u32) -> wasmtime::InstanceAllocationStrategy {
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(MAX_CORE_INSTANCES_PER_INSTANCE))
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_INSTANCE)
        .total_memories(instances.saturating_mul(MAX_MEMORIES_PER_INSTANCE))
        .max_memories_per_component(MAX_MEMORIES_PER_INSTANCE)
        .total_tables(instances.saturating_mul(MAX_TABLES_PER_INSTANCE))
        .max_tables_per_component(MAX_TABLES_PER_INSTANCE)
        .total_stacks(instances)
        .table_keep_resident(KEEP_RESIDENT);
    if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_SCANNED);
    } else {
        pool.linear_memory_keep_resident(KEEP_RESIDENT);
    }
    wasmtime::InstanceAllocationStrategy::Pooling(pool)
}

/// Loads plugins (compiling each once) and holds the limits every call runs
/// under. Cheap to clone. Which data a call sees is chosen per call, by the
/// [`Workspace`](crate::Workspace) handle the host passes to [`Plugin::call`] or
/// [`Plugin::run`].
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
    /// One permit per slot of the instance pool (when the runtime pools its
    /// own instances), so async calls wait for a slot instead of failing.
    slots: Option<Arc<Semaphore>>,
    /// The pool's gauges (with `slots`).
    pool_metrics: Option<PoolMetrics>,
    linkers: Linkers,
    config: RuntimeBuilder,
}

/// A linker for each shape of `wasi:keyvalue`'s draft2 `get-many`: a
/// component is pre-instantiated with the one it imports; for the sync
/// entry points (`call_blocking`, `run`) and for the async `call`, which runs
/// the plugin on the awaiting task.
struct Linkers {
    /// By flavour (sync, on the task), then by shape (upstream, Spin's).
    by: [[Linker<HostState>; 2]; 2],
}

/// Which of wasmtime's APIs a linker's imports are for.
#[derive(Clone, Copy)]
enum Flavour {
    /// `call_blocking` and `run`: imports that block their thread.
    Sync = 0,
    /// The async `call`, on the awaiting task.
    OnTask = 1,
}

impl Linkers {
    fn new(engine: &Engine) -> wasmtime::Result<Self> {
        fn storage(s: &mut HostState) -> &mut crate::StorageCtx {
            &mut s.storage
        }
        let one = |flavour, shape| -> wasmtime::Result<Linker<HostState>> {
            let mut linker = Linker::new(engine);
            match flavour {
                Flavour::Sync => {
                    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
                    crate::add_to_linker_for(&mut linker, storage, shape)?;
                }
                Flavour::OnTask => {
                    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
                    crate::add_to_linker_async_for(&mut linker, storage, shape)?;
                }
            }
            Ok(linker)
        };
        let both = |flavour| -> wasmtime::Result<[Linker<HostState>; 2]> {
            Ok([
                one(flavour, GetManyShape::Upstream)?,
                one(flavour, GetManyShape::Spin)?,
            ])
        };
        Ok(Self {
            by: [both(Flavour::Sync)?, both(Flavour::OnTask)?],
        })
    }

    fn of(&self, flavour: Flavour, shape: GetManyShape) -> &Linker<HostState> {
        let shape = match shape {
            GetManyShape::Upstream => 0,
            GetManyShape::Spin => 1,
        };
        &self.by[flavour as usize][shape]
    }
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
    /// The default number of instances that may exist at once.
    pub const DEFAULT_MAX_INSTANCES: u32 = 100;

    /// A builder with the default limits.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            max_memory_bytes: Self::DEFAULT_MAX_MEMORY_BYTES,
            timeout: Self::DEFAULT_TIMEOUT,
            max_instances: Self::DEFAULT_MAX_INSTANCES,
            pooling: true,
            stdout: Output::Discard,
            stderr: Output::Discard,
            inherit_stdin: false,
            cache_dir: None,
            engine: None,
            env: Vec::new(),
            buckets: None,
        }
    }

    /// The wasmtime configuration Cubby's runtime needs (the component
    /// model, epoch interruption for the time limit), to extend when you
    /// create an engine for [`RuntimeBuilder::engine`].
    pub fn engine_config() -> wasmtime::Config {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config
    }

    /// The wasmtime engine plugins are compiled for and run on.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The pool's slots, if the runtime pools instances.
    pub(crate) fn slots(&self) -> Option<&Arc<Semaphore>> {
        self.inner.slots.as_ref()
    }

    /// The pool's gauges, if the runtime pools instances.
    pub(crate) fn pool_metrics(&self) -> Option<&PoolMetrics> {
        self.inner.pool_metrics.as_ref()
    }

    /// The limits and stdio policy every call runs under.
    pub(crate) fn config(&self) -> &RuntimeBuilder {
        &self.inner.config
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
    /// used in messages and is the `plugin` label of its metrics
    /// ([`telemetry`](crate::telemetry); [`load_file`](Self::load_file)
    /// names a plugin by its path).
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
            .map_err(|e| LoadError::Host(Box::new(e)))?
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
                source: e.into(),
            })?;
        let shape = GetManyShape::of(&self.inner.engine, &component).map_err(|source| {
            LoadError::UnservedShape {
                name: name.clone(),
                source,
            }
        })?;
        let pre_with = |linker: &Linker<HostState>| {
            linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::UnsatisfiedImport {
                    name: name.clone(),
                    import: quoted_name(&e).unwrap_or_else(|| "an interface".into()),
                    source: e.into(),
                })
        };
        let pre: InstancePre<HostState> = pre_with(self.inner.linkers.of(Flavour::Sync, shape))?;
        let command = CommandPre::new(pre.clone()).ok();
        // Without the handler, the bindings' error names its interface.
        let handler = PluginPre::new(pre).map_err(|e| {
            let handler = quoted_name(&e).unwrap_or_else(|| "cubby:storage/handler".into());
            (handler, e)
        });
        let handler = match (handler, &command) {
            (Ok(handler), _) => Ok(handler),
            (Err((handler, _)), Some(_)) => Err(handler),
            (Err((handler, e)), None) => {
                return Err(LoadError::MissingExport {
                    name,
                    handler,
                    source: e.into(),
                });
            }
        };
        let handler = match handler {
            Ok(sync) => {
                // The same imports in their async flavour, for the async
                // `call` (the linkers differ only in flavour).
                let pre = pre_with(self.inner.linkers.of(Flavour::OnTask, shape))?;
                let on_task =
                    crate::bindings::PluginPre::new(pre).map_err(|e| LoadError::MissingExport {
                        name: name.clone(),
                        handler: "cubby:storage/handler".into(),
                        source: e.into(),
                    })?;
                Ok(Handler { sync, on_task })
            }
            Err(handler) => Err(handler),
        };
        Ok(Plugin::new(self.clone(), name, handler, command))
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// The threads of this process with the ticker's name, once there is
    /// one and a moment has passed for any other to start (a new thread
    /// names itself when it starts running).
    #[cfg(target_os = "linux")]
    fn ticker_threads() -> usize {
        for _ in 0..10_000 {
            if named_threads("cubby-epoch") > 0 {
                std::thread::sleep(Duration::from_millis(100));
                return named_threads("cubby-epoch");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        0
    }

    #[cfg(target_os = "linux")]
    fn named_threads(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .filter_map(Result::ok)
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|comm| comm.trim() == name)
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Two runtimes on one engine advance its epoch once per tick, not
    /// twice (which would halve their timeouts): one ticker thread, one
    /// registration of the engine. No other test of this binary builds a
    /// runtime, so the thread count is this test's own.
    #[test]
    fn two_runtimes_on_one_engine_tick_it_once() {
        let engine = Engine::new(&Runtime::engine_config()).expect("engine");
        let first = Runtime::builder().engine(engine.clone()).build();
        let second = Runtime::builder().engine(engine.clone()).build();
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(epoch::registrations(&engine), 1);
        #[cfg(target_os = "linux")]
        assert_eq!(ticker_threads(), 1);
        // A runtime with an engine of its own is ticked too, by the same
        // thread.
        let own = Runtime::builder().build().expect("runtime");
        assert_eq!(epoch::registrations(own.engine()), 1);
        #[cfg(target_os = "linux")]
        assert_eq!(ticker_threads(), 1);
    }
}
