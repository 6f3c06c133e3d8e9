//! Removing expired entries through the per-workspace expiry index, in
//! bounded passes. Runs inside the writer's transaction like any request.

use redb::ReadableTable;

use super::schema::expired_range;
use super::tables::Tables;
use crate::engine::StorageError;
use crate::engine::accounting::UsageChange;
use crate::engine::backend::SweepPass;

/// Most workspaces one sweep pass looks at.
const SWEEP_WORKSPACES: usize = 1000;

/// Removes up to `budget` entries of one workspace expired at `now_ms`;
/// returns how many, and whether more are left.
pub(crate) fn sweep_workspace(
    t: &mut Tables<'_>,
    ws: &str,
    now_ms: u64,
    budget: usize,
) -> Result<(u64, bool), StorageError> {
    let mut due = Vec::new();
    for row in t.expiry.range(expired_range(ws, now_ms))? {
        if due.len() > budget {
            break;
        }
        let (k, _) = row?;
        let (_, at, ns, key) = k.value();
        due.push((at, ns.to_owned(), key.to_owned()));
    }
    let more = due.len() > budget;
    due.truncate(budget);
    let mut removed = 0;
    let mut change = UsageChange::default();
    for (at, ns, key) in due {
        t.expiry.remove((ws, at, ns.as_str(), key.as_str()))?;
        // The index row is only trusted if the entry still has that deadline;
        // otherwise the row was stale and is simply dropped.
        if let Some(s) = t.stored(ws, &ns, &key)?
            && s.expires_at_ms == Some(at)
        {
            t.entries.remove((ws, ns.as_str(), key.as_str()))?;
            if let Some(blob) = s.blob {
                t.retire(ws, &blob, now_ms)?;
            }
            change.remove(&ns, s.bytes);
            removed += 1;
        }
    }
    t.account(ws, &change)?;
    Ok((removed, more))
}

/// One bounded pass over the workspaces from `from` (inclusive) on: removes
/// at most `budget` entries and looks at most at [`SWEEP_WORKSPACES`]
/// workspaces. The resume token is the workspace to start the next pass at.
pub(crate) fn sweep_pass(
    t: &mut Tables<'_>,
    from: Option<String>,
    budget: usize,
    now_ms: u64,
) -> Result<SweepPass, StorageError> {
    let mut ids = Vec::new();
    {
        let range = match &from {
            Some(from) => t.usage.range(from.as_str()..)?,
            None => t.usage.range::<&str>(..)?,
        };
        for row in range.take(SWEEP_WORKSPACES + 1) {
            ids.push(row?.0.value().to_owned());
        }
    }
    let resume = (ids.len() > SWEEP_WORKSPACES).then(|| ids.pop()).flatten();
    let mut pass = SweepPass::default();
    for id in ids {
        let left = budget.saturating_sub(pass.removed as usize);
        let (removed, more) = sweep_workspace(t, &id, now_ms, left)?;
        pass.removed += removed;
        if more || pass.removed as usize >= budget {
            pass.resume = Some(id);
            return Ok(pass);
        }
    }
    pass.resume = resume;
    Ok(pass)
}
