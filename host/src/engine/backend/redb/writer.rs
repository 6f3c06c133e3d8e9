//! The single writer thread: group commit of concurrent requests.
//!
//! redb allows one write transaction at a time. Rather than have callers queue
//! for it, every request is sent to one thread, which takes all requests
//! waiting at that moment (up to [`MAX_GROUP`]), applies them in arrival order
//! in one transaction, commits once (one fsync when durable), and only then
//! answers each request.
//!
//! A request that fails (a condition, a quota) leaves no trace in the shared
//! transaction: it is staged before anything is written (`apply.rs`). Only
//! a backend failure aborts the whole group, and then every request in it
//! gets that error and nothing of the group is written. A group that changed
//! nothing is aborted rather than committed, so an idle sweeper costs no
//! fsync.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::ReadableTable;

use super::handle::Handle;
use super::schema::{META, META_NEXT_VERSION};
use super::snapshot::Snapshots;
use super::tables::Tables;
use crate::engine::backend::Counters;
use crate::engine::{Durability, StorageError};

/// Most requests committed in one transaction.
const MAX_GROUP: usize = 512;
/// The longest pause between arrivals while a durable group gathers.
const GATHER_GAP: Duration = Duration::from_micros(50);
/// In relaxed mode, the longest time a commit stays non-durable.
const RELAXED_FLUSH: Duration = Duration::from_secs(1);

/// Whether a request is a write request, counted in
/// [`CommitStats::writes`](crate::ops::CommitStats), upkeep (clearing,
/// sweeping, quotas, publishing an import, starting or collecting stream
/// writes), or a chunk of a stream write in progress, which need not be
/// durable (the publish that follows it is, and makes it so): a group of
/// chunks alone is committed without an fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Write,
    Upkeep,
    Chunk,
}

/// A request as the writer runs it: applied to the group's tables with the
/// next free version; the outer error is a backend failure, which aborts
/// the whole group.
type Apply =
    Box<dyn for<'t> FnOnce(&mut Tables<'t>, &mut u64) -> Result<Applied, StorageError> + Send>;

/// What applying a request left: whether it changed anything, and its
/// answer, sent once the group has committed.
struct Applied {
    changed: bool,
    answer: Box<dyn FnOnce() + Send>,
}

struct Job {
    kind: Kind,
    apply: Apply,
    /// Answers the request with its group's failure instead.
    fail: Box<dyn FnOnce(StorageError) + Send>,
}

/// What the writer shares with the readers.
pub(crate) struct Shared {
    pub db: Arc<Handle>,
    pub snapshots: Arc<Snapshots>,
    pub counters: Arc<Counters>,
}

/// Handle to the writer thread; dropping it stops the thread after the
/// requests already sent are committed, and waits for it (so the database
/// file is closed when the last handle is gone).
pub(crate) struct Writer {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer; after each commit it retires the shared read
    /// snapshot before answering, and counts what it committed.
    pub fn spawn(shared: Shared, durability: Durability) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cubby-writer".into())
            .spawn(move || run(&shared, durability, rx))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Sends a request and blocks until its group is committed (or the
    /// request refused). `apply` runs on the writer thread, inside the
    /// group's transaction, with the next free version; it returns its
    /// answer and whether it changed anything. A request that fails with
    /// anything but [`StorageError::Backend`] must have written nothing: it
    /// leaves no trace in the shared transaction and gets its error; a
    /// backend failure fails the whole group.
    pub fn submit<T: Send + 'static>(
        &self,
        kind: Kind,
        apply: impl for<'t> FnOnce(&mut Tables<'t>, &mut u64) -> Result<(T, bool), StorageError>
        + Send
        + 'static,
    ) -> Result<T, StorageError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let failed = reply.clone();
        let job = Job {
            kind,
            apply: Box::new(move |tables, next_version| {
                let (result, changed) = match apply(tables, next_version) {
                    Err(e @ (StorageError::Backend(_) | StorageError::DiskFull(_))) => {
                        return Err(e);
                    }
                    Err(e) => (Err(e), false),
                    Ok((value, changed)) => (Ok(value), changed),
                };
                Ok(Applied {
                    changed,
                    answer: Box::new(move || {
                        // The caller may have gone away; a committed write
                        // stays committed.
                        let _ = reply.send(result);
                    }),
                })
            }),
            fail: Box::new(move |e| {
                let _ = failed.send(Err(e));
            }),
        };
        self.tx
            .as_ref()
            .ok_or(StorageError::Closed)?
            .send(job)
            .map_err(|_| StorageError::Closed)?;
        answer.recv().map_err(|_| StorageError::Closed)?
    }

    /// Wakes the writer without a request, so that it reopens a database
    /// that a read found broken.
    pub fn wake(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job {
                kind: Kind::Upkeep,
                apply: Box::new(|_, _| {
                    Ok(Applied {
                        changed: false,
                        answer: Box::new(|| {}),
                    })
                }),
                fail: Box::new(|_| {}),
            });
        }
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

fn run(shared: &Shared, durability: Durability, rx: Receiver<Job>) {
    let mut flush = Flush::new(durability);
    // How many requests the last group answered: about how many writers
    // are waiting to send their next one.
    let mut expected = 1;
    loop {
        let first = match flush.deadline() {
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => break, // every sender is gone
            },
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    flush.run_due(shared);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        let durable = flush.next_commit_durable();
        let group = gather(first, &rx, if durable { expected } else { 1 });
        expected = group.len();
        let durable = durable && group.iter().any(|job| job.kind != Kind::Chunk);
        if let Err(e) = recover(shared) {
            for job in group {
                (job.fail)(e.clone());
            }
            continue;
        }
        match commit_group(shared, group, durable) {
            Ok(true) => flush.committed(durable),
            Ok(false) => {}
            Err(e) => tracing::error!(error = ?e, "write group failed"),
        }
        // Checked after every group: under constant load the channel is
        // never idle.
        flush.run_due(shared);
    }
    if flush.pending {
        flush_now(shared);
    }
}

/// The group to commit: `first`, every request already waiting, and, when
/// fewer than `expected` are there, those that keep arriving with less than
/// [`GATHER_GAP`] between them until `expected` are there.
///
/// Writers answered by the last commit need a moment to send their next
/// request (on a busy machine, some need to be scheduled first); without
/// waiting, the writer would commit the first few alone and pay a whole
/// fsync for them while the rest queue behind it. A lone writer
/// (`expected` 1) never waits; a durable commit takes hundreds of
/// microseconds, so the wait, bounded by the gap, costs a small fraction.
fn gather(first: Job, rx: &Receiver<Job>, expected: usize) -> Vec<Job> {
    let mut group = vec![first];
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    while group.len() < expected.min(MAX_GROUP) {
        match rx.recv_timeout(GATHER_GAP) {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    group
}

/// Relaxed mode's timer: commits are made durable at least once a second.
struct Flush {
    durability: Durability,
    /// When the last durable commit (or flush attempt) was made.
    last: Instant,
    /// Whether non-durable commits have been made since.
    pending: bool,
}

impl Flush {
    fn new(durability: Durability) -> Self {
        Self {
            durability,
            last: Instant::now(),
            pending: false,
        }
    }

    /// When the writer must wake up even if no request arrives.
    fn deadline(&self) -> Option<Instant> {
        self.pending.then(|| self.last + RELAXED_FLUSH)
    }

    /// Whether the next group commit is fsync'd: always when durable, and in
    /// relaxed mode once the last flush is a second old.
    fn next_commit_durable(&self) -> bool {
        self.durability == Durability::Durable || self.last.elapsed() >= RELAXED_FLUSH
    }

    fn committed(&mut self, durable: bool) {
        if durable {
            self.last = Instant::now();
        }
        // A durable commit makes every earlier one durable. In durable mode
        // only chunks of stream writes are committed without an fsync, and
        // their publish makes them durable.
        self.pending = !durable && self.durability == Durability::Relaxed;
    }

    /// Flushes if non-durable commits are a second old; a failed flush is
    /// retried a second later, not at once.
    fn run_due(&mut self, shared: &Shared) {
        if self.pending && self.last.elapsed() >= RELAXED_FLUSH {
            self.pending = !flush_now(shared);
            self.last = Instant::now();
        }
    }
}

/// After an I/O failure, closes the database and opens it again (see
/// `handle.rs`); an error if it cannot be opened yet.
fn recover(shared: &Shared) -> Result<(), StorageError> {
    if !shared.db.is_broken() {
        return Ok(());
    }
    // Old read snapshots go first: they keep the file open.
    shared.snapshots.committed();
    shared.db.reopen()
}

/// Makes every earlier non-durable commit durable (an empty durable commit);
/// returns whether that worked.
fn flush_now(shared: &Shared) -> bool {
    let result = (|| -> Result<(), StorageError> {
        let mut txn = shared.db.get()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit()?;
        shared.counters.add(0, 1, true);
        Ok(())
    })();
    if let Err(e) = &result {
        tracing::error!(error = ?e, "flushing relaxed commits failed");
        shared.db.failed(e);
        let _ = recover(shared);
    }
    result.is_ok()
}

/// Applies a group in one transaction and answers every job; returns whether
/// anything was committed. A backend failure aborts the group (nothing
/// committed) and is sent to every job.
fn commit_group(shared: &Shared, group: Vec<Job>, durable: bool) -> Result<bool, StorageError> {
    let writes = group.iter().filter(|j| j.kind == Kind::Write).count() as u64;
    let (applies, fails): (Vec<Apply>, Vec<_>) =
        group.into_iter().map(|j| (j.apply, j.fail)).unzip();
    match shared
        .db
        .get()
        .and_then(|db| apply_group(&db, applies, durable))
    {
        Ok((answers, committed)) => {
            if committed {
                shared.snapshots.committed();
            }
            shared.counters.add(writes, u64::from(committed), durable);
            for answer in answers {
                answer();
            }
            Ok(committed)
        }
        Err(e) => {
            // Reopened before the answer, so that a read after the error
            // sees how the group ended: whole or not at all.
            shared.db.failed(&e);
            let _ = recover(shared);
            for fail in fails {
                fail(e.clone());
            }
            Err(e)
        }
    }
}

/// Every request's answer, and whether the group committed.
type GroupAnswers = (Vec<Box<dyn FnOnce() + Send>>, bool);

/// Applies the requests in one transaction, committed if any of them
/// changed anything. The error is a backend failure (nothing committed).
fn apply_group(
    db: &redb::Database,
    applies: Vec<Apply>,
    durable: bool,
) -> Result<GroupAnswers, StorageError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    })?;
    let mut answers = Vec::with_capacity(applies.len());
    let mut changed = false;
    {
        let mut meta = txn.open_table(META)?;
        let first_version = meta.get(META_NEXT_VERSION)?.map_or(1, |g| g.value());
        let mut next_version = first_version;
        let mut tables = Tables::open(&txn)?;
        for apply in applies {
            let applied = apply(&mut tables, &mut next_version)?;
            changed |= applied.changed;
            answers.push(applied.answer);
        }
        if next_version != first_version {
            meta.insert(META_NEXT_VERSION, next_version)?;
        }
    }
    if changed {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok((answers, changed))
}
