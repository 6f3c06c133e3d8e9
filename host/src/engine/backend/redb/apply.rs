//! Applying one request inside the writer's transaction: a write request
//! (staged by the front's rules, quota-checked, then written with its usage
//! and expiry-index rows) or one bounded step of `clear`.

use redb::ReadableTable;

use super::record::{Record, stored_value_len};
use super::sweep::sweep_workspace;
use super::tables::{Stored, Tables, row_at};
use crate::engine::accounting::{UsageChange, check_quota, entry_bytes};
use crate::engine::backend::{ChunkPut, Publish, Published, Row, WriteRequest};
use crate::engine::blob::{BlobRef, Loose, abandoned, too_many_writers};
use crate::engine::stage::{Changes, stage};
use crate::engine::{Cleared, Outcome, Quota, StorageError};

/// Applies one write request; returns the outcomes and whether it changed
/// anything. A request that fails writes nothing.
pub(crate) fn write(
    t: &mut Tables<'_>,
    request: WriteRequest,
    next_version: &mut u64,
) -> Result<(Vec<Outcome>, bool), StorageError> {
    let WriteRequest {
        workspace,
        ops,
        blob,
        now_ms,
        quota,
    } = request;
    let ws = &*workspace;
    let staged = {
        let entries = &t.entries;
        stage(
            ops,
            blob,
            now_ms,
            |ns, key| row_at(entries, ws, ns, key),
            || {
                let v = *next_version;
                *next_version += 1;
                v
            },
        )?
    };
    let quota = t.quota(ws, quota)?;
    let mut plan = Plan::of(t, ws, &staged.changes)?;
    if check_quota(t.stored_usage(ws)?, plan.change.total(), quota).is_err() {
        // Stored usage still counts expired entries the sweeper has not
        // reached; remove this workspace's before deciding.
        if sweep_workspace(t, ws, now_ms, usize::MAX)?.0 > 0 {
            plan = Plan::of(t, ws, &staged.changes)?;
        }
        check_quota(t.stored_usage(ws)?, plan.change.total(), quota)?;
    }
    // A published blob must still be a write in progress (not abandoned
    // and collected); checked before anything is written.
    for (new, old) in staged.changes.values().zip(&plan.old) {
        if let Some(blob) = published_blob(new.as_ref(), old.as_ref())
            && t.open_write(ws, blob.id)?.is_none()
        {
            return Err(abandoned());
        }
    }
    for (((ns, key), new), old) in staged.changes.iter().zip(&plan.old) {
        let (ns, key) = (ns.as_str(), key.as_str());
        if let Some(at) = old.as_ref().and_then(|s| s.expires_at_ms) {
            t.expiry.remove((ws, at, ns, key))?;
        }
        if let Some(blob) = published_blob(new.as_ref(), old.as_ref()) {
            t.loose.remove((ws, blob.id))?;
        }
        if let Some(blob) = retired_blob(new.as_ref(), old.as_ref()) {
            t.retire(ws, &blob, now_ms)?;
        }
        match new {
            Some(row) => {
                t.entries
                    .insert((ws, ns, key), Record::of(row).as_slice())?;
                if let Some(at) = row.expires_at_ms {
                    t.expiry.insert(
                        (ws, at, ns, key),
                        entry_bytes(key, row.stored_len() as usize),
                    )?;
                }
            }
            None => {
                t.entries.remove((ws, ns, key))?;
            }
        }
    }
    t.account(ws, &plan.change)?;
    Ok((staged.outcomes, !staged.changes.is_empty()))
}

/// The blob a change publishes: the new row's, unless the old row already
/// held it (an expiry change keeps the blob).
fn published_blob(new: Option<&Row>, old: Option<&Stored>) -> Option<BlobRef> {
    let blob = new?.blob?;
    (old.and_then(|o| o.blob).map(|b| b.id) != Some(blob.id)).then_some(blob)
}

/// The blob a change lets go of: the old row's, unless the new row keeps it.
fn retired_blob(new: Option<&Row>, old: Option<&Stored>) -> Option<BlobRef> {
    let blob = old?.blob?;
    (new.and_then(|n| n.blob).map(|b| b.id) != Some(blob.id)).then_some(blob)
}

/// What writing staged changes replaces: the stored record under each
/// changed key (in the map's order) and the usage change.
struct Plan {
    old: Vec<Option<Stored>>,
    change: UsageChange,
}

impl Plan {
    fn of(t: &Tables<'_>, ws: &str, changes: &Changes) -> Result<Self, StorageError> {
        let mut plan = Plan {
            old: Vec::with_capacity(changes.len()),
            change: UsageChange::default(),
        };
        for ((ns, key), new) in changes {
            let old = t.stored(ws, ns, key)?;
            plan.change
                .replace(ns, key, old.as_ref().map(|s| s.bytes), new.as_ref());
            plan.old.push(old);
        }
        Ok(plan)
    }
}

/// Removes up to `budget` entries of one namespace; returns what it removed
/// and whether any row went.
pub(crate) fn clear(
    t: &mut Tables<'_>,
    ws: &str,
    ns: &str,
    budget: usize,
    now_ms: u64,
) -> Result<(Cleared, bool), StorageError> {
    let (slots, done) = first_slots(t, ws, Some(ns), budget)?;
    let deleted = remove_entries(t, ws, &slots, now_ms)?;
    Ok((Cleared { deleted, done }, !slots.is_empty()))
}

/// One bounded step of removing a whole workspace: up to `budget` entries
/// in any namespace; the step that leaves none also removes the
/// workspace's usage rows. Versions come from one counter for the whole
/// file, so nothing needs keeping for them.
pub(crate) fn remove_workspace(
    t: &mut Tables<'_>,
    ws: &str,
    budget: usize,
    now_ms: u64,
) -> Result<(Cleared, bool), StorageError> {
    let (slots, done) = first_slots(t, ws, None, budget)?;
    let deleted = remove_entries(t, ws, &slots, now_ms)?;
    let mut changed = !slots.is_empty();
    if done {
        changed |= t.usage.remove(ws)?.is_some();
        let mut stale = Vec::new();
        for row in t.ns_usage.range((ws, "")..)? {
            let key = row?.0;
            let (w, ns) = key.value();
            if w != ws {
                break;
            }
            stale.push(ns.to_owned());
        }
        for ns in &stale {
            t.ns_usage.remove((ws, ns.as_str()))?;
        }
        changed |= !stale.is_empty();
        // Writes in progress go with the workspace (the sweeper collects
        // their chunks; finishing them fails).
        let mut open = Vec::new();
        for row in t.loose.range((ws, 0)..=(ws, u64::MAX))? {
            let (k, v) = row?;
            let (kind, _, bytes) = v.value();
            if Loose::from_code(kind) == Some(Loose::Open) {
                open.push((k.value().1, bytes));
            }
        }
        for (blob, bytes) in &open {
            t.loose
                .insert((ws, *blob), (Loose::Garbage.code(), now_ms, *bytes))?;
        }
        changed |= !open.is_empty();
    }
    Ok((Cleared { deleted, done }, changed))
}

/// The first `budget` (namespace, key) pairs of a workspace (of one of its
/// namespaces if `ns` is given), and whether they are all there are.
fn first_slots(
    t: &Tables<'_>,
    ws: &str,
    ns: Option<&str>,
    budget: usize,
) -> Result<(Vec<(String, String)>, bool), StorageError> {
    let mut slots = Vec::new();
    for row in t.entries.range((ws, ns.unwrap_or(""), "")..)? {
        let (k, _) = row?;
        let (w, n, key) = k.value();
        if w != ws || ns.is_some_and(|ns| n != ns) {
            return Ok((slots, true));
        }
        if slots.len() == budget {
            return Ok((slots, false));
        }
        slots.push((n.to_owned(), key.to_owned()));
    }
    Ok((slots, true))
}

/// Removes entries with their expiry-index rows and their usage; returns
/// how many of them were live (a record that does not decode was listed,
/// so it counts as live).
fn remove_entries(
    t: &mut Tables<'_>,
    ws: &str,
    slots: &[(String, String)],
    now_ms: u64,
) -> Result<u64, StorageError> {
    let mut live = 0;
    let mut change = UsageChange::default();
    for (ns, key) in slots {
        let (ns, key) = (ns.as_str(), key.as_str());
        let Some(guard) = t.entries.remove((ws, ns, key))? else {
            continue;
        };
        let raw = guard.value();
        let record = Record::decode(raw).ok();
        let stored = Stored::of(key, raw);
        if record.is_none_or(|r| r.is_live(now_ms)) {
            live += 1;
        }
        drop(guard);
        if let Some(at) = stored.expires_at_ms {
            t.expiry.remove((ws, at, ns, key))?;
        }
        if let Some(blob) = stored.blob {
            t.retire(ws, &blob, now_ms)?;
        }
        change.remove(ns, stored.bytes);
    }
    t.account(ws, &change)?;
    Ok(live)
}

/// Stores or removes a workspace's quota; returns whether anything changed.
pub(crate) fn store_quota(
    t: &mut Tables<'_>,
    ws: &str,
    quota: Option<Quota>,
) -> Result<bool, StorageError> {
    Ok(match quota {
        Some(q) => t
            .quotas
            .insert(ws, (q.max_keys, q.max_bytes))?
            .is_none_or(|old| old.value() != (q.max_keys, q.max_bytes)),
        None => t.quotas.remove(ws)?.is_some(),
    })
}

/// Entries copied per read of the staging area while publishing.
const PUBLISH_CHUNK: usize = 1000;

/// One chunk of a workspace's entries after `after` (exclusive): (namespace,
/// key, raw record).
type Chunk = Vec<(String, String, Vec<u8>)>;

fn chunk_after(
    t: &Tables<'_>,
    ws: &str,
    after: Option<&(String, String)>,
) -> Result<Chunk, StorageError> {
    let start = after.map_or(("", ""), |(n, k)| (n.as_str(), k.as_str()));
    let mut chunk = Vec::new();
    for row in t.entries.range((ws, start.0, start.1)..)? {
        let (k, v) = row?;
        let (w, ns, key) = k.value();
        if w != ws || chunk.len() == PUBLISH_CHUNK {
            break;
        }
        if after.is_some_and(|(n, k)| n == ns && k == key) {
            continue;
        }
        chunk.push((ns.to_owned(), key.to_owned(), v.value().to_vec()));
    }
    Ok(chunk)
}

/// What publishing would change in the target's usage, and what it would
/// write; reads only.
fn plan_publish(t: &Tables<'_>, p: &Publish) -> Result<(UsageChange, Published), StorageError> {
    let (src, dst) = (p.staging.as_str(), p.workspace.as_str());
    let mut change = UsageChange::default();
    let mut published = Published::default();
    if p.replace {
        for row in t.entries.range((dst, "", "")..)? {
            let (k, v) = row?;
            let (w, ns, key) = k.value();
            if w != dst {
                break;
            }
            change.remove(ns, entry_bytes(key, stored_value_len(v.value()) as usize));
        }
    }
    for row in t.entries.range((src, "", "")..)? {
        let (k, v) = row?;
        let (w, ns, key) = k.value();
        if w != src {
            break;
        }
        let record = Record::decode(v.value())?;
        if !record.is_live(p.now_ms) {
            published.expired += 1;
            continue;
        }
        let old = if p.replace {
            None
        } else {
            t.stored(dst, ns, key)?.map(|s| s.bytes)
        };
        change.added(ns, Stored::of(key, v.value()).bytes);
        if let Some(bytes) = old {
            change.remove(ns, bytes);
        }
        published.written += 1;
    }
    Ok((change, published))
}

/// Publishes a staging area into its workspace (see [`Backend::publish`]
/// (crate::engine::backend::Backend::publish)): checks the quota against
/// the result first, so a refusal writes nothing; then copies in chunks,
/// all inside the writer's one transaction.
pub(crate) fn publish(
    t: &mut Tables<'_>,
    p: &Publish,
    next_version: &mut u64,
) -> Result<(Published, bool), StorageError> {
    let (src, dst) = (p.staging.as_str(), p.workspace.as_str());
    let quota = t.quota(dst, p.quota)?;
    let (mut change, mut published) = plan_publish(t, p)?;
    if check_quota(t.stored_usage(dst)?, change.total(), quota).is_err() {
        if sweep_workspace(t, dst, p.now_ms, usize::MAX)?.0 > 0 {
            (change, published) = plan_publish(t, p)?;
        }
        check_quota(t.stored_usage(dst)?, change.total(), quota)?;
    }
    if p.replace {
        loop {
            let (slots, done) = first_slots(t, dst, None, PUBLISH_CHUNK)?;
            remove_entries(t, dst, &slots, p.now_ms)?;
            if done {
                break;
            }
        }
    }
    let mut change = UsageChange::default();
    let mut after: Option<(String, String)> = None;
    loop {
        let chunk = chunk_after(t, src, after.as_ref())?;
        let Some((ns, key, _)) = chunk.last() else {
            break;
        };
        after = Some((ns.clone(), key.clone()));
        for (ns, key, raw) in &chunk {
            let (ns, key) = (ns.as_str(), key.as_str());
            let record = Record::decode(raw)?;
            if !record.is_live(p.now_ms) {
                continue;
            }
            let old = t.stored(dst, ns, key)?;
            if let Some(at) = old.as_ref().and_then(|s| s.expires_at_ms) {
                t.expiry.remove((dst, at, ns, key))?;
            }
            if let Some(blob) = old.as_ref().and_then(|s| s.blob) {
                t.retire(dst, &blob, p.now_ms)?;
            }
            let version = *next_version;
            *next_version += 1;
            let mut row = record.to_row();
            row.version = version;
            if let Some(blob) = &mut row.blob {
                // The chunks move to the workspace, under an id of its own.
                let id = *next_version;
                *next_version += 1;
                move_chunks(t, (src, blob.id), (dst, id))?;
                blob.id = id;
            }
            let bytes = entry_bytes(key, row.stored_len() as usize);
            t.entries
                .insert((dst, ns, key), Record::of(&row).as_slice())?;
            if let Some(at) = record.expires_at_ms {
                t.expiry.insert((dst, at, ns, key), bytes)?;
            }
            if let Some(old) = old {
                change.remove(ns, old.bytes);
            }
            change.added(ns, bytes);
        }
    }
    t.account(dst, &change)?;
    loop {
        let (step, _) = remove_workspace(t, src, PUBLISH_CHUNK, p.now_ms)?;
        if step.done {
            break;
        }
    }
    Ok((published, true))
}

/// Moves every chunk of blob `from` to blob `to`.
fn move_chunks(t: &mut Tables<'_>, from: (&str, u64), to: (&str, u64)) -> Result<(), StorageError> {
    let mut index = 0;
    loop {
        let data = match t.chunks.remove((from.0, from.1, index))? {
            Some(guard) => guard.value().to_vec(),
            None => return Ok(()),
        };
        t.chunks.insert((to.0, to.1, index), data.as_slice())?;
        index += 1;
    }
}

/// Starts a write in progress (see [`Backend::open_blob`]
/// (crate::engine::backend::Backend::open_blob)).
pub(crate) fn open_blob(
    t: &mut Tables<'_>,
    ws: &str,
    idle_until_ms: u64,
    max_open: u32,
    next_version: &mut u64,
) -> Result<(u64, bool), StorageError> {
    let (open, _) = t.open_writes(ws)?;
    if open >= max_open {
        return Err(too_many_writers(max_open));
    }
    let id = *next_version;
    *next_version += 1;
    t.loose
        .insert((ws, id), (Loose::Open.code(), idle_until_ms, 0))?;
    Ok((id, true))
}

/// Stores one chunk of a write in progress (see [`Backend::put_chunk`]
/// (crate::engine::backend::Backend::put_chunk)).
pub(crate) fn put_chunk(t: &mut Tables<'_>, chunk: &ChunkPut) -> Result<((), bool), StorageError> {
    let ws = &*chunk.workspace;
    let Some(before) = t.open_write(ws, chunk.blob)? else {
        return Err(abandoned());
    };
    let quota = t.quota(ws, chunk.quota)?;
    let (_, open_bytes) = t.open_writes(ws)?;
    let after = t
        .stored_usage(ws)?
        .bytes
        .saturating_add(open_bytes - before.min(open_bytes))
        .saturating_add(chunk.stored_after);
    if after > quota.max_bytes {
        return Err(StorageError::QuotaExceeded(format!(
            "the workspace would hold {after} bytes with its stream writes in progress and the \
             replaced streamed values kept for their readers, its quota is {}",
            quota.max_bytes
        )));
    }
    t.chunks
        .insert((ws, chunk.blob, chunk.index), chunk.data.as_slice())?;
    t.loose.insert(
        (ws, chunk.blob),
        (Loose::Open.code(), chunk.idle_until_ms, chunk.stored_after),
    )?;
    Ok(((), true))
}

/// Removes a write in progress and its chunks.
pub(crate) fn drop_blob(
    t: &mut Tables<'_>,
    ws: &str,
    blob: u64,
) -> Result<((), bool), StorageError> {
    if t.open_write(ws, blob)?.is_none() {
        return Ok(((), false));
    }
    t.drop_chunks(ws, blob, usize::MAX)?;
    t.loose.remove((ws, blob))?;
    Ok(((), true))
}

/// Removes the loose blobs whose time is up (see [`Backend::collect_blobs`]
/// (crate::engine::backend::Backend::collect_blobs)), up to about `budget`
/// chunks.
pub(crate) fn collect_blobs(
    t: &mut Tables<'_>,
    now_ms: u64,
    budget: usize,
) -> Result<(u64, bool), StorageError> {
    let mut due = Vec::new();
    for row in t.loose.iter()? {
        let (k, v) = row?;
        let (ws, blob) = k.value();
        if v.value().1 <= now_ms {
            due.push((ws.to_owned(), blob));
        }
    }
    let mut removed = 0;
    let mut changed = false;
    for (ws, blob) in due {
        let left = budget.saturating_sub(removed as usize);
        if left == 0 {
            break;
        }
        let (n, done) = t.drop_chunks(&ws, blob, left)?;
        removed += n;
        changed |= n > 0;
        if done {
            t.loose.remove((ws.as_str(), blob))?;
            changed = true;
        }
    }
    Ok((removed, changed))
}
