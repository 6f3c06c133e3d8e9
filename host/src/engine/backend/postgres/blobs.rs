//! The chunks of streamed values: writes in progress, their chunks, and
//! collecting the blobs no entry holds. Every transaction here touches one
//! workspace and takes its row's lock first, like every write, so chunks
//! are counted against the quota in the same order as the writes that
//! compete for it.

use deadpool_postgres::Object;

use super::quota::quota_at;
use super::read::col;
use super::retry::{BoxFuture, Failure};
use super::txn::{CreateOrLock, in_transaction};
use super::{from_db, to_db};
use crate::engine::backend::ChunkPut;
use crate::engine::blob::{Loose, abandoned, too_many_writers};
use crate::engine::{StorageError, Usage};

/// Locks a workspace's row; answers the stored usage, next version and
/// stored quota.
const LOCK_WITH_QUOTA: &str = "
    SELECT w.keys, w.bytes, w.next_version, q.max_keys, q.max_bytes
    FROM cubby_workspaces w LEFT JOIN cubby_quotas q ON q.workspace = w.workspace
    WHERE w.workspace = $1 FOR UPDATE OF w";

/// A workspace's loose blobs: how many writes are in progress, and the
/// bytes of every loose blob (writes in progress, and replaced values kept
/// for their readers), which count against the quota of stream writes.
const OPEN: &str = "
    SELECT count(*) FILTER (WHERE kind = 0), coalesce(sum(bytes), 0)::BIGINT
    FROM cubby_loose_blobs WHERE workspace = $1";

/// Starting a write in progress.
pub(super) struct OpenBlob {
    pub ws: String,
    pub idle_until_ms: u64,
    pub max_open: u32,
}

pub(super) fn open_blob<'a>(
    c: &'a mut Object,
    a: &'a OpenBlob,
) -> BoxFuture<'a, Result<u64, Failure>> {
    Box::pin(async move {
        let ws = a.ws.as_bytes();
        let c = &*c;
        in_transaction(c, async {
            let locked = CreateOrLock::prepare(c).await?.run(c, ws).await?;
            let id: i64 = col(&locked, 2)?;
            let open = c.query_one(OPEN, &[&ws]).await?;
            if from_db(col(&open, 0)?) >= u64::from(a.max_open) {
                return Err(Failure::Refused(too_many_writers(a.max_open)));
            }
            c.execute(
                "UPDATE cubby_workspaces SET next_version = $2 WHERE workspace = $1",
                &[&ws, &(id + 1)],
            )
            .await?;
            c.execute(
                "INSERT INTO cubby_loose_blobs (workspace, blob, kind, until_ms, bytes)
                 VALUES ($1, $2, $3, $4, 0)",
                &[
                    &ws,
                    &id,
                    &i16::from(Loose::Open.code()),
                    &to_db(a.idle_until_ms),
                ],
            )
            .await?;
            Ok(from_db(id))
        })
        .await
    })
}

pub(super) fn put_chunk<'a>(
    c: &'a mut Object,
    a: &'a ChunkPut,
) -> BoxFuture<'a, Result<(), Failure>> {
    Box::pin(async move {
        let ws = a.workspace.as_bytes();
        let blob = to_db(a.blob);
        let c = &*c;
        in_transaction(c, async {
            // The publish that follows makes this durable.
            c.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
            let Some(locked) = c.query_opt(LOCK_WITH_QUOTA, &[&ws]).await? else {
                return Err(Failure::Refused(abandoned()));
            };
            let stored = Usage {
                keys: from_db(col(&locked, 0)?),
                bytes: from_db(col(&locked, 1)?),
            };
            let quota = a.quota.resolve(quota_at(&locked, 3)?);
            let Some(this) = c
                .query_opt(
                    "SELECT bytes FROM cubby_loose_blobs
                     WHERE workspace = $1 AND blob = $2 AND kind = 0 FOR UPDATE",
                    &[&ws, &blob],
                )
                .await?
            else {
                return Err(Failure::Refused(abandoned()));
            };
            let before: u64 = from_db(col(&this, 0)?);
            let open = c.query_one(OPEN, &[&ws]).await?;
            let open_bytes: u64 = from_db(col(&open, 1)?);
            let after = stored
                .bytes
                .saturating_add(open_bytes - before.min(open_bytes))
                .saturating_add(a.stored_after);
            if after > quota.max_bytes {
                return Err(Failure::Refused(StorageError::QuotaExceeded(format!(
                    "the workspace would hold {after} bytes with its stream writes in progress and \
                     the replaced streamed values kept for their readers, its quota is {}",
                    quota.max_bytes
                ))));
            }
            c.execute(
                "INSERT INTO cubby_chunks (workspace, blob, idx, data) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (workspace, blob, idx) DO UPDATE SET data = EXCLUDED.data",
                &[&ws, &blob, &(a.index as i32), &a.data],
            )
            .await?;
            c.execute(
                "UPDATE cubby_loose_blobs SET bytes = $3, until_ms = $4
                 WHERE workspace = $1 AND blob = $2",
                &[&ws, &blob, &to_db(a.stored_after), &to_db(a.idle_until_ms)],
            )
            .await?;
            Ok(())
        })
        .await
    })
}

/// A blob of a workspace.
pub(super) struct BlobOf {
    pub ws: String,
    pub blob: u64,
}

/// One chunk: the blob and its index.
pub(super) struct ChunkOf {
    pub ws: String,
    pub blob: u64,
    pub index: u32,
}

pub(super) fn drop_blob<'a>(
    c: &'a mut Object,
    a: &'a BlobOf,
) -> BoxFuture<'a, Result<(), Failure>> {
    Box::pin(async move {
        let ws = a.ws.as_bytes();
        let blob = to_db(a.blob);
        let c = &*c;
        in_transaction(c, async {
            let gone = c
                .execute(
                    "DELETE FROM cubby_loose_blobs WHERE workspace = $1 AND blob = $2 AND kind = 0",
                    &[&ws, &blob],
                )
                .await?;
            if gone > 0 {
                c.execute(
                    "DELETE FROM cubby_chunks WHERE workspace = $1 AND blob = $2",
                    &[&ws, &blob],
                )
                .await?;
            }
            Ok(())
        })
        .await
    })
}

pub(super) fn read_chunk<'a>(
    c: &'a mut Object,
    a: &'a ChunkOf,
) -> BoxFuture<'a, Result<Option<Vec<u8>>, Failure>> {
    Box::pin(async move {
        let stmt = c
            .prepare_cached(
                "SELECT data FROM cubby_chunks WHERE workspace = $1 AND blob = $2 AND idx = $3",
            )
            .await?;
        let row = c
            .query_opt(
                &stmt,
                &[&a.ws.as_bytes(), &to_db(a.blob), &(a.index as i32)],
            )
            .await?;
        row.map(|r| col(&r, 0)).transpose()
    })
}

/// Loose blobs looked at per collecting pass.
const COLLECT_BATCH: i64 = 100;

/// Removes loose blobs whose time is up, one transaction (on one
/// workspace) each, until about `budget` chunks are gone; returns how many.
/// The loose row goes first, and only while its time is still up: a write
/// in progress that got a chunk meanwhile is not taken for abandoned.
pub(super) fn collect<'a>(
    c: &'a mut Object,
    (now_ms, budget): &'a (u64, usize),
) -> BoxFuture<'a, Result<u64, Failure>> {
    Box::pin(async move {
        let now = to_db(*now_ms);
        let due = c
            .query(
                "SELECT workspace, blob FROM cubby_loose_blobs WHERE until_ms <= $1
                 ORDER BY until_ms LIMIT $2",
                &[&now, &COLLECT_BATCH],
            )
            .await?;
        let mut removed = 0u64;
        let c = &*c;
        for r in &due {
            if removed as usize >= *budget {
                break;
            }
            let (ws, blob): (Vec<u8>, i64) = (col(r, 0)?, col(r, 1)?);
            removed += in_transaction(c, async {
                let gone = c
                    .execute(
                        "DELETE FROM cubby_loose_blobs
                         WHERE workspace = $1 AND blob = $2 AND until_ms <= $3",
                        &[&ws, &blob, &now],
                    )
                    .await?;
                if gone == 0 {
                    return Ok(0);
                }
                Ok(c.execute(
                    "DELETE FROM cubby_chunks WHERE workspace = $1 AND blob = $2",
                    &[&ws, &blob],
                )
                .await?)
            })
            .await?;
        }
        Ok(removed)
    })
}
