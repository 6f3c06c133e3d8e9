//! Exports, and publishing an import's staging area.
//!
//! An export reads in one `REPEATABLE READ, READ ONLY` transaction (one
//! snapshot however long it runs), a page of entries per statement, so
//! neither the client nor one statement holds the whole workspace.
//!
//! Publishing is one transaction that locks the target's row and the
//! staging area's, checks the quota against the result, copies the staged
//! live entries with `INSERT … SELECT` (fresh versions from the target's
//! counter), recounts the target's usage rows, and removes the staging
//! area. It touches two workspaces, unlike every other transaction; on
//! Citus the staging area is made in the target's shard
//! ([`colocated_id`]), so the transaction stays on one worker (the copy,
//! which changes the distribution value, passes through the coordinator,
//! and Citus then commits it in two phases with that one worker).

use deadpool_postgres::Object;
use deadpool_postgres::tokio_postgres::{self, types::ToSql};

use super::quota::quota_at;
use super::read::{blob_at, col, text, usage_at};
use super::retry::{BoxFuture, Connection, Failure, failure_error, statement_error};
use super::txn::{CreateOrLock, LOCK, Writes, in_transaction};
use super::{PostgresBackend, from_db, to_db};
use crate::engine::accounting::check_quota;
use crate::engine::backend::{ExportSink, Exported, Publish, Published};
use crate::engine::blob::{BlobRef, REPLACED_GRACE};
use crate::engine::{StorageError, TransferError, Usage};

/// Entries read per statement of an export.
const EXPORT_PAGE: i64 = 1000;

/// Streams a workspace's live entries to `sink` (see
/// [`Backend::export`](crate::engine::backend::Backend::export)): one
/// connection and one snapshot for the whole export; each statement gets
/// the request deadline, the export as a whole none.
pub(super) fn export(
    b: &PostgresBackend,
    ws: &str,
    namespaces: &[String],
    now_ms: u64,
    sink: &mut ExportSink<'_>,
) -> Result<(), TransferError> {
    let mut conn = b.deliver(b.runner.run(Connection::get(&b.pool)))?;
    let c = conn.object()?;
    answer(
        b,
        b.runner
            .run(c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")),
    )?;
    let ws_b = ws.as_bytes();
    let names: Vec<&[u8]> = namespaces.iter().map(|n| n.as_bytes()).collect();
    let now = to_db(now_ms);
    let totals = answer(
        b,
        b.runner
            .run(c.query_one(EXPORT_TOTALS, &[&ws_b, &now, &names])),
    )?;
    sink(Exported::Totals(
        usage_at(&totals, 0).map_err(failure_error)?,
    ))?;
    let page = answer(b, b.runner.run(c.prepare(EXPORT_PAGE_SQL)))?;
    let (mut after_ns, mut after_key) = (Vec::new(), Vec::new());
    loop {
        let rows = answer(
            b,
            b.runner.run(c.query(
                &page,
                &[&ws_b, &now, &names, &after_ns, &after_key, &EXPORT_PAGE],
            )),
        )?;
        for r in &rows {
            let (ns, key, value, expires_at_ms, blob) = exported_row(r).map_err(failure_error)?;
            sink(Exported::Entry {
                ns: &ns,
                key: &key,
                value: &value,
                expires_at_ms,
                blob,
            })?;
            if let Some(blob) = blob {
                // A chunk per statement: memory stays at one chunk.
                let chunk = answer(b, b.runner.run(c.prepare(EXPORT_CHUNK)))?;
                for index in 0..blob.chunks {
                    let found = answer(
                        b,
                        b.runner
                            .run(c.query_opt(&chunk, &[&ws_b, &to_db(blob.id), &(index as i32)])),
                    )?;
                    let data: Vec<u8> = match found {
                        Some(row) => col(&row, 0).map_err(failure_error)?,
                        None => {
                            return Err(StorageError::Corrupt(format!(
                                "chunk {index} of {key:?} is missing"
                            ))
                            .into());
                        }
                    };
                    sink(Exported::Chunk(&data))?;
                }
            }
            after_ns = ns.into_bytes();
            after_key = key.into_bytes();
        }
        if (rows.len() as i64) < EXPORT_PAGE {
            break;
        }
    }
    answer(b, b.runner.run(c.batch_execute("COMMIT")))?;
    conn.release(());
    Ok(())
}

/// One statement's answer, outside the retry loop.
fn answer<T>(
    b: &PostgresBackend,
    answer: Option<Result<T, tokio_postgres::Error>>,
) -> Result<T, StorageError> {
    b.deliver(answer.map(|r| r.map_err(statement_error)))
}

/// The live totals of a workspace, or of some of its namespaces.
const EXPORT_TOTALS: &str = "
    SELECT count(*), coalesce(sum(length(key) + coalesce(stored, length(value))), 0)::BIGINT
    FROM cubby_entries
    WHERE workspace = $1 AND (expires_at IS NULL OR expires_at > $2)
      AND (cardinality($3::BYTEA[]) = 0 OR namespace = ANY($3))";

/// One chunk of a blob.
const EXPORT_CHUNK: &str = "
    SELECT data FROM cubby_chunks WHERE workspace = $1 AND blob = $2 AND idx = $3";

/// One page of live entries after a (namespace, key).
const EXPORT_PAGE_SQL: &str = "
    SELECT namespace, key, value, expires_at, blob FROM cubby_entries
    WHERE workspace = $1 AND (expires_at IS NULL OR expires_at > $2)
      AND (cardinality($3::BYTEA[]) = 0 OR namespace = ANY($3))
      AND (namespace, key) > ($4, $5)
    ORDER BY namespace, key LIMIT $6";

/// One row of `EXPORT_PAGE_SQL`: namespace, key, value, deadline, blob.
type ExportedRow = (String, String, Vec<u8>, Option<u64>, Option<BlobRef>);

fn exported_row(r: &deadpool_postgres::tokio_postgres::Row) -> Result<ExportedRow, Failure> {
    Ok((
        text(col(r, 0)?)?,
        text(col(r, 1)?)?,
        col(r, 2)?,
        col::<Option<i64>>(r, 3)?.map(from_db),
        blob_at(r, 4)?,
    ))
}

/// On Citus: `base` with a suffix that puts it in the same shard as the
/// workspace (`None` if none of 4,096 suffixes does, which with Citus's
/// default 32 shards has a chance of 10^-56).
pub(super) fn colocated_id<'a>(
    c: &'a mut Object,
    (base, workspace): &'a (String, String),
) -> BoxFuture<'a, Result<Option<String>, Failure>> {
    Box::pin(async move {
        let row = c
            .query_opt(
                "SELECT id FROM (
                   SELECT $1 || '~' || n AS id FROM generate_series(0, 4095) AS n) AS candidates
                 WHERE get_shard_id_for_distribution_column('cubby_workspaces', convert_to(id, 'UTF8'))
                     = get_shard_id_for_distribution_column('cubby_workspaces', $2::BYTEA)
                 LIMIT 1",
                &[base, &workspace.as_bytes()],
            )
            .await?;
        row.map(|r| col(&r, 0)).transpose()
    })
}

/// Publishes a staging area; see the module documentation.
pub(super) fn publish<'a>(
    c: &'a mut Object,
    p: &'a Publish,
) -> BoxFuture<'a, Result<Published, Failure>> {
    Box::pin(async move {
        let c = &*c;
        in_transaction(c, publish_in(c, p)).await
    })
}

const LIVE: &str = "(expires_at IS NULL OR expires_at > $2)";

async fn publish_in(c: &Object, p: &Publish) -> Result<Published, Failure> {
    let (src, dst) = (p.staging.as_bytes(), p.workspace.as_bytes());
    let now = to_db(p.now_ms);
    let locked = CreateOrLock::prepare(c).await?.run(c, dst).await?;
    let first_version: i64 = col(&locked, 2)?;
    let quota = p.quota.resolve(quota_at(&locked, 3)?);
    c.query_opt(LOCK, &[&src]).await?;
    let sums = format!(
        "SELECT
           (SELECT count(*) FROM cubby_entries WHERE workspace = $1 AND {LIVE}),
           (SELECT coalesce(sum(length(key) + coalesce(stored, length(value))), 0)::BIGINT
            FROM cubby_entries WHERE workspace = $1 AND {LIVE}),
           (SELECT count(*) FROM cubby_entries WHERE workspace = $3 AND {LIVE}),
           (SELECT coalesce(sum(length(key) + coalesce(stored, length(value))), 0)::BIGINT
            FROM cubby_entries WHERE workspace = $3 AND {LIVE}),
           (SELECT count(*) FROM cubby_entries d JOIN cubby_entries s
              ON s.namespace = d.namespace AND s.key = d.key
            WHERE d.workspace = $1 AND s.workspace = $3
              AND (d.expires_at IS NULL OR d.expires_at > $2)
              AND (s.expires_at IS NULL OR s.expires_at > $2)),
           (SELECT coalesce(sum(length(d.key) + coalesce(d.stored, length(d.value))), 0)::BIGINT
            FROM cubby_entries d JOIN cubby_entries s
              ON s.namespace = d.namespace AND s.key = d.key
            WHERE d.workspace = $1 AND s.workspace = $3
              AND (d.expires_at IS NULL OR d.expires_at > $2)
              AND (s.expires_at IS NULL OR s.expires_at > $2)),
           (SELECT count(*) FROM cubby_entries WHERE workspace = $3 AND NOT {LIVE})"
    );
    let row = c.query_one(&sums, &[&dst, &now, &src]).await?;
    let current = usage_at(&row, 0)?;
    let staged = usage_at(&row, 2)?;
    let overlap = usage_at(&row, 4)?;
    let expired = from_db(col(&row, 6)?);
    let after = if p.replace {
        staged
    } else {
        Usage {
            keys: current.keys - overlap.keys + staged.keys,
            bytes: current.bytes - overlap.bytes + staged.bytes,
        }
    };
    let change = crate::engine::accounting::Delta {
        keys: after.keys as i64 - current.keys as i64,
        bytes: after.bytes as i64 - current.bytes as i64,
    };
    check_quota(current, change, quota)?;

    // The streamed values the target lets go of: all (`replace`), its
    // expired ones, and those the staged entries overwrite.
    let letting_go = format!(
        "SELECT d.blob FROM cubby_entries d
         WHERE d.workspace = $1 AND d.blob IS NOT NULL
           AND ($4 OR NOT {live_d} OR EXISTS (
                SELECT 1 FROM cubby_entries s
                WHERE s.workspace = $3 AND s.namespace = d.namespace AND s.key = d.key
                  AND (s.expires_at IS NULL OR s.expires_at > $2)))",
        live_d = "(d.expires_at IS NULL OR d.expires_at > $2)"
    );
    let mut writes = Writes::at(p.now_ms);
    for r in c
        .query(&letting_go, &[&dst, &now, &src, &p.replace])
        .await?
    {
        writes.retired.extend(blob_at(&r, 0)?);
    }

    // The target keeps only live entries (all of them go with `replace`),
    // so its usage can be recounted from what is left.
    if p.replace {
        c.execute("DELETE FROM cubby_entries WHERE workspace = $1", &[&dst])
            .await?;
    } else {
        c.execute(
            "DELETE FROM cubby_entries WHERE workspace = $1 AND expires_at <= $2",
            &[&dst, &now],
        )
        .await?;
    }
    let copy = format!(
        "INSERT INTO cubby_entries (workspace, namespace, key, value, version, expires_at)
         SELECT $1, namespace, key, value,
                $3 + row_number() OVER (ORDER BY namespace, key) - 1, expires_at
         FROM cubby_entries WHERE workspace = $4 AND {LIVE} AND blob IS NULL
         ON CONFLICT (workspace, namespace, key) DO UPDATE
         SET value = EXCLUDED.value, version = EXCLUDED.version,
             expires_at = EXCLUDED.expires_at, blob = NULL, stored = NULL"
    );
    let inline = c
        .execute(&copy, &[&dst, &now, &first_version, &src])
        .await?;
    // Streamed values, one by one: their chunks move to the target under
    // ids of its own (a version each, and one for the blob).
    let mut next = first_version + inline as i64;
    let streamed = format!(
        "SELECT namespace, key, expires_at, blob FROM cubby_entries
         WHERE workspace = $1 AND {LIVE} AND blob IS NOT NULL",
        LIVE = "(expires_at IS NULL OR expires_at > $2)"
    );
    let staged_blobs = c.query(&streamed, &[&src, &now]).await?;
    for r in &staged_blobs {
        let (ns, key): (Vec<u8>, Vec<u8>) = (col(r, 0)?, col(r, 1)?);
        let expires_at: Option<i64> = col(r, 2)?;
        let Some(mut blob) = blob_at(r, 3)? else {
            continue;
        };
        let (version, id) = (next, next + 1);
        next += 2;
        c.execute(
            "INSERT INTO cubby_chunks (workspace, blob, idx, data)
             SELECT $1, $2, idx, data FROM cubby_chunks WHERE workspace = $3 AND blob = $4",
            &[&dst, &id, &src, &to_db(blob.id)],
        )
        .await?;
        blob.id = from_db(id);
        c.execute(
            "INSERT INTO cubby_entries
               (workspace, namespace, key, value, version, expires_at, blob, stored)
             VALUES ($1, $2, $3, ''::BYTEA, $4, $5, $6, $7)
             ON CONFLICT (workspace, namespace, key) DO UPDATE
             SET value = EXCLUDED.value, version = EXCLUDED.version,
                 expires_at = EXCLUDED.expires_at, blob = EXCLUDED.blob,
                 stored = EXCLUDED.stored",
            &[
                &dst,
                &ns,
                &key,
                &version,
                &expires_at,
                &blob.encode().as_slice(),
                &to_db(blob.stored),
            ],
        )
        .await?;
    }
    let written = inline + staged_blobs.len() as u64;
    let params: [&(dyn ToSql + Sync); 1] = [&src];
    for table in ["cubby_entries", "cubby_namespaces", "cubby_workspaces"] {
        c.execute(
            &format!("DELETE FROM {table} WHERE workspace = $1"),
            &params,
        )
        .await?;
    }
    for table in ["cubby_chunks", "cubby_loose_blobs"] {
        c.execute(
            &format!("DELETE FROM {table} WHERE workspace = $1"),
            &params,
        )
        .await?;
    }
    retire_blobs_now(c, dst, &writes).await?;
    c.execute("DELETE FROM cubby_namespaces WHERE workspace = $1", &[&dst])
        .await?;
    c.execute(
        "INSERT INTO cubby_namespaces (workspace, namespace, keys, bytes)
         SELECT workspace, namespace, count(*), sum(length(key) + coalesce(stored, length(value)))::BIGINT
         FROM cubby_entries WHERE workspace = $1 GROUP BY workspace, namespace",
        &[&dst],
    )
    .await?;
    c.execute(
        "UPDATE cubby_workspaces SET
           keys = (SELECT count(*) FROM cubby_entries WHERE workspace = $1),
           bytes = (SELECT coalesce(sum(length(key) + coalesce(stored, length(value))), 0)::BIGINT
                    FROM cubby_entries WHERE workspace = $1),
           next_version = greatest(next_version, $2)
         WHERE workspace = $1",
        &[&dst, &next],
    )
    .await?;
    Ok(Published { written, expired })
}

/// Records the blobs `writes` retires (inside the caller's transaction).
async fn retire_blobs_now(c: &Object, ws: &[u8], writes: &Writes<'_>) -> Result<(), Failure> {
    let until = to_db(
        writes
            .now_ms
            .saturating_add(REPLACED_GRACE.as_millis() as u64),
    );
    for blob in &writes.retired {
        c.execute(
            "INSERT INTO cubby_loose_blobs (workspace, blob, kind, until_ms, bytes)
             VALUES ($1, $2, 1, $3, $4)
             ON CONFLICT (workspace, blob) DO UPDATE
             SET kind = 1, until_ms = EXCLUDED.until_ms, bytes = EXCLUDED.bytes",
            &[&ws, &to_db(blob.id), &until, &to_db(blob.stored)],
        )
        .await?;
    }
    Ok(())
}
