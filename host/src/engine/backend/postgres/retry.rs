//! One request against the pool, retried as the backend promises:
//! serialization failures and deadlocks (SQLSTATE 40001, 40P01) with a
//! bound, a lost connection on a fresh one unless the commit had been sent.
//! What each failure becomes for the caller is decided here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::tokio_postgres;
use deadpool_postgres::{Object, Pool, PoolError};

use crate::engine::error::cause_chain;
use crate::engine::{BoxError, StorageError};
use crate::telemetry::{self, Timer};

/// Attempts of a request that keeps hitting serialization failures or
/// deadlocks before the call fails.
const MAX_CONFLICT_ATTEMPTS: u32 = 30;
/// Attempts of a request whose connection keeps being lost before its
/// commit.
const MAX_CONNECTION_ATTEMPTS: u32 = 3;

/// One request against one connection: a boxed future borrowing both.
pub(super) type Op<A, T> = for<'a> fn(&'a mut Object, &'a A) -> BoxFuture<'a, Result<T, Failure>>;
pub(super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
    /// The server's disk is full (SQLSTATE 53100): nothing was written.
    Full,
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
        "53100" => Class::Full,
        // Connection exceptions, the server shutting down or starting, too
        // many connections.
        code if code.starts_with("08") || code.starts_with("57P") || code == "53300" => Class::Lost,
        _ => Class::Other,
    }
}

/// Runs `op` on a pooled connection until it succeeds, is refused, or fails
/// in a way that retrying cannot mend.
pub(super) async fn retrying<A, T>(pool: &Pool, args: &A, op: Op<A, T>) -> Result<T, StorageError> {
    let (mut conflicts, mut losses) = (0, 0);
    loop {
        let mut client = Connection::get(pool).await?;
        let outcome = op(client.object()?, args).await;
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
                telemetry::postgres_retry("serialization-failure");
                tracing::debug!(error = %cause_chain(&e), conflicts, "retrying a transaction");
                tokio::time::sleep(backoff(conflicts)).await;
            }
            Class::Conflict => {
                client.release(());
                telemetry::postgres_unavailable("serialization-failures");
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
                    telemetry::postgres_unavailable("connection-lost");
                    return Err(StorageError::Unavailable(Arc::new(e)));
                }
                losses += 1;
                telemetry::postgres_retry("connection-lost");
            }
            Class::Slow => {
                client.release(());
                telemetry::postgres_unavailable("statement-timeout");
                return Err(StorageError::Unavailable(Arc::new(e)));
            }
            Class::Full => {
                client.release(());
                tracing::error!(error = %cause_chain(&e), "the database server's disk is full");
                return Err(StorageError::DiskFull(Arc::new(e)));
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
pub(super) struct Connection(Option<Object>);

impl Connection {
    /// A connection from the pool; waiting too long for one, or failing to
    /// connect, is [`StorageError::Unavailable`].
    pub async fn get(pool: &Pool) -> Result<Self, StorageError> {
        let timer = Timer::start();
        let object = pool.get().await;
        telemetry::postgres_pool_wait(timer);
        let object = object.map_err(|e| {
            telemetry::postgres_unavailable("pool");
            StorageError::Unavailable(Arc::from(pool_error_source(e)))
        })?;
        Ok(Self(Some(object)))
    }

    /// The connection, until it is released.
    pub fn object(&mut self) -> Result<&mut Object, StorageError> {
        self.0
            .as_mut()
            .ok_or_else(|| StorageError::internal("a released connection was used"))
    }

    /// Returns the connection to the pool; passes `value` through.
    pub fn release<T>(mut self, value: T) -> T {
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

/// A failed statement outside the retry loop (an export's): the server's
/// refusal is a backend failure, anything else a lost database.
pub(super) fn statement_error(e: tokio_postgres::Error) -> StorageError {
    if e.as_db_error().is_some() {
        StorageError::Backend(Arc::new(e))
    } else {
        StorageError::Unavailable(Arc::new(e))
    }
}

/// A failure outside the retry loop, as the storage reports it.
pub(super) fn failure_error(f: Failure) -> StorageError {
    match f {
        Failure::Refused(e) => e,
        Failure::Sql(e) | Failure::Commit(e) => statement_error(e),
    }
}

pub(super) fn unavailable(message: String) -> StorageError {
    StorageError::Unavailable(Arc::new(std::io::Error::other(message)))
}

pub(super) fn pool_error_source(e: PoolError) -> BoxError {
    match e {
        PoolError::Backend(e) => Box::new(e),
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            "timed out waiting for a free connection (every pooled connection was busy)".into()
        }
        PoolError::Timeout(_) => "timed out connecting to the server".into(),
        other => other.to_string().into(),
    }
}
