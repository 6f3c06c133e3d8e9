//! One call's store: its WASI context (no ambient authority), its storage
//! context, and its memory limiter.

use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;

use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::epoch::EPOCH_TICK;
use super::{Output, Runtime};
use crate::context::StorageCtx;
use crate::engine::Workspace;

/// Most bytes of stdout or stderr kept per call in [`Output::Capture`] mode.
const CAPTURE_LIMIT: usize = 1024 * 1024;
/// Most elements a plugin's table may grow to (a Rust plugin's function
/// table holds a few hundred); growing past it fails as the spec says.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The data of one store: WASI state, the storage context and the limiter.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) storage: StorageCtx,
    pub(crate) limiter: MemoryLimiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// What a call's stdout and stderr were captured into, if anything.
pub(crate) struct Captured {
    pub stdout: Option<MemoryOutputPipe>,
    pub stderr: Option<MemoryOutputPipe>,
}

impl Captured {
    /// The captured bytes of a stream (empty if it was not captured).
    pub fn take(pipe: Option<MemoryOutputPipe>) -> Vec<u8> {
        pipe.map(|p| p.contents().to_vec()).unwrap_or_default()
    }
}

/// A fresh store for one call, bound to `workspace`: WASI with no
/// preopens or network and only the runtime's environment variables, and stdio as the runtime says; the
/// memory limit; the time limit as an epoch deadline.
pub(crate) fn new_store(
    runtime: &Runtime,
    workspace: &Workspace,
    args: &[String],
) -> (Store<HostState>, Captured) {
    let config = runtime.config();
    let mut wasi = WasiCtxBuilder::new();
    wasi.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .args(args)
        .envs(&config.env);
    if config.inherit_stdin {
        wasi.inherit_stdin();
    }
    let capture = |mode| (mode == Output::Capture).then(|| MemoryOutputPipe::new(CAPTURE_LIMIT));
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
        storage: StorageCtx::new(workspace.clone()).with_bucket_policy(config.buckets.clone()),
        limiter: MemoryLimiter {
            max_bytes: config.max_memory_bytes,
            refused: None,
        },
    };
    let mut store = Store::new(runtime.engine(), state);
    store.limiter(|s| &mut s.limiter);
    let ticks = config.timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).max(1));
    store.epoch_deadline_trap();
    (store, captured)
}

/// Makes a store used through wasmtime's async API yield to the executor at
/// every epoch tick while its plugin runs, and stop it with a timeout trap
/// once `timeout` has passed since now (instead of the trap at the deadline
/// that [`new_store`] sets for sync use).
pub(crate) fn yield_every_tick(store: &mut Store<HostState>, timeout: Duration) {
    let deadline = Instant::now().checked_add(timeout);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(match deadline {
            Some(at) if Instant::now() >= at => UpdateDeadline::Interrupt,
            _ => UpdateDeadline::Yield(1),
        })
    });
}

/// Refuses memory growth past the limit (`memory.grow` returns -1, as the
/// spec says) and remembers it, so the trap that usually follows is reported
/// as [`CallError::MemoryLimit`](crate::CallError::MemoryLimit).
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    pub(crate) refused: Option<usize>,
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
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
