//! [`Plugin`]: a loaded component, called in a fresh store each time.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;
use wasmtime::Store;
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::sync::CommandPre;

use super::store::{Captured, HostState, new_store, yield_every_tick};
use super::{CallError, Runtime};
use crate::bindings::sync::PluginPre;
use crate::engine::Workspace;
use crate::telemetry::{CallMetrics, CallOutcome, Timer, call_span, end_call_span};

/// A loaded, pre-instantiated component. Cheap to clone; each call gets a
/// fresh instance, so no state is shared between calls except through storage.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    runtime: Runtime,
    name: String,
    /// The handler, or (when the component lacks it) its interface's name
    /// as the bindings looked it up.
    handler: Result<Handler, String>,
    command: Option<CommandPre<HostState>>,
    metrics: CallMetrics,
}

/// A handler plugin pre-instantiated twice: with the sync imports, for
/// [`Plugin::call_blocking`], and with the async ones, for [`Plugin::call`],
/// which runs it on the awaiting task.
pub(crate) struct Handler {
    pub sync: PluginPre<HostState>,
    pub on_task: crate::bindings::PluginPre<HostState>,
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
    /// Captured stdout (empty unless [`Output::Capture`](crate::options::Output::Capture)).
    pub stdout: Vec<u8>,
    /// Captured stderr (empty unless [`Output::Capture`](crate::options::Output::Capture)).
    pub stderr: Vec<u8>,
}

impl Plugin {
    pub(crate) fn new(
        runtime: Runtime,
        name: String,
        handler: Result<Handler, String>,
        command: Option<CommandPre<HostState>>,
    ) -> Self {
        Self {
            inner: Arc::new(PluginInner {
                runtime,
                metrics: CallMetrics::new(&name),
                name,
                handler,
                command,
            }),
        }
    }

    /// The name the plugin was loaded under (its path, for files).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether it exports `cubby:storage/handler` (can be [`call`](Self::call)ed).
    pub fn is_handler(&self) -> bool {
        self.inner.handler.is_ok()
    }

    /// Whether it exports `wasi:cli/run` (can be [`run`](Self::run)).
    pub fn is_command(&self) -> bool {
        self.inner.command.is_some()
    }

    /// Calls the plugin's `handle` export with `request`, in a fresh instance
    /// bound to `workspace`.
    ///
    /// With a local database (redb, in memory) the plugin runs on the
    /// awaiting task's own thread (wasmtime's async support: on a stack of
    /// its own, from the instance pool), so a short call costs no hand-off
    /// between threads. It never holds the thread for long: it yields to the
    /// executor every 10 ms of running (the epoch tick) and while a write
    /// waits for its commit (writes run on tokio's blocking pool); its reads
    /// run on the task's thread, like reading a file. Calls awaited together
    /// in one task (`join!`) take turns on its thread; spawn them as tasks
    /// to run them in parallel. With PostgreSQL, where every storage call
    /// waits for the network, the whole call runs on tokio's blocking pool
    /// instead: it pays the hand-off to that pool and back once, where on
    /// the task every storage call would pay it.
    ///
    /// Dropping the future (an embedder's own timeout, say) stops a plugin
    /// running on the task at its next yield and frees its slot; writes it
    /// had committed stay, as after a trap.
    ///
    /// Errors: a plugin that is not a handler, the plugin's own error
    /// ([`CallError::Plugin`]), a trap, the time or memory limit. None of
    /// them affects other calls or workspaces. When every slot of the
    /// runtime's instance pool is taken, the call waits for one.
    pub async fn call(&self, workspace: &Workspace, request: &[u8]) -> Result<Vec<u8>, CallError> {
        self.observed(workspace, outcome, self.call_on_task(workspace, request))
            .await
    }

    /// [`call`](Self::call), not yet counted.
    async fn call_on_task(
        &self,
        workspace: &Workspace,
        request: &[u8],
    ) -> Result<Vec<u8>, CallError> {
        let handler = self.handler()?;
        let slot = self.wait_for_slot().await?;
        if !workspace.storage().reads_are_local() {
            let (this, workspace, request) = (self.clone(), workspace.clone(), request.to_vec());
            return on_blocking_thread(move || this.call_in_slot(&workspace, &request, slot)).await;
        }
        let runtime = &self.inner.runtime;
        let (mut store, _captured) = new_store(runtime, workspace, &[]);
        yield_every_tick(&mut store, runtime.config().timeout);
        let instance = handler
            .on_task
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(runtime, &store, e))?;
        instance
            .cubby_storage_handler()
            .call_handle(&mut store, request)
            .await
            .map_err(|e| classify(runtime, &store, e))?
            .map_err(CallError::Plugin)
    }

    /// The handler, or [`CallError::NotAHandler`].
    fn handler(&self) -> Result<&Handler, CallError> {
        self.inner
            .handler
            .as_ref()
            .map_err(|handler| CallError::NotAHandler {
                name: self.inner.name.clone(),
                handler: handler.clone(),
            })
    }

    /// [`call`](Self::call) on the current thread, for embedders that are
    /// already on a thread that may block (a thread of their own, or inside
    /// `spawn_blocking`). The same isolation and limits apply.
    ///
    /// Do not call it on an async executor's worker thread: storage calls
    /// block until the database answers.
    pub fn call_blocking(
        &self,
        workspace: &Workspace,
        request: &[u8],
    ) -> Result<Vec<u8>, CallError> {
        self.observed_now(workspace, outcome, || {
            let slot = self.try_slot()?;
            self.call_in_slot(workspace, request, slot)
        })
    }

    /// Runs a call on this thread while holding `_slot`.
    fn call_in_slot(
        &self,
        workspace: &Workspace,
        request: &[u8],
        _slot: Option<Slot>,
    ) -> Result<Vec<u8>, CallError> {
        let handler = self.handler()?;
        let runtime = &self.inner.runtime;
        let (mut store, _captured) = new_store(runtime, workspace, &[]);
        let instance = handler
            .sync
            .instantiate(&mut store)
            .map_err(|e| classify(runtime, &store, e))?;
        instance
            .cubby_storage_handler()
            .call_handle(&mut store, request)
            .map_err(|e| classify(runtime, &store, e))?
            .map_err(CallError::Plugin)
    }

    /// A free slot of the runtime's instance pool, waiting for one (`None`
    /// when the runtime does not pool).
    async fn wait_for_slot(&self) -> Result<Option<Slot>, CallError> {
        match self.inner.runtime.slots() {
            None => Ok(None),
            Some(slots) => slots
                .clone()
                .acquire_owned()
                .await
                .map(|permit| Some(Slot::taken(&self.inner.runtime, permit)))
                .map_err(|e| CallError::Host(Box::new(e))),
        }
    }

    /// A free slot of the runtime's instance pool, or [`CallError::Busy`].
    fn try_slot(&self) -> Result<Option<Slot>, CallError> {
        match self.inner.runtime.slots() {
            None => Ok(None),
            Some(slots) => slots
                .clone()
                .try_acquire_owned()
                .map(|permit| Some(Slot::taken(&self.inner.runtime, permit)))
                .map_err(|e| CallError::Busy(Box::new(e))),
        }
    }

    /// Runs the plugin's `main` (`wasi:cli/run`) with `args` (`args[0]` is the
    /// program name a plugin sees), in a fresh instance bound to `workspace`,
    /// on a blocking thread.
    pub async fn run(
        &self,
        workspace: &Workspace,
        args: &[String],
    ) -> Result<RunOutput, CallError> {
        let (this, ws, args) = (self.clone(), workspace.clone(), args.to_vec());
        let run = async move {
            let slot = this.wait_for_slot().await?;
            on_blocking_thread(move || this.run_in_slot(&ws, &args, slot)).await
        };
        self.observed(workspace, run_outcome, run).await
    }

    /// [`run`](Self::run) on the current thread; see
    /// [`call_blocking`](Self::call_blocking) for when to use it.
    pub fn run_blocking(
        &self,
        workspace: &Workspace,
        args: &[String],
    ) -> Result<RunOutput, CallError> {
        self.observed_now(workspace, run_outcome, || {
            let slot = self.try_slot()?;
            self.run_in_slot(workspace, args, slot)
        })
    }

    /// Runs `call` inside the call's span, then counts it and ends the span
    /// with how it ended (`outcome`).
    async fn observed<T>(
        &self,
        workspace: &Workspace,
        outcome: fn(&Result<T, CallError>) -> CallOutcome,
        call: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let (timer, span) = (Timer::start(), call_span(&self.inner.name, workspace.id()));
        // Counted as cancelled if the caller drops the future first.
        let mut pending = Pending {
            plugin: self,
            span: &span,
            workspace,
            timer,
            ended: false,
        };
        let result = call.instrument(span.clone()).await;
        pending.ended = true;
        self.ended(&span, workspace, timer, outcome(&result));
        result
    }

    /// [`observed`](Self::observed) for a call on this thread.
    fn observed_now<T>(
        &self,
        workspace: &Workspace,
        outcome: fn(&Result<T, CallError>) -> CallOutcome,
        call: impl FnOnce() -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let (timer, span) = (Timer::start(), call_span(&self.inner.name, workspace.id()));
        let result = span.in_scope(call);
        self.ended(&span, workspace, timer, outcome(&result));
        result
    }

    fn ended(
        &self,
        span: &tracing::Span,
        workspace: &Workspace,
        timer: Timer,
        outcome: CallOutcome,
    ) {
        end_call_span(span, outcome, timer);
        self.inner.metrics.record(workspace.id(), outcome, timer);
    }

    /// Runs `main` while holding `_slot`.
    fn run_in_slot(
        &self,
        workspace: &Workspace,
        args: &[String],
        _slot: Option<Slot>,
    ) -> Result<RunOutput, CallError> {
        let pre = self
            .inner
            .command
            .as_ref()
            .ok_or_else(|| CallError::NotACommand {
                name: self.inner.name.clone(),
            })?;
        let runtime = &self.inner.runtime;
        let (mut store, captured) = new_store(runtime, workspace, args);
        let result = pre
            .instantiate(&mut store)
            .and_then(|command| command.wasi_cli_run().call_run(&mut store));
        let exit_code = match result {
            Ok(Ok(())) => 0,
            Ok(Err(())) => 1,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None => return Err(classify(runtime, &store, e)),
            },
        };
        Ok(RunOutput {
            exit_code,
            stdout: Captured::take(captured.stdout),
            stderr: Captured::take(captured.stderr),
        })
    }
}

/// An async call under way: if its future is dropped before the call
/// ends, the call is counted as cancelled.
struct Pending<'a> {
    plugin: &'a Plugin,
    span: &'a tracing::Span,
    workspace: &'a Workspace,
    timer: Timer,
    ended: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.ended {
            let outcome = CallOutcome::Cancelled;
            self.plugin
                .ended(self.span, self.workspace, self.timer, outcome);
        }
    }
}

/// A slot of the runtime's instance pool, held by one call and counted in
/// the pool's gauge while it is.
struct Slot {
    _permit: OwnedSemaphorePermit,
    runtime: Runtime,
}

impl Slot {
    fn taken(runtime: &Runtime, permit: OwnedSemaphorePermit) -> Self {
        if let Some(metrics) = runtime.pool_metrics() {
            metrics.taken();
        }
        Self {
            _permit: permit,
            runtime: runtime.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(metrics) = self.runtime.pool_metrics() {
            metrics.released();
        }
    }
}

/// Runs a call on tokio's blocking pool, inside the current span; a task
/// that could not run is the host's failure, not the plugin's.
async fn on_blocking_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CallError> + Send + 'static,
) -> Result<T, CallError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| CallError::Host(Box::new(e)))?
}

/// How a call ended, as its metrics and span say.
fn outcome<T>(result: &Result<T, CallError>) -> CallOutcome {
    match result {
        Ok(_) => CallOutcome::Ok,
        Err(CallError::Plugin(_)) => CallOutcome::PluginError,
        Err(CallError::Trap(_)) => CallOutcome::Trap,
        Err(CallError::Timeout { .. }) => CallOutcome::Timeout,
        Err(CallError::MemoryLimit { .. }) => CallOutcome::MemoryLimit,
        Err(CallError::Busy(_)) => CallOutcome::Busy,
        Err(CallError::NotAHandler { .. } | CallError::NotACommand { .. }) => {
            CallOutcome::WrongExport
        }
        Err(CallError::Host(_)) => CallOutcome::HostError,
    }
}

/// How a command-style plugin's run ended: an exit code other than 0 is the
/// plugin's own failure.
fn run_outcome(result: &Result<RunOutput, CallError>) -> CallOutcome {
    match result {
        Ok(output) if output.exit_code != 0 => CallOutcome::PluginError,
        other => outcome(other),
    }
}

/// Turns a wasmtime error from instantiating or calling into a [`CallError`].
fn classify(runtime: &Runtime, store: &Store<HostState>, e: wasmtime::Error) -> CallError {
    let config = runtime.config();
    if let Some(requested) = store.data().limiter.refused {
        return CallError::MemoryLimit {
            limit: config.max_memory_bytes,
            requested,
        };
    }
    if e.is::<wasmtime::PoolConcurrencyLimitError>() {
        return CallError::Busy(e.into());
    }
    // The full error carries the guest's wasm backtrace over many lines:
    // useful to a plugin author, so it is logged; the caller gets the trap.
    tracing::debug!(plugin_error = ?e, "plugin call failed");
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => CallError::Timeout {
            limit: config.timeout,
        },
        Some(trap) => CallError::Trap(Box::new(*trap)),
        None => CallError::Trap(e.root_cause().to_string().into()),
    }
}
