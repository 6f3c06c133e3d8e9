//! The shared backend: a PostgreSQL-protocol database (PostgreSQL, Citus,
//! YugabyteDB, CockroachDB) that any number of host processes use at once.
//!
//! - `config.rs`: the URL and session settings;
//! - `tls.rs`: TLS, with libpq's `sslmode` and `sslrootcert`;
//! - `run.rs`: the backend's runtime, and waiting for a request;
//! - `retry.rs`: retries, and what each failure becomes;
//! - `gates.rs`: the per-workspace write queues;
//! - `schema.rs`: the tables, the schema version, the check on connect;
//! - `read.rs`: reads, one statement (one snapshot) each;
//! - `write.rs`: write requests and `clear`, one transaction each;
//! - `txn.rs`: a transaction in two round trips (pipelined statements);
//! - `sweep.rs`: removing expired entries;
//! - `quota.rs`: stored quotas;
//! - `transfer.rs`: exports, publishing imports;
//! - this file: connecting, and the [`Backend`] each request goes through.
//!
//! Threads and connections: the backend owns a small tokio runtime (two
//! `cubby-postgres` threads) on which the pool's connections (at most
//! [`PostgresOptions::pool_size`](crate::options::PostgresOptions)) do their network
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
mod blobs;
mod config;
mod gates;
mod quota;
mod read;
mod retry;
mod run;
mod schema;
mod sweep;
mod tls;
mod transfer;
mod txn;
mod write;

#[cfg(test)]
pub(crate) use schema::SCHEMA_VERSION;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use super::{
    Backend, ChunkPut, Counters, ExportSink, Page, Publish, Published, Row, SweepPass, WriteRequest,
};
use crate::engine::{
    BoxError, Cleared, CommitStats, Durability, OpenError, Outcome, Quota, StorageError,
    StorageOptions, TransferError, Usage,
};
use gates::Gates;
use retry::{Op, retrying, unavailable};
use run::Runner;

/// A connection pool on its own runtime.
pub(crate) struct PostgresBackend {
    runner: Runner,
    pool: Pool,
    location: String,
    gates: Gates,
    counters: Counters,
    /// Whether commits wait for the server's WAL flush
    /// (`synchronous_commit = on`, not relaxed mode).
    durable: bool,
    /// Whether the database is a Citus coordinator (see `schema.rs`).
    citus: bool,
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        self.pool.close();
    }
}

impl PostgresBackend {
    /// Parses `url`, connects, and creates or checks Cubby's tables.
    pub fn connect(url: &str, options: &StorageOptions) -> Result<Self, OpenError> {
        let pg = &options.postgres;
        let target = config::parse(url, options)?;
        let location = target.location;
        let backend_error = |source: BoxError| OpenError::Backend {
            location: location.clone(),
            source,
        };
        let runner = Runner::new(pg.statement_timeout * 2 + pg.connect_timeout)
            .map_err(|e| backend_error(Box::new(e)))?;
        let manager = Manager::from_config(
            target.config,
            target.tls,
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
            runner,
            pool,
            location: location.clone(),
            gates: Gates::default(),
            counters: Counters::new("postgres"),
            durable: options.durability == Durability::Durable,
            citus: false,
        };

        let pool = backend.pool.clone();
        let checked = backend.runner.run(async move {
            let mut client = pool.get().await?;
            Ok::<_, deadpool_postgres::PoolError>(schema::check(&mut client).await)
        });
        let location = || location.clone();
        match checked {
            Some(Ok(Ok(Ok(layout)))) => {
                let mut backend = backend;
                backend.citus = layout.citus;
                Ok(backend)
            }
            Some(Ok(Ok(Err(schema::Refusal::NotDistributed { wrong, fix })))) => {
                Err(OpenError::NotDistributed {
                    location: location(),
                    tables: wrong,
                    fix,
                })
            }
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
                server: target.server,
                source: retry::pool_error_source(e),
            }),
            None => Err(OpenError::Connect {
                server: target.server,
                source: format!("no answer within {:?}", backend.runner.deadline).into(),
            }),
        }
    }

    /// Runs one request, retrying as `retry.rs` says.
    fn request<A, T>(&self, args: &A, op: Op<A, T>) -> Result<T, StorageError> {
        self.deliver(self.runner.run(retrying(&self.pool, args, op)))
    }

    /// Runs one write request on workspace `ws`, in its turn.
    fn write_request<A, T>(&self, ws: &str, args: &A, op: Op<A, T>) -> Result<T, StorageError> {
        let gate = self.gates.of(ws);
        self.deliver(self.runner.run(async {
            let _turn = gate.lock().await;
            retrying(&self.pool, args, op).await
        }))
    }

    /// A request's answer, or `Unavailable` if it had none by the deadline.
    fn deliver<T>(&self, answer: Option<Result<T, StorageError>>) -> Result<T, StorageError> {
        answer.unwrap_or_else(|| {
            Err(unavailable(format!(
                "no answer from the database within {:?}",
                self.runner.deadline
            )))
        })
    }
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
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn reads_are_local(&self) -> bool {
        false
    }

    fn get(&self, ws: &str, ns: &str, key: &str, now_ms: u64) -> Result<Option<Row>, StorageError> {
        let keys = vec![key.to_owned()];
        self.request(&read::Keys::new(ws, ns, keys, now_ms), read::get_one)
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
        let conditional = request.ops.iter().any(|op| op.condition.is_some())
            || request.blob.as_ref().is_some_and(|b| b.condition.is_some());
        if conditional {
            self.request(&request, write::precheck)?;
        }
        let result = self.write_request(&request.workspace, &request, write::write);
        match &result {
            Ok(_) => self.counters.add(1, 1, self.durable),
            Err(e) if e.is_host_failure() => {}
            // Refused inside its transaction, which rolled back.
            Err(_) => self.counters.add(1, 0, false),
        }
        result
    }

    fn commit_stats(&self) -> CommitStats {
        self.counters.get()
    }

    fn open_blob(&self, ws: &str, idle_until_ms: u64, max_open: u32) -> Result<u64, StorageError> {
        let args = blobs::OpenBlob {
            ws: ws.into(),
            idle_until_ms,
            max_open,
        };
        self.write_request(ws, &args, blobs::open_blob)
    }

    fn put_chunk(&self, chunk: ChunkPut) -> Result<(), StorageError> {
        let ws = chunk.workspace.clone();
        self.write_request(&ws, &chunk, blobs::put_chunk)
    }

    fn drop_blob(&self, ws: &str, blob: u64) -> Result<(), StorageError> {
        let args = blobs::BlobOf {
            ws: ws.into(),
            blob,
        };
        self.write_request(ws, &args, blobs::drop_blob)
    }

    fn read_chunk(&self, ws: &str, blob: u64, index: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let args = blobs::ChunkOf {
            ws: ws.into(),
            blob,
            index,
        };
        self.request(&args, blobs::read_chunk)
    }

    fn collect_blobs(&self, now_ms: u64, budget: usize) -> Result<u64, StorageError> {
        self.request(&(now_ms, budget), blobs::collect)
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
        self.request(&ws.to_owned(), quota::stored_quota)
    }

    fn store_quota(&self, ws: &str, quota: Option<Quota>) -> Result<(), StorageError> {
        self.request(&(ws.to_owned(), quota), quota::store_quota)
    }

    fn stored_quotas(&self) -> Result<Vec<(String, Quota)>, StorageError> {
        self.request(&(), quota::stored_quotas)
    }

    fn export(
        &self,
        ws: &str,
        namespaces: &[String],
        now_ms: u64,
        sink: &mut ExportSink<'_>,
    ) -> Result<(), TransferError> {
        transfer::export(self, ws, namespaces, now_ms, sink)
    }

    fn staging_id(&self, base: String, workspace: &str) -> Result<String, StorageError> {
        if !self.citus {
            return Ok(base);
        }
        let found = self.request(&(base, workspace.to_owned()), transfer::colocated_id)?;
        found.ok_or_else(|| {
            StorageError::internal("no staging id falls in the shard of the workspace imported to")
        })
    }

    fn publish(&self, publish: &Publish) -> Result<Published, StorageError> {
        self.write_request(&publish.workspace, publish, transfer::publish)
    }

    #[cfg(any(test, feature = "testing"))]
    fn audit(&self, ws: &str, now_ms: u64) -> Result<super::Audit, StorageError> {
        self.request(&(ws.to_owned(), now_ms), audit::audit)
    }

    #[cfg(any(test, feature = "testing"))]
    fn raw(&self, statement: &super::RawStatement) -> Result<(), StorageError> {
        self.request(statement, audit::raw)
    }
}
