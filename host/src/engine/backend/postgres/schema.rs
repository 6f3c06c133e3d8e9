//! Cubby's tables in a PostgreSQL-protocol database, their version, and the
//! check made when connecting.
//!
//! # Schema version 3
//! All tables live in the connection's current schema (`search_path`) and
//! are named `cubby_*`. Identities are `BYTEA`, so they compare byte by
//! byte (as redb does) whatever the database's collation.
//! - `cubby_entries (workspace, namespace, key)` → `value`, `version`,
//!   `expires_at` (milliseconds since the Unix epoch, `NULL`: never), and
//!   for a streamed value `blob` (its reference, `blob.rs`; `value` is then
//!   empty) and `stored` (what its chunks take, which usage counts instead
//!   of `value`'s length). The primary key is the structured triple; no
//!   string is ever joined.
//! - `cubby_chunks (workspace, blob, idx)` → `data`: the chunks of streamed
//!   values (stored without PostgreSQL's own compression).
//! - `cubby_loose_blobs (workspace, blob)` → `kind`, `until_ms`, `bytes`:
//!   blobs no entry holds, a write in progress (`kind` 0, abandoned after
//!   `until_ms`) or a replaced value kept for its readers (`kind` 1, removed
//!   after `until_ms`). Streamed values were added in version 3.
//! - `cubby_workspaces (workspace)` → `keys`, `bytes` (stored usage,
//!   including expired entries not swept yet) and `next_version`. Every
//!   write locks its workspace's row first: writers of one workspace are
//!   serialised, writers of different workspaces are not. The row is never
//!   deleted, so versions never repeat within a workspace.
//! - `cubby_namespaces (workspace, namespace)` → `keys`, `bytes`, removed
//!   when a namespace holds nothing.
//! - `cubby_retired_workspaces (workspace)` → `next_version`: where a
//!   removed workspace's version counter is kept, so that a workspace
//!   created again under the same id continues it.
//! - `cubby_quotas (workspace)` → `max_keys`, `max_bytes`: quotas stored
//!   with `cubby quota set`, read by every write in its transaction (added
//!   in version 2; a version 1 database is upgraded when connecting).
//! - `cubby_meta (name)` → `value`: the schema version.
//!
//! # Citus
//! Every table but `cubby_meta` is keyed by `workspace` first. On a Citus
//! coordinator (the `citus` extension is there) Cubby creates them
//! distributed by `workspace`, colocated with `cubby_workspaces` (so every
//! row of one workspace, in every table, lives in the same shard, on the
//! same node), and `cubby_meta` as a reference table, in the same
//! transaction that creates them. Tables found undistributed there are
//! refused with the statements that distribute them. A request on one
//! workspace then runs on the one worker holding it (see `txn.rs` for the
//! shape of its statements).
//!
//! Portable subset: no sequences, no advisory locks, no `xmin`, no stored
//! procedures, no collations; `INSERT … ON CONFLICT`, `unnest` of arrays,
//! `= ANY`, row-value `IN` and `RETURNING` only.

use deadpool_postgres::tokio_postgres::error::SqlState;
use deadpool_postgres::{Object, tokio_postgres};

/// The schema version this build reads and writes.
pub(crate) const SCHEMA_VERSION: i64 = 3;

const CREATE: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS cubby_meta (
        name TEXT PRIMARY KEY,
        value BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cubby_workspaces (
        workspace BYTEA PRIMARY KEY,
        keys BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        next_version BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cubby_namespaces (
        workspace BYTEA NOT NULL,
        namespace BYTEA NOT NULL,
        keys BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        PRIMARY KEY (workspace, namespace))",
    "CREATE TABLE IF NOT EXISTS cubby_entries (
        workspace BYTEA NOT NULL,
        namespace BYTEA NOT NULL,
        key BYTEA NOT NULL,
        value BYTEA NOT NULL,
        version BIGINT NOT NULL,
        expires_at BIGINT,
        PRIMARY KEY (workspace, namespace, key))",
    "CREATE TABLE IF NOT EXISTS cubby_retired_workspaces (
        workspace BYTEA PRIMARY KEY,
        next_version BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cubby_quotas (
        workspace BYTEA PRIMARY KEY,
        max_keys BIGINT NOT NULL,
        max_bytes BIGINT NOT NULL)",
    // Version 3: streamed values.
    "ALTER TABLE cubby_entries ADD COLUMN IF NOT EXISTS blob BYTEA,
                               ADD COLUMN IF NOT EXISTS stored BIGINT",
    "CREATE TABLE IF NOT EXISTS cubby_chunks (
        workspace BYTEA NOT NULL,
        blob BIGINT NOT NULL,
        idx INTEGER NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (workspace, blob, idx))",
    // Compressed chunks gain nothing from PostgreSQL's own compression.
    "ALTER TABLE cubby_chunks ALTER COLUMN data SET STORAGE EXTERNAL",
    "CREATE TABLE IF NOT EXISTS cubby_loose_blobs (
        workspace BYTEA NOT NULL,
        blob BIGINT NOT NULL,
        kind SMALLINT NOT NULL,
        until_ms BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        PRIMARY KEY (workspace, blob))",
    "CREATE INDEX IF NOT EXISTS cubby_loose_blobs_until ON cubby_loose_blobs (until_ms)",
    // Expired entries of one workspace (usage, the over-quota sweep) ...
    "CREATE INDEX IF NOT EXISTS cubby_entries_workspace_expiry
        ON cubby_entries (workspace, expires_at)",
    // ... and of all workspaces, oldest first (the background sweep).
    "CREATE INDEX IF NOT EXISTS cubby_entries_expiry ON cubby_entries (expires_at)",
];

/// A query per table that fails unless it has the columns Cubby uses.
const SHAPES: &[(&str, &str)] = &[
    (
        "cubby_meta",
        "SELECT name, value FROM cubby_meta WHERE false",
    ),
    (
        "cubby_workspaces",
        "SELECT workspace, keys, bytes, next_version FROM cubby_workspaces WHERE false",
    ),
    (
        "cubby_namespaces",
        "SELECT workspace, namespace, keys, bytes FROM cubby_namespaces WHERE false",
    ),
    (
        "cubby_retired_workspaces",
        "SELECT workspace, next_version FROM cubby_retired_workspaces WHERE false",
    ),
    (
        "cubby_quotas",
        "SELECT workspace, max_keys, max_bytes FROM cubby_quotas WHERE false",
    ),
    (
        "cubby_entries",
        "SELECT workspace, namespace, key, value, version, expires_at, blob, stored
         FROM cubby_entries WHERE false",
    ),
    (
        "cubby_chunks",
        "SELECT workspace, blob, idx, data FROM cubby_chunks WHERE false",
    ),
    (
        "cubby_loose_blobs",
        "SELECT workspace, blob, kind, until_ms, bytes FROM cubby_loose_blobs WHERE false",
    ),
];

/// Why the database cannot be used, found by [`check`].
#[derive(Debug)]
pub(crate) enum Refusal {
    NotCubby(String),
    Newer(u64),
    /// On a Citus coordinator, tables that are not distributed as Cubby
    /// distributes them: what is wrong, and the statements that fix it.
    NotDistributed {
        wrong: String,
        fix: String,
    },
}

/// What [`check`] found out about the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Whether it is a Citus coordinator, with Cubby's tables distributed
    /// by workspace.
    pub citus: bool,
}

/// The tables distributed by workspace, colocated with the first.
const DISTRIBUTED: &[&str] = &[
    "cubby_workspaces",
    "cubby_namespaces",
    "cubby_entries",
    "cubby_retired_workspaces",
    "cubby_quotas",
    "cubby_chunks",
    "cubby_loose_blobs",
];

/// The tables Citus keeps whole on every node.
const REFERENCE: &[&str] = &["cubby_meta"];

/// The statements that distribute `tables` (of Cubby's) on a Citus
/// coordinator, in an order that works.
fn distribute_statements(tables: &[&str]) -> Vec<String> {
    let first = DISTRIBUTED[0];
    REFERENCE
        .iter()
        .chain(DISTRIBUTED)
        .filter(|t| tables.contains(t))
        .map(|&t| {
            if REFERENCE.contains(&t) {
                format!("SELECT create_reference_table('{t}')")
            } else if t == first {
                format!("SELECT create_distributed_table('{t}', 'workspace')")
            } else {
                format!(
                    "SELECT create_distributed_table('{t}', 'workspace', colocate_with => '{first}')"
                )
            }
        })
        .collect()
}

/// Whether the database has the Citus extension.
async fn has_citus(client: &Object) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')",
            &[],
        )
        .await?;
    row.try_get(0)
}

/// On Citus: the tables that are not distributed as Cubby distributes them.
async fn undistributed(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Vec<&'static str>, tokio_postgres::Error> {
    let all: Vec<&str> = REFERENCE.iter().chain(DISTRIBUTED).copied().collect();
    let rows = client
        .query(
            "SELECT t.name, p.partmethod::TEXT, column_to_column_name(p.logicalrelid, p.partkey),
                    p.colocationid
             FROM unnest($1::TEXT[]) WITH ORDINALITY AS t(name, i)
             LEFT JOIN pg_dist_partition p ON p.logicalrelid = t.name::regclass
             ORDER BY t.i",
            &[&all],
        )
        .await?;
    let mut wrong = Vec::new();
    let mut colocation = None;
    for (row, name) in rows.iter().zip(all) {
        let method: Option<String> = row.try_get(1)?;
        let column: Option<String> = row.try_get(2)?;
        let group: Option<i32> = row.try_get(3)?;
        let fine = if REFERENCE.contains(&name) {
            method.as_deref() == Some("n")
        } else {
            let same_group = *colocation.get_or_insert(group) == group;
            method.as_deref() == Some("h") && column.as_deref() == Some("workspace") && same_group
        };
        if !fine {
            wrong.push(name);
        }
    }
    Ok(wrong)
}

/// Creates Cubby's tables if they are missing, then checks them: the
/// schema version, and the columns of every table. Several processes may do
/// this at once. `Ok(Err(_))` is a database Cubby must not use; nothing was
/// created in it then.
pub(crate) async fn check(
    client: &mut Object,
) -> Result<Result<Layout, Refusal>, tokio_postgres::Error> {
    let citus = has_citus(client).await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let probe = client
            .query_opt(
                "SELECT value FROM cubby_meta WHERE name = 'schema_version'",
                &[],
            )
            .await;
        let version = match probe {
            Ok(Some(row)) => match row.try_get::<_, i64>(0) {
                Ok(v) => v,
                Err(_) => return Ok(Err(not_ours("cubby_meta.value is not a number"))),
            },
            Ok(None) => {
                return Ok(Err(not_ours("table cubby_meta has no schema_version row")));
            }
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
                match create(client, citus).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(refusal)) => return Ok(Err(refusal)),
                    // Another process created the tables at the same moment.
                    Err(e) if attempt < 5 && racing(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) if shape_error(&e) => {
                return Ok(Err(not_ours("table cubby_meta has other columns")));
            }
            Err(e) => return Err(e),
        };
        if version > SCHEMA_VERSION {
            return Ok(Err(Refusal::Newer(version as u64)));
        }
        if (1..SCHEMA_VERSION).contains(&version) {
            // Versions 2 and 3 only add tables and columns (quotas; streamed
            // values); several processes may upgrade at once.
            match upgrade(client, citus).await {
                Ok(()) => continue,
                Err(e) if attempt < 5 && racing(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        if version < 1 {
            return Ok(Err(not_ours(&format!(
                "cubby_meta says schema version {version}"
            ))));
        }
        for (table, query) in SHAPES {
            match client.query(*query, &[]).await {
                Ok(_) => {}
                Err(e) if shape_error(&e) => return Ok(Err(shape_refusal(table))),
                Err(e) => return Err(e),
            }
        }
        if citus {
            let wrong = undistributed(client).await?;
            if !wrong.is_empty() {
                return Ok(Err(Refusal::NotDistributed {
                    wrong: wrong.join(", "),
                    fix: distribute_statements(&wrong).join("; "),
                }));
            }
        }
        return Ok(Ok(Layout { citus }));
    }
}

/// Creates every table and index in one transaction (on Citus, distributed
/// as the module documentation says), and checks the shape of tables that
/// already existed before committing.
async fn create(
    client: &mut Object,
    citus: bool,
) -> Result<Result<(), Refusal>, tokio_postgres::Error> {
    let txn = client.transaction().await?;
    for statement in CREATE {
        match txn.batch_execute(statement).await {
            Ok(()) => {}
            // A table of that name with other columns was there already.
            Err(e) if shape_error(&e) => {
                return Ok(Err(not_ours(
                    "its cubby_ tables have other columns than Cubby's",
                )));
            }
            Err(e) => return Err(e),
        }
    }
    for (table, query) in SHAPES {
        match txn.query(*query, &[]).await {
            Ok(_) => {}
            Err(e) if shape_error(&e) => return Ok(Err(shape_refusal(table))),
            Err(e) => return Err(e),
        }
    }
    if citus {
        let all: Vec<&str> = REFERENCE.iter().chain(DISTRIBUTED).copied().collect();
        for statement in distribute_statements(&all) {
            txn.batch_execute(&statement).await?;
        }
    }
    txn.execute(
        "INSERT INTO cubby_meta (name, value) VALUES ('schema_version', $1)
         ON CONFLICT (name) DO NOTHING",
        &[&SCHEMA_VERSION],
    )
    .await?;
    txn.commit().await?;
    tracing::info!("created Cubby's tables (schema version {SCHEMA_VERSION})");
    Ok(Ok(()))
}

/// The tables later versions added, which an upgrade distributes on Citus.
const ADDED: &[&str] = &["cubby_quotas", "cubby_chunks", "cubby_loose_blobs"];

/// Upgrades an earlier database to this version. On Citus, the tables it
/// adds are distributed as the others are (if they are: if not, the check
/// that follows refuses the database).
async fn upgrade(client: &mut Object, citus: bool) -> Result<(), tokio_postgres::Error> {
    let txn = client.transaction().await?;
    for statement in CREATE {
        txn.batch_execute(statement).await?;
    }
    if citus {
        let wrong = undistributed(&txn).await?;
        if !wrong.contains(&DISTRIBUTED[0]) {
            let added: Vec<&str> = ADDED
                .iter()
                .copied()
                .filter(|t| wrong.contains(t))
                .collect();
            for statement in distribute_statements(&added) {
                txn.batch_execute(&statement).await?;
            }
        }
    }
    txn.execute(
        "UPDATE cubby_meta SET value = $1 WHERE name = 'schema_version' AND value < $1",
        &[&SCHEMA_VERSION],
    )
    .await?;
    txn.commit().await?;
    tracing::info!("upgraded Cubby's tables to schema version {SCHEMA_VERSION}");
    Ok(())
}

fn not_ours(reason: &str) -> Refusal {
    Refusal::NotCubby(reason.to_owned())
}

fn shape_refusal(table: &str) -> Refusal {
    not_ours(&format!("table {table} does not have Cubby's columns"))
}

/// A table or column of another shape than Cubby's.
fn shape_error(e: &tokio_postgres::Error) -> bool {
    [
        SqlState::UNDEFINED_COLUMN,
        SqlState::DATATYPE_MISMATCH,
        SqlState::WRONG_OBJECT_TYPE,
        SqlState::INVALID_COLUMN_REFERENCE,
        SqlState::INVALID_TABLE_DEFINITION,
    ]
    .iter()
    .any(|code| e.code() == Some(code))
}

/// Errors that mean another process created the same table at once.
fn racing(e: &tokio_postgres::Error) -> bool {
    [
        SqlState::UNIQUE_VIOLATION,
        SqlState::DUPLICATE_TABLE,
        SqlState::DUPLICATE_OBJECT,
        SqlState::T_R_SERIALIZATION_FAILURE,
    ]
    .iter()
    .any(|code| e.code() == Some(code))
}
