//! One transaction in two round trips.
//!
//! tokio-postgres sends a request when its future is first polled and
//! `futures_util`'s `join` polls in the order given, so statements joined
//! together go out back to back and the server runs them in that order.
//! [`begin`] sends `BEGIN`, the lock on the workspace's row and a read; the
//! server runs the read only once the lock is held, and in `READ COMMITTED`
//! it sees everything committed before. [`finish`] sends every write and the
//! `COMMIT`. If the server refuses one of those writes, the transaction is
//! aborted and PostgreSQL turns the `COMMIT` into a rollback: nothing is
//! written. If instead the connection is lost during that round trip, the
//! commit may or may not have happened, and the failure says so
//! ([`Failure::Commit`]), so it is never retried.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::Object;
use deadpool_postgres::tokio_postgres::types::ToSql;
use deadpool_postgres::tokio_postgres::{Error as PgError, Row as PgRow, Statement};
use futures_util::future::{MaybeDone, join, join3, maybe_done};

use super::retry::Failure;
use super::to_db;
use crate::engine::accounting::UsageChange;
use crate::engine::backend::Row;
use crate::engine::blob::{BlobRef, Loose, REPLACED_GRACE};

/// Creates a workspace's row on its first write, or locks the row there is.
const CREATE_OR_LOCK: &str = "
    INSERT INTO cubby_workspaces (workspace, keys, bytes, next_version) VALUES ($1, 0, 0, 1)
    ON CONFLICT (workspace) DO UPDATE SET keys = cubby_workspaces.keys";

/// A workspace created again under the id of a removed one continues its
/// version counter.
const CONTINUE_VERSIONS: &str = "
    UPDATE cubby_workspaces w SET next_version = r.next_version
    FROM cubby_retired_workspaces r
    WHERE w.workspace = $1 AND r.workspace = w.workspace AND r.next_version > w.next_version";

/// A locked workspace row: stored usage, next version, and stored quota
/// (`NULL`s: none).
const LOCKED: &str = "
    SELECT w.keys, w.bytes, w.next_version, q.max_keys, q.max_bytes
    FROM cubby_workspaces w LEFT JOIN cubby_quotas q ON q.workspace = w.workspace
    WHERE w.workspace = $1";

/// Locks a workspace's row if there is one.
pub(super) const LOCK: &str = "
    SELECT keys, bytes, next_version FROM cubby_workspaces WHERE workspace = $1 FOR UPDATE";

/// Rows written by one statement of [`finish`]; more go in further
/// statements. Statements are cached per row count, so a connection holds
/// at most this many of each.
const ROWS_PER_STATEMENT: usize = 64;

const DELETE: &str = "
    DELETE FROM cubby_entries
    WHERE workspace = $1
      AND (namespace, key) IN (SELECT * FROM unnest($2::BYTEA[], $3::BYTEA[]))";

const EMPTY_NAMESPACES: &str = "
    DELETE FROM cubby_namespaces WHERE workspace = $1 AND namespace = ANY($2) AND keys <= 0";

/// Ends a workspace that holds nothing any more: its version counter is
/// kept, then its namespace rows and its row go.
const RETIRE: [&str; 3] = [
    "INSERT INTO cubby_retired_workspaces (workspace, next_version)
     SELECT workspace, next_version FROM cubby_workspaces WHERE workspace = $1
     ON CONFLICT (workspace) DO UPDATE SET next_version = EXCLUDED.next_version",
    "DELETE FROM cubby_namespaces WHERE workspace = $1",
    "DELETE FROM cubby_workspaces WHERE workspace = $1",
];

const WORKSPACE_USAGE: &str = "
    UPDATE cubby_workspaces
    SET keys = greatest(keys + $2, 0), bytes = greatest(bytes + $3, 0),
        next_version = coalesce($4, next_version)
    WHERE workspace = $1";

/// `INSERT … VALUES` of `rows` rows of `columns` columns into `table`, the
/// first column (`workspace`) `$1` in every row, then `on_conflict`.
fn insert_rows(table: &str, columns: &[&str], rows: usize, on_conflict: &str) -> String {
    let per_row = columns.len() - 1;
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (0..per_row)
                .map(|c| format!("${}", 2 + r * per_row + c))
                .collect();
            format!("($1, {})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES {} {on_conflict}",
        columns.join(", "),
        values.join(", ")
    )
}

/// Stores entries, replacing what is there.
fn upsert_entries(rows: usize) -> String {
    insert_rows(
        "cubby_entries",
        &ENTRY_COLUMNS,
        rows,
        "ON CONFLICT (workspace, namespace, key) DO UPDATE
         SET value = EXCLUDED.value, version = EXCLUDED.version, expires_at = EXCLUDED.expires_at,
             blob = EXCLUDED.blob, stored = EXCLUDED.stored",
    )
}

/// The columns of an entry row, as [`upsert_entries`] writes them.
const ENTRY_COLUMNS: [&str; 8] = [
    "workspace",
    "namespace",
    "key",
    "value",
    "version",
    "expires_at",
    "blob",
    "stored",
];

/// Records blobs no entry holds any more, kept until `until_ms`.
fn retire_blobs(rows: usize) -> String {
    insert_rows(
        "cubby_loose_blobs",
        &["workspace", "blob", "kind", "until_ms", "bytes"],
        rows,
        "ON CONFLICT (workspace, blob) DO UPDATE
         SET kind = EXCLUDED.kind, until_ms = EXCLUDED.until_ms, bytes = EXCLUDED.bytes",
    )
}

/// Writes in progress that an entry now holds.
const PUBLISHED: &str = "
    DELETE FROM cubby_loose_blobs WHERE workspace = $1 AND blob = ANY($2) AND kind = 0";

/// A removed workspace's writes in progress, let go at once.
const LET_GO: &str = "
    UPDATE cubby_loose_blobs SET kind = 1, until_ms = $2 WHERE workspace = $1 AND kind = 0";

/// Adds to the usage of namespaces.
fn add_namespace_usage(rows: usize) -> String {
    insert_rows(
        "cubby_namespaces",
        &["workspace", "namespace", "keys", "bytes"],
        rows,
        "ON CONFLICT (workspace, namespace) DO UPDATE
         SET keys = cubby_namespaces.keys + EXCLUDED.keys,
             bytes = cubby_namespaces.bytes + EXCLUDED.bytes",
    )
}

/// The statements that create or lock a workspace's row, prepared.
pub(super) struct CreateOrLock([Statement; 3]);

impl CreateOrLock {
    pub async fn prepare(c: &Object) -> Result<Self, PgError> {
        let (create, continued, locked) = join3(
            c.prepare_cached(CREATE_OR_LOCK),
            c.prepare_cached(CONTINUE_VERSIONS),
            c.prepare_cached(LOCKED),
        )
        .await;
        Ok(Self([create?, continued?, locked?]))
    }

    /// Sends them back to back; returns the locked row (columns as
    /// [`LOCKED`]).
    pub async fn run(&self, c: &Object, ws: &[u8]) -> Result<PgRow, PgError> {
        let [create, continued, locked] = &self.0;
        let (a, b, row) = join3(
            c.execute(create, &[&ws]),
            c.execute(continued, &[&ws]),
            c.query_one(locked, &[&ws]),
        )
        .await;
        a?;
        b?;
        row
    }
}

/// Sends `BEGIN`, `lock` and `read` in one round trip and returns what the
/// two statements returned. On any error the transaction is rolled back.
pub(super) async fn begin<A, B>(
    c: &Object,
    lock: impl Future<Output = Result<A, PgError>>,
    read: impl Future<Output = Result<B, PgError>>,
) -> Result<(A, B), Failure> {
    match join3(c.batch_execute("BEGIN"), lock, read).await {
        (Ok(()), Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            rollback(c).await;
            Err(Failure::Sql(e))
        }
    }
}

/// Runs `body` in a transaction: commits if it succeeds (a failed
/// `COMMIT` is [`Failure::Commit`]: its outcome is unknown), rolls back if
/// it fails.
pub(super) async fn in_transaction<T>(
    c: &Object,
    body: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    c.batch_execute("BEGIN").await?;
    match body.await {
        Ok(answer) => {
            c.batch_execute("COMMIT").await.map_err(Failure::Commit)?;
            Ok(answer)
        }
        Err(e) => {
            rollback(c).await;
            Err(e)
        }
    }
}

/// Ends a transaction without writing (a request that was refused).
pub(super) async fn rollback(c: &Object) {
    // A connection that cannot even roll back is lost; the retry loop
    // finds out on its next statement, and the server rolls back anyway.
    let _ = c.batch_execute("ROLLBACK").await;
}

/// What a transaction writes.
#[derive(Debug, Default)]
pub(super) struct Writes<'a> {
    /// Entries stored (inserted or replaced), by (namespace, key).
    pub set: Vec<(&'a str, &'a str, &'a Row)>,
    /// Entries removed, by (namespace, key).
    pub delete: Vec<(&'a str, &'a str)>,
    /// The usage change of all of it.
    pub usage: UsageChange,
    /// The workspace's next version, when versions were handed out.
    pub next_version: Option<u64>,
    /// Whether the workspace is removed (it holds nothing after these
    /// writes): its usage row goes instead of being updated, and its writes
    /// in progress are let go.
    pub retire: bool,
    /// Blobs of streamed values that no entry holds after these writes:
    /// kept for their readers, then collected.
    pub retired: Vec<BlobRef>,
    /// Writes in progress whose blob an entry now holds (ids).
    pub published: Vec<i64>,
    /// The time of the writes (when retired blobs' grace starts).
    pub now_ms: u64,
}

impl Writes<'_> {
    /// Nothing yet, at `now_ms`.
    pub fn at(now_ms: u64) -> Self {
        Self {
            now_ms,
            ..Self::default()
        }
    }
}

type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

/// Polls the futures in the order given, every time, until all are done:
/// each statement's request goes out before the next one's.
async fn in_order<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut all: Vec<Pin<Box<MaybeDone<F>>>> = futures
        .into_iter()
        .map(|f| Box::pin(maybe_done(f)))
        .collect();
    poll_fn(|cx| {
        let mut done = true;
        for f in &mut all {
            done &= f.as_mut().poll(cx).is_ready();
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    all.iter_mut()
        .filter_map(|f| f.as_mut().take_output())
        .collect()
}

/// Sends every write of a transaction and its `COMMIT` in one round trip.
/// Every statement names the workspace, so on Citus each runs on the
/// worker holding it (multi-row `VALUES`, never `INSERT … SELECT` from an
/// array, which Citus would pass through the coordinator and commit in two
/// phases).
pub(super) async fn finish(c: &Object, ws: &[u8], w: &Writes<'_>) -> Result<(), Failure> {
    let versions: Vec<i64> = w.set.iter().map(|(_, _, r)| to_db(r.version)).collect();
    let deadlines: Vec<Option<i64>> = w
        .set
        .iter()
        .map(|(_, _, r)| r.expires_at_ms.map(to_db))
        .collect();
    let set_keys: Vec<(&[u8], &[u8], &[u8])> = w
        .set
        .iter()
        .map(|(ns, k, r)| (ns.as_bytes(), k.as_bytes(), r.value.as_slice()))
        .collect();
    let blobs: Vec<Option<Vec<u8>>> = w
        .set
        .iter()
        .map(|(_, _, r)| r.blob.map(|b| b.encode().to_vec()))
        .collect();
    let stored: Vec<Option<i64>> = w
        .set
        .iter()
        .map(|(_, _, r)| r.blob.map(|b| to_db(b.stored)))
        .collect();
    let per_entry = ENTRY_COLUMNS.len() - 1;
    let mut entry_params: Vec<Params<'_>> = Vec::new();
    for (chunk, start) in set_keys
        .chunks(ROWS_PER_STATEMENT)
        .zip((0..).step_by(ROWS_PER_STATEMENT))
    {
        let mut params: Params<'_> = vec![&ws];
        for (i, (ns, key, value)) in chunk.iter().enumerate() {
            params.extend([
                ns as &(dyn ToSql + Sync),
                key,
                value,
                &versions[start + i],
                &deadlines[start + i],
                &blobs[start + i],
                &stored[start + i],
            ]);
        }
        entry_params.push(params);
    }
    let until = to_db(w.now_ms.saturating_add(REPLACED_GRACE.as_millis() as u64));
    let retired: Vec<(i64, i64)> = w
        .retired
        .iter()
        .map(|b| (to_db(b.id), to_db(b.stored)))
        .collect();
    let garbage = i16::from(Loose::Garbage.code());
    let mut retired_params: Vec<Params<'_>> = Vec::new();
    for chunk in retired.chunks(ROWS_PER_STATEMENT) {
        let mut params: Params<'_> = vec![&ws];
        for (id, bytes) in chunk {
            params.extend([id as &(dyn ToSql + Sync), &garbage, &until, bytes]);
        }
        retired_params.push(params);
    }
    let now = to_db(w.now_ms);
    let (mut names, mut keys, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    for (ns, delta) in w.usage.per_namespace() {
        names.push(ns.as_bytes());
        keys.push(delta.keys);
        bytes.push(delta.bytes);
    }
    let mut usage_params: Vec<Params<'_>> = Vec::new();
    for (chunk, start) in names
        .chunks(ROWS_PER_STATEMENT)
        .zip((0..).step_by(ROWS_PER_STATEMENT))
    {
        let mut params: Params<'_> = vec![&ws];
        for (i, ns) in chunk.iter().enumerate() {
            params.extend([
                ns as &(dyn ToSql + Sync),
                &keys[start + i],
                &bytes[start + i],
            ]);
        }
        usage_params.push(params);
    }
    let del_ns: Vec<&[u8]> = w.delete.iter().map(|(ns, _)| ns.as_bytes()).collect();
    let del_keys: Vec<&[u8]> = w.delete.iter().map(|(_, k)| k.as_bytes()).collect();
    let total = w.usage.total();
    let next = w.next_version.map(to_db);

    // Prepared (cached per connection) before the round trip.
    let mut texts: Vec<String> = entry_params
        .iter()
        .map(|p| upsert_entries((p.len() - 1) / per_entry))
        .chain(
            usage_params
                .iter()
                .map(|p| add_namespace_usage((p.len() - 1) / 3)),
        )
        .chain(
            retired_params
                .iter()
                .map(|p| retire_blobs((p.len() - 1) / 4)),
        )
        .collect();
    texts.push(DELETE.into());
    texts.push(EMPTY_NAMESPACES.into());
    if !w.published.is_empty() {
        texts.push(PUBLISHED.into());
    }
    if w.retire {
        texts.push(LET_GO.into());
        texts.extend(RETIRE.map(String::from));
    } else {
        texts.push(WORKSPACE_USAGE.into());
    }
    let prepared = in_order(texts.iter().map(|t| c.prepare_cached(t)).collect()).await;
    let prepared: Vec<Statement> = prepared.into_iter().collect::<Result<_, _>>()?;

    let mut args: Vec<Params<'_>> = entry_params;
    args.extend(usage_params);
    args.extend(retired_params);
    args.push(vec![&ws, &del_ns, &del_keys]);
    args.push(vec![&ws, &names]);
    if !w.published.is_empty() {
        args.push(vec![&ws, &w.published]);
    }
    if w.retire {
        args.push(vec![&ws, &now]);
        args.extend(std::iter::repeat_n(
            vec![&ws as &(dyn ToSql + Sync)],
            RETIRE.len(),
        ));
    } else {
        args.push(vec![&ws, &total.keys, &total.bytes, &next]);
    }
    let (results, commit) = join(
        in_order(
            prepared
                .iter()
                .zip(&args)
                .map(|(statement, params)| c.execute(statement, params))
                .collect(),
        ),
        c.batch_execute("COMMIT"),
    )
    .await;
    let (mut refused, mut lost) = (None, None);
    for e in results.into_iter().filter_map(Result::err) {
        let slot = if e.as_db_error().is_some() {
            &mut refused
        } else {
            &mut lost
        };
        slot.get_or_insert(e);
    }
    match (refused, lost, commit) {
        // The server refused a write: the transaction was aborted and the
        // COMMIT became a rollback.
        (Some(e), _, _) => Err(Failure::Sql(e)),
        (None, None, Ok(())) => Ok(()),
        // A lost connection: the outcome is unknown.
        (None, Some(e), _) => Err(Failure::Commit(e)),
        (None, None, Err(e)) => Err(Failure::Commit(e)),
    }
}
