//! The shared backend: a PostgreSQL-protocol database (PostgreSQL, Citus,
//! YugabyteDB, CockroachDB) that any number of host processes use at once.
//!
//! - `schema.rs`: the tables, the schema version, the check on connect;
//! - `read.rs`: reads, one statement (one snapshot) each;
//! - `write.rs`: write requests and `clear`, one transaction each;
//! - `sweep.rs`: removing expired entries;
//! - `txn.rs`: a transaction in two round trips (pipelined statements);
//! - `transfer.rs`: stored quotas, exports, publishing imports;
//! - this file: the connection pool, running requests, and retries.
//!
//! Threads and connections: the backend owns a small tokio runtime (two
//! `cubby-postgres` threads) on which the pool's connections (at most
//! [`PostgresOptions::pool_size`](crate::PostgresOptions)) do their network
//! I/O. A storage call runs its request on its own thread, inside that
//! runtime's context, blocking until the answer arrives; it needs no tokio
//! runtime of the caller's and never occupies one of the pool's threads.
//! Calls beyond the pool size wait for a free connection.
//!
//! Writes to one workspace are serialised by the database (its row lock);
//! within one process they also queue in memory, one in flight per
//! workspace, so that writers waiting for a busy workspace never hold
//! pooled connections that reads and other workspaces need.
//!
//! Failures: serialization failures and deadlocks (SQLSTATE 40001, 40P01)
//! are retried with a bound; a request whose connection is lost is retried
//! on a fresh connection unless its commit had been sent (then its outcome
//! is unknown and the call fails with [`StorageError::Unavailable`]). While
//! the server is down calls fail with `Unavailable`; the pool reconnects by
//! itself once it is back.

#[cfg(any(test, feature = "testing"))]
mod audit;
mod read;
mod schema;
mod sweep;
mod transfer;
mod txn;
mod write;

use std::collections::HashMap;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, PoisonError, Weak};
use std::task::{Context, Poll, Wake};
use std::time::Duration;

use deadpool_postgres::tokio_postgres::{self, NoTls};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};

use super::{
    Backend, Counters, ExportSink, Exported, Page, Publish, Published, Row, SweepPass, WriteRequest,
};
use crate::engine::error::cause_chain;
use crate::engine::{
    BoxError, Cleared, CommitStats, Durability, OpenError, Outcome, Quota, StorageError,
    StorageOptions, TransferError, Usage,
};

/// Attempts of a request that keeps hitting serialization failures or
/// deadlocks before the call fails.
const MAX_CONFLICT_ATTEMPTS: u32 = 30;
/// Attempts of a request whose connection keeps being lost before its
/// commit.
const MAX_CONNECTION_ATTEMPTS: u32 = 3;

/// A connection pool on its own runtime.
pub(crate) struct PostgresBackend {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    location: String,
    /// The longest one request may take, waiting for a connection included.
    deadline: Duration,
    gates: Gates,
    counters: Counters,
    /// Whether commits wait for the server's WAL flush
    /// (`synchronous_commit = on`, not relaxed mode).
    durable: bool,
}

/// One in-process queue per workspace with writes in flight.
#[derive(Default)]
struct Gates {
    open: std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Gates {
    /// The queue for workspace `ws` (shared by every write to it now).
    fn of(&self, ws: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(gate) = open.get(ws).and_then(Weak::upgrade) {
            return gate;
        }
        // Forget idle workspaces' queues once they pile up.
        if open.len() >= 1024 {
            open.retain(|_, gate| gate.strong_count() > 0);
        }
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        open.insert(ws.to_owned(), Arc::downgrade(&gate));
        gate
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        self.pool.close();
        // Never blocks, so a `Storage` may be dropped inside async code.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PostgresBackend {
    /// Parses `url`, connects, and creates or checks Cubby's tables.
    pub fn connect(url: &str, options: &StorageOptions) -> Result<Self, OpenError> {
        let pg = &options.postgres;
        let mut config: tokio_postgres::Config =
            url.parse()
                .map_err(|e: tokio_postgres::Error| OpenError::InvalidUrl {
                    reason: cause_chain(&e),
                })?;
        let server = server_of(&config);
        let user = config
            .get_user()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let location = format!("postgres://{user}{server}");
        if config.get_application_name().is_none() {
            config.application_name("cubby");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(pg.connect_timeout);
        }
        let mut session = config.get_options().unwrap_or_default().to_owned();
        session.push_str(&format!(
            " -c statement_timeout={}",
            pg.statement_timeout.as_millis()
        ));
        if options.durability == Durability::Relaxed {
            session.push_str(" -c synchronous_commit=off");
        }
        config.options(session.trim());

        let backend_error = |source: BoxError| OpenError::Backend {
            location: location.clone(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cubby-postgres")
            .enable_all()
            .build()
            .map_err(|e| backend_error(Box::new(e)))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pg.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(pg.statement_timeout))
            .create_timeout(Some(pg.connect_timeout))
            .recycle_timeout(Some(pg.connect_timeout))
            .build()
            .map_err(|e| backend_error(Box::new(e)))?;
        let backend = Self {
            runtime: Some(runtime),
            pool,
            location: location.clone(),
            deadline: pg.statement_timeout * 2 + pg.connect_timeout,
            gates: Gates::default(),
            counters: Counters::default(),
            durable: options.durability == Durability::Durable,
        };

        let pool = backend.pool.clone();
        let checked = backend.run(async move {
            let mut client = pool.get().await?;
            Ok::<_, PoolError>(schema::check(&mut client).await)
        });
        let location = || location.clone();
        match checked {
            Some(Ok(Ok(Ok(())))) => Ok(backend),
            Some(Ok(Ok(Err(schema::Refusal::NotCubby(reason))))) => Err(OpenError::NotCubby {
                location: location(),
                reason,
            }),
            Some(Ok(Ok(Err(schema::Refusal::Newer(found))))) => Err(OpenError::UnsupportedSchema {
                location: location(),
                found,
                supported: schema::SCHEMA_VERSION as u64,
            }),
            Some(Ok(Err(e))) => Err(backend_error(Box::new(e))),
            Some(Err(e)) => Err(OpenError::Connect {
                server,
                source: pool_error_source(e),
            }),
            None => Err(OpenError::Connect {
                server,
                source: format!("no answer within {:?}", backend.deadline).into(),
            }),
        }
    }

    /// Runs `future` to completion on this thread, inside the backend's
    /// runtime (its timers, its connections); `None` if it took longer than
    /// the request deadline.
    fn run<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        let runtime = self.runtime.as_ref()?;
        let _context = runtime.enter();
        // Unconstrained: called from async code, tokio's cooperative budget
        // would otherwise run out and make its resources return `Pending`
        // for ever (they expect their task to yield, which this never does).
        let future = tokio::task::unconstrained(tokio::time::timeout(self.deadline, future));
        block_on(future).ok()
    }

    /// Runs one request, retrying as the module documentation says.
    fn request<A, T>(&self, args: &A, op: Op<A, T>) -> Result<T, StorageError> {
        self.deliver(self.run(retrying(&self.pool, args, op)))
    }

    /// Runs one write request on workspace `ws`, in its turn.
    fn write_request<A, T>(&self, ws: &str, args: &A, op: Op<A, T>) -> Result<T, StorageError> {
        let gate = self.gates.of(ws);
        self.deliver(self.run(async {
            let _turn = gate.lock().await;
            retrying(&self.pool, args, op).await
        }))
    }

    /// One statement's answer outside the retry loop (an export's).
    fn answer<T>(
        &self,
        answer: Option<Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StorageError> {
        self.deliver(answer.map(|r| r.map_err(transfer::export_error)))
    }

    fn deliver<T>(&self, answer: Option<Result<T, StorageError>>) -> Result<T, StorageError> {
        answer.unwrap_or_else(|| {
            Err(unavailable(format!(
                "no answer from the database within {:?}",
                self.deadline
            )))
        })
    }
}

/// Polls `future` on this thread until it is ready, parking in between.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// One request against one connection: a boxed future borrowing both.
type Op<A, T> = for<'a> fn(&'a mut Object, &'a A) -> BoxFuture<'a, Result<T, Failure>>;
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why one attempt of a request failed.
pub(crate) enum Failure {
    /// A statement failed before the commit was sent: nothing was written.
    Sql(tokio_postgres::Error),
    /// The commit failed. If the connection was lost, whether the write was
    /// applied is unknown.
    Commit(tokio_postgres::Error),
    /// The request was refused (a condition, a quota, a stored value): the
    /// caller's error, never retried.
    Refused(StorageError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Self::Refused(e)
    }
}

/// How a database error is handled.
enum Class {
    /// A serialization failure or deadlock: the transaction was rolled back;
    /// trying again is safe and usually succeeds.
    Conflict,
    /// The connection or the server went away.
    Lost,
    /// The statement ran past the statement timeout.
    Slow,
    /// Anything else.
    Other,
}

fn classify(e: &tokio_postgres::Error) -> Class {
    let Some(db) = e.as_db_error() else {
        // Not the server's answer: the socket, a closed connection, a
        // timeout of the client.
        return Class::Lost;
    };
    match db.code().code() {
        "40001" | "40P01" => Class::Conflict,
        "57014" => Class::Slow,
        // Connection exceptions, the server shutting down or starting, too
        // many connections.
        code if code.starts_with("08") || code.starts_with("57P") || code == "53300" => Class::Lost,
        _ => Class::Other,
    }
}

async fn retrying<A, T>(pool: &Pool, args: &A, op: Op<A, T>) -> Result<T, StorageError> {
    let (mut conflicts, mut losses) = (0, 0);
    loop {
        let mut client =
            Connection(Some(pool.get().await.map_err(|e| {
                StorageError::Unavailable(Arc::from(pool_error_source(e)))
            })?));
        let outcome = match client.0.as_mut() {
            Some(object) => op(object, args).await,
            None => Err(Failure::Refused(StorageError::Closed)),
        };
        let (e, committing) = match outcome {
            Ok(v) => return Ok(client.release(v)),
            Err(Failure::Refused(e)) => return Err(client.release(e)),
            Err(Failure::Sql(e)) => (e, false),
            Err(Failure::Commit(e)) => (e, true),
        };
        match classify(&e) {
            Class::Conflict if conflicts + 1 < MAX_CONFLICT_ATTEMPTS => {
                client.release(());
                conflicts += 1;
                tracing::debug!(error = %cause_chain(&e), conflicts, "retrying a transaction");
                tokio::time::sleep(backoff(conflicts)).await;
            }
            Class::Conflict => {
                client.release(());
                return Err(unavailable(format!(
                    "gave up after {MAX_CONFLICT_ATTEMPTS} serialization failures: {}",
                    cause_chain(&e)
                )));
            }
            Class::Lost => {
                // Dropped without release: never handed out again.
                drop(client);
                if committing || losses + 1 >= MAX_CONNECTION_ATTEMPTS {
                    tracing::warn!(error = %cause_chain(&e), committing, "lost the database");
                    return Err(StorageError::Unavailable(Arc::new(e)));
                }
                losses += 1;
            }
            Class::Slow => {
                client.release(());
                return Err(StorageError::Unavailable(Arc::new(e)));
            }
            Class::Other => {
                client.release(());
                tracing::error!(error = %cause_chain(&e), "database error");
                return Err(StorageError::Backend(Arc::new(e)));
            }
        }
    }
}

/// A pooled connection that goes back to the pool only when released: one
/// dropped in the middle of a request (its connection lost, or the request
/// abandoned at its deadline, perhaps inside a transaction) is closed
/// instead.
struct Connection(Option<Object>);

impl Connection {
    /// Returns the connection to the pool; passes `value` through.
    fn release<T>(mut self, value: T) -> T {
        drop(self.0.take());
        value
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

/// A short, growing, slightly jittered pause before retrying a conflict.
fn backoff(attempt: u32) -> Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 1000);
    Duration::from_millis(1 << attempt.min(6)) + Duration::from_micros(u64::from(jitter))
}

/// A failure outside the retry loop, as the storage reports it.
fn failure_error(f: Failure) -> StorageError {
    match f {
        Failure::Refused(e) => e,
        Failure::Sql(e) | Failure::Commit(e) => transfer::export_error(e),
    }
}

fn unavailable(message: String) -> StorageError {
    StorageError::Unavailable(Arc::new(std::io::Error::other(message)))
}

fn pool_error_source(e: PoolError) -> BoxError {
    match e {
        PoolError::Backend(e) => Box::new(e),
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            "timed out waiting for a free connection (every pooled connection was busy)".into()
        }
        PoolError::Timeout(_) => "timed out connecting to the server".into(),
        other => other.to_string().into(),
    }
}

/// Host(s), port and database of a connection config, for messages: never
/// the user's password.
fn server_of(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("{hosts}/{db}")
}

/// A time or version as PostgreSQL stores it (`BIGINT`).
fn to_db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored `BIGINT` as a time, version or count.
fn from_db(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Backend for PostgresBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn get(&self, ws: &str, ns: &str, key: &str, now_ms: u64) -> Result<Option<Row>, StorageError> {
        let keys = vec![key.to_owned()];
        let mut rows = self.request(&read::Keys::new(ws, ns, keys, now_ms), read::get_many)?;
        Ok(rows.pop().flatten())
    }

    fn get_many(
        &self,
        ws: &str,
        ns: &str,
        keys: &[&str],
        now_ms: u64,
    ) -> Result<Vec<Option<Row>>, StorageError> {
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self.request(&read::Keys::new(ws, ns, keys, now_ms), read::get_many)
    }

    fn list_keys(
        &self,
        ws: &str,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Page, StorageError> {
        let args = read::Listing {
            ws: ws.into(),
            ns: ns.into(),
            prefix: prefix.into(),
            after: after.map(Into::into),
            limit,
            now_ms,
        };
        self.request(&args, read::list_keys)
    }

    fn list_namespaces(
        &self,
        ws: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Page, StorageError> {
        let args = read::Listing {
            ws: ws.into(),
            ns: String::new(),
            prefix: String::new(),
            after: after.map(Into::into),
            limit,
            now_ms,
        };
        self.request(&args, read::list_namespaces)
    }

    fn usage(&self, ws: &str, ns: Option<&str>, now_ms: u64) -> Result<Usage, StorageError> {
        let args = read::UsageOf {
            ws: ws.into(),
            ns: ns.map(Into::into),
            now_ms,
        };
        self.request(&args, read::usage)
    }

    fn workspaces(&self, now_ms: u64) -> Result<Vec<(String, Usage)>, StorageError> {
        self.request(&now_ms, read::workspaces)
    }

    fn write(&self, request: WriteRequest) -> Result<Vec<Outcome>, StorageError> {
        if request.ops.iter().any(|op| op.condition.is_some()) {
            self.request(&request, write::precheck)?;
        }
        let result = self.write_request(&request.workspace, &request, write::write);
        match &result {
            Ok(_) => self.counters.add(1, 1, self.durable),
            Err(StorageError::Backend(_) | StorageError::Unavailable(_) | StorageError::Closed) => {
            }
            // Refused inside its transaction, which rolled back.
            Err(_) => self.counters.add(1, 0, false),
        }
        result
    }

    fn commit_stats(&self) -> CommitStats {
        self.counters.get()
    }

    fn clear(
        &self,
        ws: &str,
        ns: &str,
        budget: usize,
        now_ms: u64,
    ) -> Result<Cleared, StorageError> {
        let step = write::RemoveStep {
            ws: ws.into(),
            ns: Some(ns.into()),
            budget,
            now_ms,
        };
        self.write_request(ws, &step, write::remove)
    }

    fn remove_workspace(
        &self,
        ws: &str,
        budget: usize,
        now_ms: u64,
    ) -> Result<Cleared, StorageError> {
        let step = write::RemoveStep {
            ws: ws.into(),
            ns: None,
            budget,
            now_ms,
        };
        self.write_request(ws, &step, write::remove)
    }

    fn sweep(
        &self,
        _resume: Option<String>,
        budget: usize,
        now_ms: u64,
    ) -> Result<SweepPass, StorageError> {
        // Expired entries are found oldest first through an index, so a pass
        // needs no resume point: the next one starts where they are.
        let due = self.request(&(budget, now_ms), sweep::due_workspaces)?;
        let mut pass = SweepPass::default();
        for ws in due {
            let left = budget.saturating_sub(pass.removed as usize);
            if left == 0 {
                break;
            }
            let step = sweep::SweepStep {
                ws,
                budget: left,
                now_ms,
            };
            pass.removed += self.write_request(&step.ws, &step, sweep::sweep_workspace)?;
        }
        if pass.removed as usize >= budget {
            pass.resume = Some(String::new());
        }
        Ok(pass)
    }

    fn stored_quota(&self, ws: &str) -> Result<Option<Quota>, StorageError> {
        self.request(&ws.to_owned(), transfer::stored_quota)
    }

    fn store_quota(&self, ws: &str, quota: Option<Quota>) -> Result<(), StorageError> {
        self.request(&(ws.to_owned(), quota), transfer::store_quota)
    }

    fn stored_quotas(&self) -> Result<Vec<(String, Quota)>, StorageError> {
        self.request(&(), transfer::stored_quotas)
    }

    fn export(
        &self,
        ws: &str,
        namespaces: &[String],
        now_ms: u64,
        sink: &mut ExportSink<'_>,
    ) -> Result<(), TransferError> {
        // One connection and one snapshot for the whole export; each
        // statement gets the request deadline, the export as a whole none.
        let mut conn = Connection(Some(self.deliver(self.run(async {
            self.pool
                .get()
                .await
                .map_err(|e| StorageError::Unavailable(Arc::from(pool_error_source(e))))
        }))?));
        let c = conn.0.as_mut().ok_or(StorageError::Closed)?;
        self.answer(self.run(c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")))?;
        let ws_b = ws.as_bytes();
        let names: Vec<&[u8]> = namespaces.iter().map(|n| n.as_bytes()).collect();
        let now = to_db(now_ms);
        let totals =
            self.answer(self.run(c.query_one(transfer::EXPORT_TOTALS, &[&ws_b, &now, &names])))?;
        let totals = read::usage_at(&totals, 0).map_err(failure_error)?;
        sink(Exported::Totals(totals))?;
        let page = self.answer(self.run(c.prepare(transfer::EXPORT_PAGE_SQL)))?;
        let (mut after_ns, mut after_key) = (Vec::new(), Vec::new());
        loop {
            let rows = self.answer(self.run(c.query(
                &page,
                &[
                    &ws_b,
                    &now,
                    &names,
                    &after_ns,
                    &after_key,
                    &transfer::EXPORT_PAGE,
                ],
            )))?;
            for r in &rows {
                let (ns, key, value, expires_at_ms) =
                    transfer::exported_row(r).map_err(failure_error)?;
                sink(Exported::Entry {
                    ns: &ns,
                    key: &key,
                    value: &value,
                    expires_at_ms,
                })?;
                after_ns = ns.into_bytes();
                after_key = key.into_bytes();
            }
            if (rows.len() as i64) < transfer::EXPORT_PAGE {
                break;
            }
        }
        self.answer(self.run(c.batch_execute("COMMIT")))?;
        conn.release(());
        Ok(())
    }

    fn publish(&self, publish: &Publish) -> Result<Published, StorageError> {
        self.write_request(&publish.workspace, publish, transfer::publish)
    }

    #[cfg(any(test, feature = "testing"))]
    fn audit(&self, ws: &str, now_ms: u64) -> Result<super::Audit, StorageError> {
        self.request(&(ws.to_owned(), now_ms), audit::audit)
    }
}
