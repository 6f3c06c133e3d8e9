//! The single writer: group commit of concurrent write requests.
//!
//! redb allows one write transaction at a time. Rather than have callers queue
//! for it, every write is sent to one thread, which takes all requests waiting
//! at that moment (up to [`MAX_GROUP`]), applies them in arrival order in one
//! transaction, commits once (one fsync when durable), and only then answers
//! each request.
//!
//! Every operation checks its own preconditions (limits, quotas) before it
//! writes anything, so a request that fails leaves no trace in the shared
//! transaction; only a backend failure aborts the whole group, and then every
//! request in it gets that error and nothing of the group is written.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{ReadableTable, Table};

use super::record::{Record, stored_value_len};
use super::{
    Durability, ENTRIES, EXPIRY, EntryKey, Limits, META, META_NEXT_VERSION, StorageError, USAGE,
    now_ms,
};

/// Most requests committed in one transaction.
const MAX_GROUP: usize = 512;
/// In relaxed mode, the longest time a commit stays non-durable.
const RELAXED_FLUSH: Duration = Duration::from_secs(1);

pub(crate) enum WriteOp {
    Set { key: String, value: Vec<u8> },
    Delete { key: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    Stored,
    Deleted(bool),
}

type Reply = mpsc::SyncSender<Result<WriteOutcome, StorageError>>;

struct Request {
    workspace: Arc<str>,
    namespace: Arc<str>,
    op: WriteOp,
    reply: Reply,
}

/// Handle to the writer thread; dropping it stops the thread after the
/// requests already sent are committed, and waits for it (so the database
/// file is closed when the last `Storage` is gone).
pub(crate) struct Writer {
    tx: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn spawn(
        db: Arc<redb::Database>,
        limits: Limits,
        durability: Durability,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cubby-writer".into())
            .spawn(move || run(&db, &limits, durability, rx))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Sends one write and blocks until it is committed (or refused).
    pub fn submit(
        &self,
        workspace: Arc<str>,
        namespace: Arc<str>,
        op: WriteOp,
    ) -> Result<WriteOutcome, StorageError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let request = Request {
            workspace,
            namespace,
            op,
            reply,
        };
        self.tx
            .as_ref()
            .ok_or(StorageError::Closed)?
            .send(request)
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

fn run(db: &redb::Database, limits: &Limits, durability: Durability, rx: Receiver<Request>) {
    // Relaxed mode only: when the last durable commit (or flush attempt) was
    // made, and whether non-durable commits have been made since.
    let mut last_flush = Instant::now();
    let mut pending_flush = false;
    loop {
        let first = if pending_flush {
            match rx.recv_timeout(RELAXED_FLUSH.saturating_sub(last_flush.elapsed())) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => {
                    // A failed flush is retried a second later, not at once.
                    pending_flush = !flush(db);
                    last_flush = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(request) => request,
                Err(_) => break,
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let durable = durability == Durability::Durable || last_flush.elapsed() >= RELAXED_FLUSH;
        match commit_group(db, limits, &group, durable) {
            Ok(results) => {
                if durable {
                    last_flush = Instant::now();
                }
                pending_flush = !durable;
                for (request, result) in group.into_iter().zip(results) {
                    // The caller may have gone away; its write is committed.
                    let _ = request.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = ?e, requests = group.len(), "write group failed");
                for request in group {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
    if pending_flush {
        flush(db);
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

struct Tables<'t> {
    entries: Table<'t, EntryKey, &'static [u8]>,
    usage: Table<'t, &'static str, (u64, u64)>,
    expiry: Table<'t, (u64, &'static str, &'static str, &'static str), ()>,
    next_version: u64,
    now_ms: u64,
}

/// Applies a group in one transaction. The outer error is a backend failure
/// (nothing committed); the inner results are per request.
fn commit_group(
    db: &redb::Database,
    limits: &Limits,
    group: &[Request],
    durable: bool,
) -> Result<Vec<Result<WriteOutcome, StorageError>>, StorageError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    })?;
    let mut results = Vec::with_capacity(group.len());
    {
        let mut meta = txn.open_table(META)?;
        let next_version = meta.get(META_NEXT_VERSION)?.map_or(1, |g| g.value());
        let mut tables = Tables {
            entries: txn.open_table(ENTRIES)?,
            usage: txn.open_table(USAGE)?,
            expiry: txn.open_table(EXPIRY)?,
            next_version,
            now_ms: now_ms(),
        };
        for request in group {
            results.push(apply(&mut tables, limits, request)?);
        }
        meta.insert(META_NEXT_VERSION, tables.next_version)?;
    }
    txn.commit()?;
    Ok(results)
}

/// What an existing entry accounts for, read before it is replaced or removed.
struct Old {
    bytes: u64,
    expires_at_ms: Option<u64>,
    live: bool,
}

fn apply(
    t: &mut Tables<'_>,
    limits: &Limits,
    request: &Request,
) -> Result<Result<WriteOutcome, StorageError>, StorageError> {
    let ws = &*request.workspace;
    let ns = &*request.namespace;
    let key = match &request.op {
        WriteOp::Set { key, .. } | WriteOp::Delete { key } => key.as_str(),
    };
    let old = t.entries.get((ws, ns, key))?.map(|g| {
        let raw = g.value();
        // A record that does not decode is replaced or removed all the same;
        // it is accounted by its stored length.
        let decoded = Record::decode(raw).ok();
        Old {
            bytes: key.len() as u64 + stored_value_len(raw),
            expires_at_ms: decoded.and_then(|r| r.expires_at_ms),
            live: decoded.is_none_or(|r| !r.is_expired(t.now_ms)),
        }
    });
    let (keys, bytes) = t.usage.get(ws)?.map_or((0, 0), |g| g.value());
    // The workspace's usage once the old entry, if any, is gone.
    let (base_keys, base_bytes) = match &old {
        Some(old) => (keys.saturating_sub(1), bytes.saturating_sub(old.bytes)),
        None => (keys, bytes),
    };
    // Check everything before writing anything.
    let write = match &request.op {
        WriteOp::Set { value, .. } => {
            let new_keys = base_keys + 1;
            let new_bytes = base_bytes + key.len() as u64 + value.len() as u64;
            if new_keys > keys && new_keys > limits.max_keys_per_workspace {
                return Ok(Err(StorageError::QuotaExceeded(format!(
                    "the workspace holds {keys} keys, the limit is {}",
                    limits.max_keys_per_workspace
                ))));
            }
            if new_bytes > bytes && new_bytes > limits.max_bytes_per_workspace {
                return Ok(Err(StorageError::QuotaExceeded(format!(
                    "the workspace would hold {new_bytes} bytes, the limit is {}",
                    limits.max_bytes_per_workspace
                ))));
            }
            Some((value, (new_keys, new_bytes)))
        }
        WriteOp::Delete { .. } if old.is_none() => return Ok(Ok(WriteOutcome::Deleted(false))),
        WriteOp::Delete { .. } => None,
    };
    if let Some(at) = old.as_ref().and_then(|o| o.expires_at_ms) {
        t.expiry.remove((at, ws, ns, key))?;
    }
    match write {
        Some((value, usage)) => {
            let version = t.next_version;
            t.next_version += 1;
            let record = Record::encode(version, None, value);
            t.entries.insert((ws, ns, key), record.as_slice())?;
            t.usage.insert(ws, usage)?;
            Ok(Ok(WriteOutcome::Stored))
        }
        None => {
            t.entries.remove((ws, ns, key))?;
            t.usage.insert(ws, (base_keys, base_bytes))?;
            Ok(Ok(WriteOutcome::Deleted(old.is_some_and(|o| o.live))))
        }
    }
}
