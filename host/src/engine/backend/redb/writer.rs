//! The single writer thread: group commit of concurrent requests.
//!
//! redb allows one write transaction at a time. Rather than have callers queue
//! for it, every request is sent to one thread, which takes all requests
//! waiting at that moment (up to [`MAX_GROUP`]), applies them in arrival order
//! in one transaction, commits once (one fsync when durable), and only then
//! answers each request.
//!
//! A request that finds the writer idle (nothing queued, no commit under
//! way, and the last group a lone request: no concurrent writers of late) is
//! committed by its caller's own thread instead, the same way, as a group of
//! one: handing it to the writer thread and its answer back cost two thread
//! wake-ups, tens of microseconds on a VM, for nothing to group with. As soon
//! as requests overlap, they queue for the writer thread again.
//!
//! A request that fails (a condition, a quota) leaves no trace in the shared
//! transaction: it is staged before anything is written (`apply.rs`). Only
//! a backend failure aborts the whole group, and then every request in it
//! gets that error and nothing of the group is written. A group that changed
//! nothing is aborted rather than committed, so an idle sweeper costs no
//! fsync.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
    committer: Arc<Committer>,
}

/// What commits, on the writer thread or on an idle writer's caller: one
/// at a time, under `state`.
struct Committer {
    shared: Shared,
    state: Mutex<State>,
    /// Requests sent to the writer thread and not yet taken by it.
    queued: AtomicUsize,
}

/// The writer's state, held by whoever commits.
struct State {
    flush: Flush,
    /// How many requests the last group answered: about how many writers
    /// are waiting to send their next one.
    expected: usize,
    /// The entry versions handed out so far, once read from the file.
    versions: Option<Versions>,
}

/// How many entry versions one write of the counter reserves.
const VERSIONS_RESERVED: u64 = 1 << 16;

/// Entry versions, handed out from a range reserved in the file, so that a
/// commit writes the counter only once per [`VERSIONS_RESERVED`] versions
/// instead of every time: `cubby_meta`'s `next_version` is a mark no version
/// at or above which has been handed out, and is moved ahead in the same
/// transaction as the first version past it. After a restart (or a failed
/// commit) versions resume at the mark, skipping what was reserved and not
/// used: they still never repeat and only grow.
#[derive(Clone, Copy)]
struct Versions {
    next: u64,
    reserved: u64,
}

impl Committer {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while committing left no transaction open (redb aborts a
        // dropped one) and the flush state whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Writer {
    /// Starts the writer; after each commit it retires the shared read
    /// snapshot before answering, and counts what it committed.
    pub fn spawn(shared: Shared, durability: Durability) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let committer = Arc::new(Committer {
            shared,
            state: Mutex::new(State {
                flush: Flush::new(durability),
                expected: 1,
                versions: None,
            }),
            queued: AtomicUsize::new(0),
        });
        let on_thread = Arc::clone(&committer);
        let thread = std::thread::Builder::new()
            .name("cubby-writer".into())
            .spawn(move || run(&on_thread, rx))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            committer,
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
        let tx = self.tx.as_ref().ok_or(StorageError::Closed)?;
        match self.commit_if_idle(job) {
            None => {}
            Some(job) => {
                // Counted before it is sent, and left counted if the writer
                // thread is gone: no caller commits past a queued request,
                // nor past a writer that stopped.
                self.committer.queued.fetch_add(1, Ordering::SeqCst);
                tx.send(job).map_err(|_| StorageError::Closed)?;
            }
        }
        answer.recv().map_err(|_| StorageError::Closed)?
    }

    /// Commits `job` alone on this thread if the writer is idle (see the
    /// module's comment); gives it back otherwise.
    fn commit_if_idle(&self, job: Job) -> Option<Job> {
        let committer = &*self.committer;
        if committer.queued.load(Ordering::SeqCst) != 0 {
            return Some(job);
        }
        let mut state = match committer.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Some(job),
        };
        if state.expected > 1 {
            return Some(job);
        }
        let was_pending = state.flush.pending;
        commit(&committer.shared, &mut state, vec![job]);
        if state.flush.pending && !was_pending {
            // The writer thread may be asleep with no flush deadline: wake
            // it so that it makes this commit durable within a second.
            self.wake();
        }
        None
    }

    /// Wakes the writer without a request, so that it reopens a database
    /// that a read found broken.
    pub fn wake(&self) {
        if let Some(tx) = &self.tx {
            // Counted like any request, so that no caller commits past it.
            self.committer.queued.fetch_add(1, Ordering::SeqCst);
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

fn run(committer: &Committer, rx: Receiver<Job>) {
    let shared = &committer.shared;
    loop {
        let deadline = committer.lock().flush.deadline();
        let first = match deadline {
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => break, // every sender is gone
            },
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    committer.lock().flush.run_due(shared);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        let mut state = committer.lock();
        let expected = if state.flush.next_commit_durable() {
            state.expected
        } else {
            1
        };
        let group = gather(first, &rx, expected);
        committer.queued.fetch_sub(group.len(), Ordering::SeqCst);
        commit(shared, &mut state, group);
    }
    let mut state = committer.lock();
    if state.flush.pending {
        state.flush.pending = !flush_now(shared);
    }
}

/// Commits one group (on the writer thread, or a lone request on its
/// caller's) and keeps the writer's state.
fn commit(shared: &Shared, state: &mut State, group: Vec<Job>) {
    state.expected = group.len();
    let durable =
        state.flush.next_commit_durable() && group.iter().any(|job| job.kind != Kind::Chunk);
    if let Err(e) = recover(shared) {
        for job in group {
            (job.fail)(e.clone());
        }
        return;
    }
    match commit_group(shared, group, durable, &mut state.versions) {
        Ok(true) => state.flush.committed(durable),
        Ok(false) => {}
        Err(e) => tracing::error!(error = ?e, "write group failed"),
    }
    // Checked after every group: under constant load the channel is never
    // idle.
    state.flush.run_due(shared);
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
fn commit_group(
    shared: &Shared,
    group: Vec<Job>,
    durable: bool,
    versions: &mut Option<Versions>,
) -> Result<bool, StorageError> {
    let writes = group.iter().filter(|j| j.kind == Kind::Write).count() as u64;
    let (applies, fails): (Vec<Apply>, Vec<_>) =
        group.into_iter().map(|j| (j.apply, j.fail)).unzip();
    match shared
        .db
        .get()
        .and_then(|db| apply_group(&db, applies, durable, versions))
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
            // Whether the counter's last move was committed is unknown:
            // read it again.
            *versions = None;
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
    versions: &mut Option<Versions>,
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
        let mut range = match *versions {
            Some(range) => range,
            None => {
                let mark = meta.get(META_NEXT_VERSION)?.map_or(1, |g| g.value());
                Versions {
                    next: mark,
                    reserved: mark,
                }
            }
        };
        let mut tables = Tables::open(&txn)?;
        for apply in applies {
            let applied = apply(&mut tables, &mut range.next)?;
            changed |= applied.changed;
            answers.push(applied.answer);
        }
        if range.next > range.reserved {
            range.reserved = range.next.saturating_add(VERSIONS_RESERVED);
            meta.insert(META_NEXT_VERSION, range.reserved)?;
        }
        if changed {
            // The versions this group handed out are in the file with it.
            *versions = Some(range);
        }
    }
    if changed {
        txn.commit()?;
    } else {
        // Nothing stored the versions handed out: they may be handed out
        // again.
        txn.abort()?;
    }
    Ok((answers, changed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn writer() -> Writer {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let shared = Shared {
            db: Arc::new(Handle::fixed(db)),
            snapshots: Arc::new(Snapshots::new(0)),
            counters: Arc::new(Counters::new("redb")),
        };
        Writer::spawn(shared, Durability::Durable).unwrap()
    }

    /// The name of the thread a request is applied on.
    fn applied_on(writer: &Writer, hold: Duration) -> Option<String> {
        writer
            .submit(Kind::Write, move |_, _| {
                std::thread::sleep(hold);
                Ok((std::thread::current().name().map(str::to_owned), false))
            })
            .unwrap()
    }

    /// Whether a lone request lands on the caller's thread once the writer
    /// thread has let go of the writer's state (it holds it for a moment
    /// around each of its own groups and checks): tried a few times.
    fn lands_on_the_caller(writer: &Writer) -> bool {
        let me = std::thread::current().name().map(str::to_owned);
        (0..100).any(|_| {
            let on_caller = applied_on(writer, Duration::ZERO) == me;
            if !on_caller {
                std::thread::sleep(Duration::from_millis(1));
            }
            on_caller
        })
    }

    #[test]
    fn a_lone_request_commits_on_its_callers_thread_and_one_that_overlaps_queues() {
        let writer = writer();
        assert!(lands_on_the_caller(&writer));
        std::thread::scope(|s| {
            // Another caller holds the writer for a while…
            let other = s.spawn(|| applied_on(&writer, Duration::from_millis(300)));
            std::thread::sleep(Duration::from_millis(100));
            // …so this request goes to the writer thread.
            assert_eq!(
                applied_on(&writer, Duration::ZERO).as_deref(),
                Some("cubby-writer")
            );
            assert_ne!(other.join().unwrap().as_deref(), Some("cubby-writer"));
        });
        // Idle again, with the last group a lone request: back on the caller.
        assert!(lands_on_the_caller(&writer));
    }
}
