//! [`Storage`]: the handle on one database, whichever backend holds it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::backend::postgres::PostgresBackend;
use super::backend::redb::RedbBackend;
use super::backend::{Backend, QuotaRule};
use super::sweeper::{SWEEP_BUDGET, Sweeper};
use super::transfer::STAGING_PREFIX;
use super::{
    Clock, CommitStats, Limits, OpenError, Quota, QuotaSource, StorageError, StorageOptions, Usage,
    Workspace, rules,
};

/// The database shared by every workspace: an embedded redb file
/// ([`Storage::open`]), memory ([`Storage::in_memory`]), or a
/// PostgreSQL-protocol database that several host processes share
/// ([`Storage::connect`]). Every operation means the same on each.
///
/// Cheap to clone: clones share one open database (one redb writer, or one
/// connection pool) and one background sweeper.
///
/// ```
/// use cubby_host::{Storage, StorageOptions};
/// # fn main() -> anyhow::Result<()> {
/// let storage = Storage::in_memory(StorageOptions::default())?;
/// let ws = storage.workspace("team-a")?;
/// ws.set("greeting", b"hello")?;
/// assert_eq!(ws.get("greeting")?.as_deref(), Some(&b"hello"[..]));
/// assert_eq!(storage.workspace("team-b")?.get("greeting")?, None);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    limits: Limits,
    /// Quotas this process enforces instead of the stored or default ones.
    overrides: RwLock<HashMap<String, Quota>>,
    clock: Arc<dyn Clock>,
    /// When imports last looked for abandoned staging areas (by `clock`;
    /// 0: never).
    staging_checked_ms: AtomicU64,
    /// Stopped (and joined) when the last clone goes, before the backend.
    _sweeper: Option<Sweeper>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens the redb database file at `path`, creating it (and its parent
    /// folders) if it does not exist. One process at a time can open a file;
    /// to share data between processes, [`connect`](Self::connect) to
    /// PostgreSQL instead.
    ///
    /// Errors: the file is locked by another process ([`OpenError::Locked`]),
    /// is not a redb database or is corrupt, is another application's redb
    /// database, or has an unknown schema version. A failed open changes
    /// nothing in the file.
    pub fn open(path: impl AsRef<Path>, options: StorageOptions) -> Result<Self, OpenError> {
        let backend = RedbBackend::open(path.as_ref(), &options)?;
        Self::start(Arc::new(backend), options)
    }

    /// Opens a redb database on storage of the test's making: `backend`
    /// makes it anew for each open (the first, and reopening after an I/O
    /// failure); `location` names it in messages. Settings as for
    /// [`open`](Self::open).
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn open_on<B: redb::StorageBackend>(
        location: &Path,
        options: StorageOptions,
        backend: impl Fn() -> B + Send + Sync + 'static,
    ) -> Result<Self, OpenError> {
        let backend = RedbBackend::open_on(location, &options, backend)?;
        Self::start(Arc::new(backend), options)
    }

    /// Creates an empty redb database that lives in memory and is gone when
    /// the last clone of this `Storage` is dropped.
    pub fn in_memory(options: StorageOptions) -> Result<Self, OpenError> {
        let backend = RedbBackend::in_memory(options.read_cache_bytes)?;
        Self::start(Arc::new(backend), options)
    }

    /// Connects to a PostgreSQL-protocol database, given as a URL such as
    /// `postgres://user:password@host:5432/dbname` (every libpq URL parameter
    /// that tokio-postgres knows, e.g. `?options=-c search_path=cubby` to
    /// keep Cubby's tables in their own schema). Creates Cubby's tables
    /// (`cubby_*`) on first use; any number of host processes may connect to
    /// the same database at once.
    ///
    /// Storage calls then block while they wait for the server, like redb
    /// calls block while they commit; see [`PostgresOptions`](crate::options::PostgresOptions)
    /// for the pool and timeouts.
    ///
    /// Errors: a URL that does not parse ([`OpenError::InvalidUrl`]), a
    /// server that cannot be reached or refuses the login
    /// ([`OpenError::Connect`], naming host and port, never the password),
    /// a database whose `cubby_` tables are not Cubby's
    /// ([`OpenError::NotCubby`]), or one written by a newer Cubby
    /// ([`OpenError::UnsupportedSchema`]). A refused database is left as it
    /// was.
    pub fn connect(url: &str, options: StorageOptions) -> Result<Self, OpenError> {
        let backend = PostgresBackend::connect(url, &options)?;
        Self::start(Arc::new(backend), options)
    }

    fn start(backend: Arc<dyn Backend>, options: StorageOptions) -> Result<Self, OpenError> {
        // The sweeper's passes are upkeep, not operations: it gets the
        // backend itself, and counts what it removes on its own.
        let sweeper = options
            .sweep_interval
            .map(|every| Sweeper::spawn(backend.clone(), options.clock.clone(), every))
            .transpose()
            .map_err(|source| OpenError::Backend {
                location: backend.location().to_owned(),
                source: Box::new(source),
            })?;
        #[cfg(feature = "metrics")]
        let backend: Arc<dyn Backend> =
            Arc::new(super::backend::instrumented::Instrumented::new(backend));
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                limits: options.limits,
                overrides: RwLock::new(options.quota_overrides),
                clock: options.clock,
                staging_checked_ms: AtomicU64::new(0),
                _sweeper: sweeper,
            }),
        })
    }

    /// The handle for one workspace. `id` is chosen by the host, never by a
    /// plugin: 1 to 128 characters from `A-Z a-z 0-9 - _ . :`.
    pub fn workspace(&self, id: &str) -> Result<Workspace, StorageError> {
        rules::check_workspace_id(id)?;
        Ok(Workspace::new(self.clone(), Arc::from(id)))
    }

    /// The limits this database enforces.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Where the database lives: its file path, `:memory:`, or its URL
    /// without the password.
    pub fn location(&self) -> &str {
        self.inner.backend.location()
    }

    /// The quota that workspace `id`'s writes are checked against: this
    /// process's override ([`override_quota`](Self::override_quota)), else the one
    /// stored in the database ([`store_quota`](Self::store_quota)), else
    /// the default from [`Limits`].
    pub fn quota(&self, id: &str) -> Result<Quota, StorageError> {
        self.quota_rule(id).resolve_with(|| self.stored_quota(id))
    }

    /// [`quota`](Self::quota), and where it comes from.
    ///
    /// ```
    /// use cubby_host::{Storage, StorageOptions};
    /// use cubby_host::options::{Quota, QuotaSource};
    /// # fn main() -> anyhow::Result<()> {
    /// let storage = Storage::in_memory(StorageOptions::default())?;
    /// let small = Quota { max_keys: 10, max_bytes: 1024 };
    /// assert_eq!(storage.quota_with_source("a")?.1, QuotaSource::Default);
    /// storage.store_quota("a", Some(small))?;
    /// assert_eq!(storage.quota_with_source("a")?, (small, QuotaSource::Stored));
    /// # Ok(()) }
    /// ```
    pub fn quota_with_source(&self, id: &str) -> Result<(Quota, QuotaSource), StorageError> {
        let rule = self.quota_rule(id);
        match rule.fixed {
            // An override is this process's: nothing to read.
            Some(_) => Ok(rule.resolve_from(None)),
            None => Ok(rule.resolve_from(self.stored_quota(id)?)),
        }
    }

    /// The quota of workspace `id` and where it comes from, given the quota
    /// stored for it as the caller read it (with
    /// [`stored_quotas`](Self::stored_quotas), say, for many workspaces at
    /// once); reads nothing.
    pub fn resolve_quota(&self, id: &str, stored: Option<Quota>) -> (Quota, QuotaSource) {
        self.quota_rule(id).resolve_from(stored)
    }

    /// The quota stored in the database for workspace `id`, if any.
    pub fn stored_quota(&self, id: &str) -> Result<Option<Quota>, StorageError> {
        rules::check_workspace_id(id)?;
        self.backend().stored_quota(id)
    }

    /// Stores (`Some`) or removes (`None`) workspace `id`'s quota in the
    /// database, durably, so every host process on the database enforces it
    /// from its next write on (unless that process overrides it with
    /// [`override_quota`](Self::override_quota)). Entries already stored are kept even
    /// if they exceed a lowered quota; the workspace can then only shrink
    /// until it fits.
    pub fn store_quota(&self, id: &str, quota: Option<Quota>) -> Result<(), StorageError> {
        rules::check_workspace_id(id)?;
        self.backend().store_quota(id, quota)
    }

    /// Every quota stored in the database, by workspace id in ascending
    /// order.
    pub fn stored_quotas(&self) -> Result<Vec<(String, Quota)>, StorageError> {
        self.backend().stored_quotas()
    }

    /// Overrides (`Some`) or stops overriding (`None`) the quota of
    /// workspace `id` in this process only, for every write from now on; the
    /// override wins over a quota stored in the database. Entries already
    /// stored are kept even if they exceed a lowered quota; the workspace
    /// can then only shrink until it fits.
    pub fn override_quota(&self, id: &str, quota: Option<Quota>) -> Result<(), StorageError> {
        rules::check_workspace_id(id)?;
        let mut overrides = self
            .inner
            .overrides
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match quota {
            Some(q) => overrides.insert(id.to_owned(), q),
            None => overrides.remove(id),
        };
        Ok(())
    }

    /// Every workspace that holds at least one live key, in ascending order,
    /// with its usage.
    pub fn workspaces(&self) -> Result<Vec<(String, Usage)>, StorageError> {
        let mut all = self.backend().workspaces(self.now_ms())?;
        // Imports' staging areas are nobody's workspace.
        all.retain(|(id, _)| !id.starts_with(STAGING_PREFIX));
        Ok(all)
    }

    /// Removes every expired entry now, in bounded passes (each its own
    /// transaction, so writers are served in between), then the chunks of
    /// streamed values whose time is up (abandoned writes, values replaced
    /// or removed more than 10 minutes ago). The background sweeper does the
    /// same a pass at a time; expired entries are invisible either way,
    /// pruning frees their space. Safe to run while other processes sweep
    /// the same database. Returns how many entries were removed.
    pub fn prune(&self) -> Result<u64, StorageError> {
        let mut removed = 0;
        let mut resume = None;
        loop {
            let pass = self.backend().sweep(resume, SWEEP_BUDGET, self.now_ms())?;
            removed += pass.removed;
            match pass.resume {
                Some(next) => resume = Some(next),
                None => break,
            }
        }
        while self.backend().collect_blobs(self.now_ms(), SWEEP_BUDGET)? > 0 {}
        Ok(removed)
    }

    /// What this handle's database has committed since it was opened in
    /// this process: writes acknowledged, commits, and durable commits (so
    /// fsyncs per acknowledged write can be read off).
    pub fn commit_stats(&self) -> CommitStats {
        self.inner.backend.commit_stats()
    }

    /// How workspace `id`'s writes find their quota.
    pub(crate) fn quota_rule(&self, id: &str) -> QuotaRule {
        QuotaRule {
            fixed: self
                .inner
                .overrides
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(id)
                .copied(),
            default: self.inner.limits.default_quota(),
        }
    }

    /// Whether reads are local (redb, in memory) rather than over a network
    /// (PostgreSQL); see `Backend::reads_are_local`.
    pub(crate) fn reads_are_local(&self) -> bool {
        self.inner.backend.reads_are_local()
    }

    /// The backend, for one call of it.
    pub(crate) fn backend(&self) -> &dyn Backend {
        #[cfg(any(test, feature = "testing"))]
        BACKEND_CALLS.with(|calls| calls.set(calls.get() + 1));
        &*self.inner.backend
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Whether it is time (at most once per `every_ms`, in this process) to
    /// look for abandoned staging areas; claims the turn if so.
    pub(crate) fn claim_staging_check(&self, every_ms: u64) -> bool {
        let now = self.now_ms().max(1);
        let last = self.inner.staging_checked_ms.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= every_ms)
            && self
                .inner
                .staging_checked_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// What the backend stores for workspace `id`, next to a recount of it.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn audit(&self, id: &str) -> Result<super::Audit, StorageError> {
        self.backend().audit(id, self.now_ms())
    }

    /// Sends one of the benchmark's bare statements (PostgreSQL only).
    #[cfg(any(test, feature = "testing"))]
    pub fn raw_statement(&self, statement: &super::RawStatement) -> Result<(), StorageError> {
        self.inner.backend.raw(statement)
    }
}

#[cfg(any(test, feature = "testing"))]
thread_local! {
    static BACKEND_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many calls of a backend (database reads and writes) the engine has
/// made on the current thread, for tests that check where storage calls
/// run.
#[cfg(any(test, feature = "testing"))]
pub fn backend_calls_on_this_thread() -> u64 {
    BACKEND_CALLS.with(std::cell::Cell::get)
}
