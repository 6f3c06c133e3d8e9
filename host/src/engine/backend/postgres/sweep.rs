//! Removing expired entries. Due workspaces are found through the index on
//! `expires_at`, oldest deadline first; each is then swept in a transaction
//! that holds its workspace's lock, so sweepers in several processes (and
//! writers) never remove the same entry twice or miscount its usage.

use deadpool_postgres::Object;
use futures_util::future::join;

use super::read::{blob_at, col, text};
use super::retry::{BoxFuture, Failure};
use super::txn::{LOCK, Writes, begin, finish, rollback};
use super::{from_db, to_db};
use crate::engine::blob::BlobRef;

/// Up to `$3` entries of workspace `$1` expired at `$2`, oldest first, with
/// what they account for.
const EXPIRED: &str = "
    SELECT namespace, key, (length(key) + coalesce(stored, length(value)))::BIGINT, blob
    FROM cubby_entries
    WHERE workspace = $1 AND expires_at <= $2
    ORDER BY expires_at LIMIT $3";

/// The workspaces holding the (up to) `$2` oldest entries expired at `$1`.
const DUE: &str = "
    SELECT DISTINCT workspace FROM (
        SELECT workspace FROM cubby_entries WHERE expires_at <= $1
        ORDER BY expires_at LIMIT $2) AS due
    ORDER BY workspace";

/// An expired entry: namespace, key, the bytes it accounts for, and a
/// streamed value's blob.
pub(super) type Expired = (String, String, u64, Option<BlobRef>);

fn decode(rows: &[deadpool_postgres::tokio_postgres::Row]) -> Result<Vec<Expired>, Failure> {
    rows.iter()
        .map(|r| {
            Ok((
                text(col(r, 0)?)?,
                text(col(r, 1)?)?,
                from_db(col(r, 2)?),
                blob_at(r, 3)?,
            ))
        })
        .collect()
}

/// Up to `limit` entries of a workspace expired at `now_ms`, read inside
/// the caller's transaction.
pub(super) async fn expired_rows(
    c: &Object,
    ws: &[u8],
    now_ms: u64,
    limit: i64,
) -> Result<Vec<Expired>, Failure> {
    let stmt = c.prepare_cached(EXPIRED).await?;
    decode(&c.query(&stmt, &[&ws, &to_db(now_ms), &limit]).await?)
}

pub(super) fn due_workspaces<'a>(
    c: &'a mut Object,
    (budget, now_ms): &'a (usize, u64),
) -> BoxFuture<'a, Result<Vec<String>, Failure>> {
    Box::pin(async move {
        let stmt = c.prepare_cached(DUE).await?;
        let rows = c
            .query(&stmt, &[&to_db(*now_ms), &(*budget as i64)])
            .await?;
        rows.iter().map(|r| text(col(r, 0)?)).collect()
    })
}

/// One workspace's part of a sweep pass.
pub(super) struct SweepStep {
    pub ws: String,
    pub budget: usize,
    pub now_ms: u64,
}

/// Sweeps one workspace; returns how many entries it removed.
pub(super) fn sweep_workspace<'a>(
    c: &'a mut Object,
    a: &'a SweepStep,
) -> BoxFuture<'a, Result<u64, Failure>> {
    Box::pin(async move {
        let ws = a.ws.as_bytes();
        let (lock, expired) = join(c.prepare_cached(LOCK), c.prepare_cached(EXPIRED)).await;
        let (lock, expired) = (lock?, expired?);
        let (locked, due) = begin(
            c,
            c.query_opt(&lock, &[&ws]),
            c.query(&expired, &[&ws, &to_db(a.now_ms), &(a.budget as i64)]),
        )
        .await?;
        let due = decode(&due)?;
        if locked.is_none() || due.is_empty() {
            rollback(c).await;
            return Ok(0);
        }
        let mut writes = Writes::at(a.now_ms);
        for (ns, key, bytes, blob) in &due {
            writes.delete.push((ns, key));
            writes.usage.remove(ns, *bytes);
            writes.retired.extend(blob);
        }
        finish(c, ws, &writes).await?;
        Ok(due.len() as u64)
    })
}
