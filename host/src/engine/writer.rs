//! The single writer thread: group commit of concurrent write requests, and
//! the background sweep of expired entries.
//!
//! redb allows one write transaction at a time. Rather than have callers queue
//! for it, every write is sent to one thread, which takes all requests waiting
//! at that moment (up to [`MAX_GROUP`]), applies them in arrival order in one
//! transaction, commits once (one fsync when durable), and only then answers
//! each request.
//!
//! A request is a list of ops applied all-or-nothing. Its ops are first
//! *staged*: each reads the current state (the table, or what an earlier op of
//! the same request staged), checks its condition and computes the new entry,
//! writing nothing. Then the request's usage change is checked against the
//! workspace quota, and only then are the staged entries written. So a request
//! that fails leaves no trace in the shared transaction; only a backend
//! failure aborts the whole group, and then every request in it gets that
//! error and nothing of the group is written.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{ReadableTable, Table};

use super::record::{Record, parse_counter, stored_value_len};
use super::{
    Action, Cleared, Clock, Durability, ENTRIES, EXPIRY, Entry, EntryKey, ExpiryKey, Limits, META,
    META_NEXT_VERSION, NS_USAGE, Op, Outcome, Quota, StorageError, USAGE, expired_range,
};

/// Most requests committed in one transaction.
const MAX_GROUP: usize = 512;
/// In relaxed mode, the longest time a commit stays non-durable.
const RELAXED_FLUSH: Duration = Duration::from_secs(1);
/// Most expired entries one sweep pass removes.
pub(crate) const SWEEP_BUDGET: usize = 1000;
/// Most workspaces one sweep pass looks at.
const SWEEP_WORKSPACES: usize = 1000;

/// What the engine and its writer share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub limits: Limits,
    pub quotas: RwLock<std::collections::HashMap<String, Quota>>,
    pub clock: Arc<dyn Clock>,
}

impl Shared {
    pub fn quota(&self, workspace: &str) -> Quota {
        self.quotas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(workspace)
            .copied()
            .unwrap_or_else(|| self.limits.default_quota())
    }
}

/// What a request asks the writer to do.
pub(crate) enum Work {
    /// Apply ops to one workspace, all-or-nothing.
    Ops { workspace: Arc<str>, ops: Vec<Op> },
    /// Remove up to `budget` entries of one namespace.
    Clear {
        workspace: Arc<str>,
        namespace: String,
        budget: usize,
    },
    /// One sweep pass over the workspaces from `from` (inclusive) on.
    Sweep { from: Option<String> },
}

/// What the writer did for a request.
pub(crate) enum Done {
    Ops(Vec<Outcome>),
    Cleared(Cleared),
    Swept(SweepPass),
}

struct Job {
    work: Work,
    reply: SyncSender<Result<Done, StorageError>>,
}

/// What one sweep pass did.
#[derive(Debug, Clone, Default)]
pub(crate) struct SweepPass {
    pub removed: u64,
    /// Where the next pass starts; `None` when this one reached the end.
    pub next: Option<String>,
}

/// Handle to the writer thread; dropping it stops the thread after the
/// requests already sent are committed, and waits for it (so the database
/// file is closed when the last `Storage` is gone).
pub(crate) struct Writer {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn spawn(
        db: Arc<redb::Database>,
        shared: Arc<Shared>,
        durability: Durability,
        sweep_every: Option<Duration>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cubby-writer".into())
            .spawn(move || run(&db, &shared, durability, sweep_every, rx))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Sends a request and blocks until it is committed (or refused).
    pub fn submit(&self, work: Work) -> Result<Done, StorageError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .as_ref()
            .ok_or(StorageError::Closed)?
            .send(Job { work, reply })
            .map_err(|_| StorageError::Closed)?;
        answer.recv().map_err(|_| StorageError::Closed)?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            // A panic on the writer thread has already been reported; there
            // is nothing more to do with it here.
            let _ = thread.join();
        }
    }
}

fn run(
    db: &redb::Database,
    shared: &Shared,
    durability: Durability,
    sweep_every: Option<Duration>,
    rx: Receiver<Job>,
) {
    let mut timers = Timers::new(durability, sweep_every);
    loop {
        let deadline = timers.deadline();
        let first = match deadline {
            None => rx.recv().ok(),
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        match first {
            Some(first) => {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(job) => group.push(job),
                        Err(_) => break,
                    }
                }
                let durable = timers.next_commit_durable();
                match commit_group(db, shared, group, durable) {
                    Ok(()) => timers.committed(durable),
                    Err(e) => tracing::error!(error = ?e, "write group failed"),
                }
            }
            None if deadline.is_none() => break, // every sender is gone
            None => {}                           // a timer is due
        }
        // Timers are checked after every wake-up: under constant load the
        // channel is never idle.
        timers.run_due(db, shared);
    }
    if timers.pending_flush {
        flush(db);
    }
}

/// The writer's two timers: the relaxed-mode flush and the background sweep.
struct Timers {
    durability: Durability,
    /// When the last durable commit (or flush attempt) was made.
    last_flush: Instant,
    /// Whether non-durable commits have been made since.
    pending_flush: bool,
    sweep_every: Option<Duration>,
    next_sweep: Option<Instant>,
    /// Where the next sweep pass starts.
    sweep_from: Option<String>,
}

impl Timers {
    fn new(durability: Durability, sweep_every: Option<Duration>) -> Self {
        let now = Instant::now();
        Self {
            durability,
            last_flush: now,
            pending_flush: false,
            sweep_every,
            next_sweep: sweep_every.map(|every| now + every),
            sweep_from: None,
        }
    }

    /// When the writer must wake up even if no request arrives.
    fn deadline(&self) -> Option<Instant> {
        let flush = self.pending_flush.then(|| self.last_flush + RELAXED_FLUSH);
        [flush, self.next_sweep].into_iter().flatten().min()
    }

    /// Whether the next group commit is fsync'd: always when durable, and in
    /// relaxed mode once the last flush is a second old.
    fn next_commit_durable(&self) -> bool {
        self.durability == Durability::Durable || self.last_flush.elapsed() >= RELAXED_FLUSH
    }

    fn committed(&mut self, durable: bool) {
        if durable {
            self.last_flush = Instant::now();
        }
        // A durable commit makes every earlier one durable.
        self.pending_flush = !durable;
    }

    /// Runs a sweep pass and a relaxed flush if they are due.
    fn run_due(&mut self, db: &redb::Database, shared: &Shared) {
        if let (Some(every), Some(at)) = (self.sweep_every, self.next_sweep)
            && Instant::now() >= at
        {
            let durable = self.durability == Durability::Durable;
            match sweep_commit(db, shared, self.sweep_from.take(), durable) {
                Ok(pass) => {
                    if pass.removed > 0 {
                        tracing::debug!(removed = pass.removed, "swept expired entries");
                        self.pending_flush |= !durable;
                    }
                    // Resume where this pass stopped; sweep again at once if
                    // it stopped for lack of budget.
                    let again = pass.next.is_some() && pass.removed > 0;
                    self.sweep_from = pass.next;
                    self.next_sweep = Some(if again {
                        Instant::now()
                    } else {
                        Instant::now() + every
                    });
                }
                Err(e) => {
                    tracing::error!(error = ?e, "sweeping expired entries failed");
                    self.next_sweep = Some(Instant::now() + every);
                }
            }
        }
        if self.pending_flush && self.last_flush.elapsed() >= RELAXED_FLUSH {
            // A failed flush is retried a second later, not at once.
            self.pending_flush = !flush(db);
            self.last_flush = Instant::now();
        }
    }
}

/// Makes every earlier non-durable commit durable (an empty durable commit);
/// returns whether that worked.
fn flush(db: &redb::Database) -> bool {
    let result = (|| -> Result<(), StorageError> {
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    })();
    if let Err(e) = &result {
        tracing::error!(error = ?e, "flushing relaxed commits failed");
    }
    result.is_ok()
}

/// The tables a write transaction works on.
pub(crate) struct Tables<'t> {
    pub entries: Table<'t, EntryKey, &'static [u8]>,
    pub usage: Table<'t, &'static str, (u64, u64)>,
    pub ns_usage: Table<'t, (&'static str, &'static str), (u64, u64)>,
    pub expiry: Table<'t, ExpiryKey, u64>,
    pub now_ms: u64,
}

fn begin(db: &redb::Database, durable: bool) -> Result<redb::WriteTransaction, StorageError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    })?;
    Ok(txn)
}

pub(crate) fn open_tables<'t>(
    txn: &'t redb::WriteTransaction,
    now_ms: u64,
) -> Result<Tables<'t>, StorageError> {
    Ok(Tables {
        entries: txn.open_table(ENTRIES)?,
        usage: txn.open_table(USAGE)?,
        ns_usage: txn.open_table(NS_USAGE)?,
        expiry: txn.open_table(EXPIRY)?,
        now_ms,
    })
}

/// Applies a group in one transaction and answers every job. A backend
/// failure aborts the group (nothing committed) and is sent to every job.
fn commit_group(
    db: &redb::Database,
    shared: &Shared,
    group: Vec<Job>,
    durable: bool,
) -> Result<(), StorageError> {
    let (works, replies): (Vec<Work>, Vec<_>) =
        group.into_iter().map(|j| (j.work, j.reply)).unzip();
    match apply_group(db, shared, works, durable) {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                // The caller may have gone away; a committed write stays
                // committed.
                let _ = reply.send(result);
            }
            Ok(())
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
            Err(e)
        }
    }
}

/// The outer error is a backend failure (nothing committed); the inner
/// results are per request.
fn apply_group(
    db: &redb::Database,
    shared: &Shared,
    works: Vec<Work>,
    durable: bool,
) -> Result<Vec<Result<Done, StorageError>>, StorageError> {
    let txn = begin(db, durable)?;
    let mut results = Vec::with_capacity(works.len());
    {
        let mut meta = txn.open_table(META)?;
        let mut next_version = meta.get(META_NEXT_VERSION)?.map_or(1, |g| g.value());
        let mut t = open_tables(&txn, shared.clock.now_ms())?;
        for work in works {
            let result = match work {
                Work::Ops { workspace, ops } => {
                    execute(&mut t, shared, &workspace, ops, &mut next_version).map(Done::Ops)
                }
                Work::Clear {
                    workspace,
                    namespace,
                    budget,
                } => clear(&mut t, &workspace, &namespace, budget).map(Done::Cleared),
                Work::Sweep { from } => sweep_pass(&mut t, from).map(Done::Swept),
            };
            // A backend failure aborts the whole group; any other error
            // belongs to the one request, which wrote nothing.
            if let Err(e @ StorageError::Backend(_)) = result {
                return Err(e);
            }
            results.push(result);
        }
        meta.insert(META_NEXT_VERSION, next_version)?;
    }
    txn.commit()?;
    Ok(results)
}

/// Runs one sweep pass in a transaction of its own; commits only when it
/// removed something.
fn sweep_commit(
    db: &redb::Database,
    shared: &Shared,
    from: Option<String>,
    durable: bool,
) -> Result<SweepPass, StorageError> {
    let txn = begin(db, durable)?;
    let pass = {
        let mut t = open_tables(&txn, shared.clock.now_ms())?;
        sweep_pass(&mut t, from)?
    };
    if pass.removed > 0 {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(pass)
}

/// A live entry, owned.
#[derive(Debug, Clone)]
struct Live {
    value: Vec<u8>,
    version: u64,
    expires_at_ms: Option<u64>,
}

impl Live {
    fn to_entry(&self, now_ms: u64) -> Entry {
        let record = Record {
            version: self.version,
            expires_at_ms: self.expires_at_ms,
            value: &self.value,
        };
        record.to_entry(now_ms)
    }
}

/// The live entry stored under a key (`None` if missing or expired).
fn load(t: &Tables<'_>, ws: &str, ns: &str, key: &str) -> Result<Option<Live>, StorageError> {
    let Some(guard) = t.entries.get((ws, ns, key))? else {
        return Ok(None);
    };
    let record = Record::decode(guard.value())?;
    Ok((!record.is_expired(t.now_ms)).then(|| Live {
        value: record.value.to_vec(),
        version: record.version,
        expires_at_ms: record.expires_at_ms,
    }))
}

fn deadline(now_ms: u64, ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|d| now_ms.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

/// Stages and then writes the ops of one request, all-or-nothing.
fn execute(
    t: &mut Tables<'_>,
    shared: &Shared,
    ws: &str,
    ops: Vec<Op>,
    next_version: &mut u64,
) -> Result<Vec<Outcome>, StorageError> {
    let now = t.now_ms;
    let mut staged: BTreeMap<(String, String), Option<Live>> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut version = || {
        let v = *next_version;
        *next_version += 1;
        v
    };
    for (index, op) in ops.into_iter().enumerate() {
        let slot = (op.namespace, op.key);
        let current = match staged.get(&slot) {
            Some(state) => state.clone(),
            // An unconditional set replaces whatever is there, even a record
            // that does not decode; an unconditional delete removes it.
            None if op.condition.is_none() && matches!(op.action, Action::Set { .. }) => None,
            None if op.condition.is_none() && matches!(op.action, Action::Delete) => {
                match load(t, ws, &slot.0, &slot.1) {
                    Err(StorageError::Corrupt(_)) => {
                        staged.insert(slot, None);
                        outcomes.push(Outcome::Deleted(true));
                        continue;
                    }
                    other => other?,
                }
            }
            None => load(t, ws, &slot.0, &slot.1)?,
        };
        if let Some(condition) = &op.condition {
            let now_view = current.as_ref().map(|c| (c.value.as_slice(), c.version));
            if !condition.holds(now_view) {
                return Err(StorageError::Conflict {
                    index,
                    current: current.map(|c| c.to_entry(now)),
                });
            }
        }
        // `None`: the op changes nothing; `Some(state)`: the key's new state.
        let (next, outcome) = match op.action {
            Action::Check => (None, Outcome::Checked),
            Action::Set { value, ttl } => {
                let v = version();
                let live = Live {
                    value,
                    version: v,
                    expires_at_ms: deadline(now, ttl),
                };
                (Some(Some(live)), Outcome::Set { version: v })
            }
            Action::Delete => {
                let existed = current.is_some();
                (Some(None), Outcome::Deleted(existed))
            }
            Action::Increment { delta, ttl } => {
                let (old, expires_at_ms) = match &current {
                    None => (0, deadline(now, ttl)),
                    Some(c) => (
                        parse_counter(&c.value).ok_or(StorageError::NotACounter)?,
                        c.expires_at_ms,
                    ),
                };
                let n = old.checked_add(delta).ok_or(StorageError::Overflow)?;
                let live = Live {
                    value: n.to_string().into_bytes(),
                    version: version(),
                    expires_at_ms,
                };
                (Some(Some(live)), Outcome::Incremented(n))
            }
            Action::Expire(ttl) => match current {
                None => (None, Outcome::ExpiryChanged(false)),
                Some(c) => {
                    let live = Live {
                        expires_at_ms: deadline(now, ttl),
                        ..c
                    };
                    (Some(Some(live)), Outcome::ExpiryChanged(true))
                }
            },
            Action::Renew(ttl) => match current {
                None => (None, Outcome::Renewed(None)),
                Some(c) => {
                    let live = Live {
                        expires_at_ms: deadline(now, Some(ttl)),
                        ..c
                    };
                    let entry = live.to_entry(now);
                    (Some(Some(live)), Outcome::Renewed(Some(entry)))
                }
            },
        };
        if let Some(next) = next {
            staged.insert(slot, next);
        }
        outcomes.push(outcome);
    }
    write_staged(t, shared, ws, &staged)?;
    Ok(outcomes)
}

/// What a stored record (live or not) accounts for.
struct Stored {
    bytes: u64,
    expires_at_ms: Option<u64>,
}

fn stored(t: &Tables<'_>, ws: &str, ns: &str, key: &str) -> Result<Option<Stored>, StorageError> {
    Ok(t.entries.get((ws, ns, key))?.map(|g| {
        let raw = g.value();
        Stored {
            bytes: key.len() as u64 + stored_value_len(raw),
            expires_at_ms: Record::decode(raw).ok().and_then(|r| r.expires_at_ms),
        }
    }))
}

/// What writing `staged` replaces and changes: the stored record under each
/// staged key (in the map's order), and the change in (keys, bytes) per
/// namespace.
struct Plan {
    old: Vec<Option<Stored>>,
    change: BTreeMap<String, (i64, i64)>,
}

fn plan_writes(
    t: &Tables<'_>,
    ws: &str,
    staged: &BTreeMap<(String, String), Option<Live>>,
) -> Result<Plan, StorageError> {
    let mut plan = Plan {
        old: Vec::with_capacity(staged.len()),
        change: BTreeMap::new(),
    };
    for ((ns, key), new) in staged {
        let old = stored(t, ws, ns, key)?;
        let d = plan.change.entry(ns.clone()).or_default();
        if let Some(old) = &old {
            d.0 -= 1;
            d.1 -= old.bytes as i64;
        }
        if let Some(new) = new {
            d.0 += 1;
            d.1 += (key.len() + new.value.len()) as i64;
        }
        plan.old.push(old);
    }
    Ok(plan)
}

fn apply_delta(value: u64, delta: i64) -> u64 {
    value.saturating_add_signed(delta)
}

/// Checks the workspace quota against `change`; `Ok(None)` when it holds,
/// otherwise the reason.
fn over_quota(
    t: &Tables<'_>,
    quota: Quota,
    ws: &str,
    change: &BTreeMap<String, (i64, i64)>,
) -> Result<Option<String>, StorageError> {
    let (keys, bytes) = t.usage.get(ws)?.map_or((0, 0), |g| g.value());
    let (dk, db) = change
        .values()
        .fold((0i64, 0i64), |(k, b), (dk, db)| (k + dk, b + db));
    let (new_keys, new_bytes) = (apply_delta(keys, dk), apply_delta(bytes, db));
    // A write that does not grow usage is allowed even over a quota (which
    // the host may have lowered), so a full workspace can always shrink.
    if new_keys > keys && new_keys > quota.max_keys {
        return Ok(Some(format!(
            "the workspace would hold {new_keys} keys, its quota is {}",
            quota.max_keys
        )));
    }
    if new_bytes > bytes && new_bytes > quota.max_bytes {
        return Ok(Some(format!(
            "the workspace would hold {new_bytes} bytes, its quota is {}",
            quota.max_bytes
        )));
    }
    Ok(None)
}

fn write_staged(
    t: &mut Tables<'_>,
    shared: &Shared,
    ws: &str,
    staged: &BTreeMap<(String, String), Option<Live>>,
) -> Result<(), StorageError> {
    let quota = shared.quota(ws);
    let mut plan = plan_writes(t, ws, staged)?;
    if over_quota(t, quota, ws, &plan.change)?.is_some() {
        // Stored usage still counts expired entries the sweeper has not
        // reached; remove this workspace's before deciding.
        if sweep_workspace(t, ws, usize::MAX)?.0 > 0 {
            plan = plan_writes(t, ws, staged)?;
        }
        if let Some(why) = over_quota(t, quota, ws, &plan.change)? {
            return Err(StorageError::QuotaExceeded(why));
        }
    }
    for (((ns, key), new), old) in staged.iter().zip(plan.old) {
        let (ns, key) = (ns.as_str(), key.as_str());
        if let Some(at) = old.and_then(|s| s.expires_at_ms) {
            t.expiry.remove((ws, at, ns, key))?;
        }
        match new {
            Some(live) => {
                let record = Record::encode(live.version, live.expires_at_ms, &live.value);
                t.entries.insert((ws, ns, key), record.as_slice())?;
                if let Some(at) = live.expires_at_ms {
                    let bytes = (key.len() + live.value.len()) as u64;
                    t.expiry.insert((ws, at, ns, key), bytes)?;
                }
            }
            None => {
                t.entries.remove((ws, ns, key))?;
            }
        }
    }
    for (ns, (dk, db)) in plan.change {
        account(t, ws, &ns, dk, db)?;
    }
    Ok(())
}

/// Adds a change to the stored usage of a workspace and one of its
/// namespaces. A namespace's row is removed when it holds nothing.
pub(crate) fn account(
    t: &mut Tables<'_>,
    ws: &str,
    ns: &str,
    dk: i64,
    db: i64,
) -> Result<(), StorageError> {
    if dk == 0 && db == 0 {
        return Ok(());
    }
    let (keys, bytes) = t.usage.get(ws)?.map_or((0, 0), |g| g.value());
    t.usage
        .insert(ws, (apply_delta(keys, dk), apply_delta(bytes, db)))?;
    let (keys, bytes) = t.ns_usage.get((ws, ns))?.map_or((0, 0), |g| g.value());
    let (keys, bytes) = (apply_delta(keys, dk), apply_delta(bytes, db));
    if keys == 0 {
        t.ns_usage.remove((ws, ns))?;
    } else {
        t.ns_usage.insert((ws, ns), (keys, bytes))?;
    }
    Ok(())
}

/// Removes up to `budget` expired entries of one workspace through the expiry
/// index; returns how many, and whether more are left.
pub(crate) fn sweep_workspace(
    t: &mut Tables<'_>,
    ws: &str,
    budget: usize,
) -> Result<(u64, bool), StorageError> {
    let mut due = Vec::new();
    for row in t.expiry.range(expired_range(ws, t.now_ms))? {
        if due.len() > budget {
            break;
        }
        let (k, _) = row?;
        let (_, at, ns, key) = k.value();
        due.push((at, ns.to_owned(), key.to_owned()));
    }
    let more = due.len() > budget;
    due.truncate(budget);
    finish_sweep(t, ws, due).map(|n| (n, more))
}

fn finish_sweep(
    t: &mut Tables<'_>,
    ws: &str,
    due: Vec<(u64, String, String)>,
) -> Result<u64, StorageError> {
    let mut removed = 0;
    for (at, ns, key) in due {
        t.expiry.remove((ws, at, ns.as_str(), key.as_str()))?;
        // The index row is only trusted if the entry still has that deadline;
        // otherwise the row was stale and is simply dropped.
        if let Some(s) = stored(t, ws, &ns, &key)?
            && s.expires_at_ms == Some(at)
        {
            t.entries.remove((ws, ns.as_str(), key.as_str()))?;
            account(t, ws, &ns, -1, -(s.bytes as i64))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// One bounded pass of the background sweep, over the workspaces from `from`
/// (inclusive) on.
fn sweep_pass(t: &mut Tables<'_>, from: Option<String>) -> Result<SweepPass, StorageError> {
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
        let budget = SWEEP_BUDGET - pass.removed as usize;
        let (removed, more) = sweep_workspace(t, &id, budget)?;
        pass.removed += removed;
        if more || pass.removed as usize >= SWEEP_BUDGET {
            pass.next = Some(id);
            return Ok(pass);
        }
    }
    pass.next = resume;
    Ok(pass)
}

/// Removes up to `budget` entries of one namespace.
fn clear(t: &mut Tables<'_>, ws: &str, ns: &str, budget: usize) -> Result<Cleared, StorageError> {
    let mut keys = Vec::new();
    let mut done = true;
    for row in t.entries.range((ws, ns, "")..)? {
        let (k, _) = row?;
        let (w, n, key) = k.value();
        if w != ws || n != ns {
            break;
        }
        if keys.len() == budget {
            done = false;
            break;
        }
        keys.push(key.to_owned());
    }
    let mut deleted = 0;
    let (mut dk, mut db) = (0i64, 0i64);
    for key in keys {
        let Some(guard) = t.entries.remove((ws, ns, key.as_str()))? else {
            continue;
        };
        let raw = guard.value();
        let record = Record::decode(raw).ok();
        let bytes = key.len() as u64 + stored_value_len(raw);
        let at = record.and_then(|r| r.expires_at_ms);
        if record.is_none_or(|r| !r.is_expired(t.now_ms)) {
            deleted += 1;
        }
        drop(guard);
        if let Some(at) = at {
            t.expiry.remove((ws, at, ns, key.as_str()))?;
        }
        dk -= 1;
        db -= bytes as i64;
    }
    account(t, ws, ns, dk, db)?;
    Ok(Cleared { deleted, done })
}
