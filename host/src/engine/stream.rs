//! Values written and read as streams: [`StreamWriter`] and
//! [`StreamReader`], from [`Namespace::write_stream`] and
//! [`Namespace::read_stream`]. How the bytes are kept is in `blob.rs`.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use super::backend::{BlobPut, ChunkPut, QuotaRule, Row, WriteRequest};
use super::blob::{BlobRef, CHUNK_BYTES, Checksum, STREAM_IDLE, pack, unpack};
use super::{Namespace, Outcome, Storage, StorageError, WriteOptions, rules};

/// How [`Namespace::write_stream`] writes.
///
/// ```
/// use cubby_host::ops::StreamOptions;
/// use std::time::Duration;
/// let options = StreamOptions::default().compress().ttl(Duration::from_secs(3600));
/// assert!(options.compress);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamOptions {
    /// What a `set` takes: the time-to-live (counted from the publish) and
    /// the condition (checked when the writer finishes).
    pub write: WriteOptions,
    /// Store the value zstd-compressed (readers get the bytes as written;
    /// usage and quotas count the compressed size).
    pub compress: bool,
}

impl From<WriteOptions> for StreamOptions {
    fn from(write: WriteOptions) -> Self {
        Self {
            write,
            compress: false,
        }
    }
}

impl StreamOptions {
    /// Sets the time-to-live ([`WriteOptions::ttl`]).
    pub fn ttl(self, ttl: Duration) -> Self {
        self.map_write(|w| w.ttl(ttl))
    }

    /// Publishes only if the key holds no live entry
    /// ([`WriteOptions::if_absent`]).
    pub fn if_absent(self) -> Self {
        self.map_write(WriteOptions::if_absent)
    }

    /// Publishes only if the key's entry has this version
    /// ([`WriteOptions::if_version`]).
    pub fn if_version(self, version: u64) -> Self {
        self.map_write(|w| w.if_version(version))
    }

    fn map_write(mut self, f: impl FnOnce(WriteOptions) -> WriteOptions) -> Self {
        self.write = f(self.write);
        self
    }

    /// Stores the value compressed.
    pub fn compress(mut self) -> Self {
        self.compress = true;
        self
    }
}

/// What is known of a stored value without reading it
/// ([`Namespace::info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueInfo {
    /// The value's length, as a reader returns it.
    pub size: u64,
    /// What it takes in storage, as usage and quotas count it.
    pub stored_size: u64,
    /// Whether it was written as a stream (and is kept in chunks).
    pub streamed: bool,
    /// Whether it is stored compressed.
    pub compressed: bool,
    /// Its version.
    pub version: u64,
    /// Time left until it expires; `None` when it never does.
    pub expires_in: Option<Duration>,
}

impl ValueInfo {
    pub(crate) fn of(row: &Row, now_ms: u64) -> Self {
        let entry = row.to_entry(now_ms);
        Self {
            size: row.blob.map_or(row.value.len() as u64, |b| b.size),
            stored_size: row.stored_len(),
            streamed: row.blob.is_some(),
            compressed: row.blob.is_some_and(|b| b.compressed),
            version: row.version,
            expires_in: entry.expires_in,
        }
    }
}

/// A value being written as a stream ([`Namespace::write_stream`]): bytes
/// go to storage a chunk at a time (memory stays at three chunks of about 256 KiB,
/// however large the value), and nothing is visible until
/// [`finish`](Self::finish) publishes the whole value atomically.
///
/// A full chunk is checksummed, compressed and stored on a helper thread
/// while the writer takes the next ones (two may wait), so an error
/// storing a chunk (the quota, the storage) is returned by a later write,
/// by `std::io::Write::flush` (which waits for it), or by `finish`.
///
/// Dropped without `finish` (or after any error), the writer removes what
/// it wrote. `std::io::Write` is implemented too (a storage error becomes an
/// `io::Error` of kind `Other` wrapping the [`StorageError`]); its `flush`
/// waits until every full chunk is stored (a partial one stays buffered;
/// nothing is visible before `finish` either way).
///
/// ```
/// use cubby_host::{Storage, StorageOptions};
/// use cubby_host::ops::StreamOptions;
/// use std::io::{Read, Write};
/// # fn main() -> anyhow::Result<()> {
/// let ws = Storage::in_memory(StorageOptions::default())?.workspace("w")?;
/// let mut writer = ws.write_stream("big", StreamOptions::default().compress())?;
/// for _ in 0..64 {
///     writer.write_all(&[7u8; 64 * 1024])?;
/// }
/// writer.finish()?;
/// let mut back = Vec::new();
/// ws.read_stream("big")?.expect("written").read_to_end(&mut back)?;
/// assert_eq!(back.len(), 4 << 20);
/// assert!(ws.info("big")?.expect("written").stored_size < 100_000);
/// # Ok(()) }
/// ```
pub struct StreamWriter {
    target: Namespace,
    key: String,
    options: StreamOptions,
    quota: QuotaRule,
    blob: u64,
    buffer: Vec<u8>,
    chunks: u32,
    size: u64,
    /// The checksum and stored size of the chunks stored so far, kept by
    /// the chunk work (which runs in order).
    stored: Arc<Mutex<Stored>>,
    /// The chunks being stored, oldest first.
    in_flight: VecDeque<Helper<()>>,
    /// Where chunks are stored, once there is a first.
    worker: Option<Worker>,
    state: State,
}

/// How many full chunks a writer may have waiting to be stored.
const IN_FLIGHT: usize = 2;

/// How many chunks a reader fetches ahead of the one it returns.
const READ_AHEAD: usize = 2;

/// What the stored chunks of a write add up to.
#[derive(Default)]
struct Stored {
    hash: Checksum,
    bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Writing,
    /// Published.
    Finished,
    /// Failed; what it wrote was removed.
    Failed,
}

impl std::fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("key", &self.key)
            .field("size", &self.size)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl StreamWriter {
    pub(crate) fn open(
        target: Namespace,
        key: &str,
        options: StreamOptions,
    ) -> Result<Self, StorageError> {
        let quota = target.storage().quota_rule(target.workspace_id());
        Self::open_with(target, key, options, quota)
    }

    /// [`open`](Self::open), checked against `quota` (an import's staging
    /// area has none of its own).
    pub(crate) fn open_with(
        target: Namespace,
        key: &str,
        options: StreamOptions,
        quota: QuotaRule,
    ) -> Result<Self, StorageError> {
        let storage = target.storage();
        rules::check_key(storage.limits(), key)?;
        let blob = storage.backend().open_blob(
            target.workspace_id(),
            idle_until(storage),
            storage.limits().max_open_streams,
        )?;
        Ok(Self {
            target,
            key: key.to_owned(),
            options,
            quota,
            blob,
            buffer: Vec::with_capacity(CHUNK_BYTES),
            chunks: 0,
            size: 0,
            stored: Arc::default(),
            in_flight: VecDeque::new(),
            worker: None,
            state: State::Writing,
        })
    }

    /// Appends `bytes` to the value. Fails with
    /// [`StorageError::ValueTooLarge`] (the limit being
    /// [`Limits::max_stream_bytes`](crate::options::Limits)) past the
    /// largest streamed value, and [`StorageError::QuotaExceeded`] when what
    /// is written so far would take the workspace past its quota; after any
    /// error the writer is done and what it wrote is gone.
    pub fn write_bytes(&mut self, mut bytes: &[u8]) -> Result<(), StorageError> {
        self.writing()?;
        let limit = self.target.storage().limits().max_stream_bytes;
        let size = self.size.saturating_add(bytes.len() as u64);
        if size > limit {
            return self.fail(StorageError::ValueTooLarge {
                len: usize::try_from(size).unwrap_or(usize::MAX),
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            });
        }
        self.size = size;
        while !bytes.is_empty() {
            let take = (CHUNK_BYTES - self.buffer.len()).min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == CHUNK_BYTES {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    /// Publishes the value under its key, atomically, replacing any entry
    /// there (after checking the condition, the key's limits and the quota
    /// once more); returns its version. Durable when it returns, like every
    /// write. On any error nothing is published and what was written is
    /// gone.
    pub fn finish(mut self) -> Result<u64, StorageError> {
        self.writing()?;
        if !self.buffer.is_empty() {
            self.flush_chunk()?;
        }
        self.settle(0)?;
        let totals = self
            .stored
            .lock()
            .map(|s| (s.bytes, s.hash.finish_128()))
            .ok();
        let Some((stored, checksum)) = totals else {
            return self.fail(StorageError::internal("a stream's chunk work failed"));
        };
        let blob = BlobRef {
            id: self.blob,
            size: self.size,
            stored,
            chunks: self.chunks,
            compressed: self.options.compress,
            checksum,
        };
        let storage = self.target.storage();
        let request = WriteRequest {
            workspace: Arc::from(self.target.workspace_id()),
            ops: Vec::new(),
            blob: Some(BlobPut {
                namespace: self.target.name().to_owned(),
                key: self.key.clone(),
                condition: self.options.write.condition.clone(),
                blob,
                ttl: self.options.write.ttl,
            }),
            now_ms: storage.now_ms(),
            quota: self.quota,
        };
        match storage.backend().write(request) {
            Ok(outcomes) => match outcomes.as_slice() {
                [Outcome::Set { version }] => {
                    self.state = State::Finished;
                    Ok(*version)
                }
                _ => self.fail(StorageError::internal(
                    "a stream publish answered otherwise",
                )),
            },
            Err(e) => self.fail(e),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.size
    }

    fn writing(&self) -> Result<(), StorageError> {
        match self.state {
            State::Writing => Ok(()),
            State::Finished => Err(StorageError::InvalidArgument(
                "the stream writer is finished".into(),
            )),
            State::Failed => Err(StorageError::InvalidArgument(
                "the stream writer failed earlier; nothing of it was kept".into(),
            )),
        }
    }

    /// Hands the full buffer to a helper thread that checksums, packs and
    /// stores it after the chunks before it, once fewer than [`IN_FLIGHT`]
    /// are waiting.
    fn flush_chunk(&mut self) -> Result<(), StorageError> {
        self.settle(IN_FLIGHT - 1)?;
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        let storage = self.target.storage().clone();
        let workspace: Arc<str> = Arc::from(self.target.workspace_id());
        let (blob, index, quota) = (self.blob, self.chunks, self.quota);
        let compress = self.options.compress;
        let stored = Arc::clone(&self.stored);
        let store = move || -> Result<(), StorageError> {
            let mut stored = stored
                .lock()
                .map_err(|_| StorageError::internal("a stream's chunk work failed"))?;
            let mut hash = stored.hash.clone();
            hash.write(&data);
            let data = pack(data, compress)?;
            let stored_after = stored.bytes + data.len() as u64;
            let put = ChunkPut {
                workspace,
                blob,
                index,
                data,
                stored_after,
                idle_until_ms: idle_until(&storage),
                quota,
            };
            storage.backend().put_chunk(put)?;
            *stored = Stored {
                hash,
                bytes: stored_after,
            };
            Ok(())
        };
        self.chunks += 1;
        if self.worker.is_none() {
            self.worker = Worker::start();
        }
        self.in_flight
            .push_back(Helper::start(self.worker.as_ref(), store));
        Ok(())
    }

    /// Waits until at most `left` chunks are waiting to be stored.
    fn settle(&mut self, left: usize) -> Result<(), StorageError> {
        while self.in_flight.len() > left {
            if let Some(helper) = self.in_flight.pop_front()
                && let Err(e) = helper.join()
            {
                return self.fail(e);
            }
        }
        Ok(())
    }

    /// Ends the writer after `e`: what it wrote is removed (or, if that
    /// fails too, collected by the sweeper once the write counts as
    /// abandoned).
    fn fail<T>(&mut self, e: StorageError) -> Result<T, StorageError> {
        self.state = State::Failed;
        self.discard();
        Err(e)
    }

    fn discard(&mut self) {
        self.buffer = Vec::new();
        // A chunk stored after the removal would be refused anyway (its
        // write is gone); waiting keeps the removal last.
        for helper in std::mem::take(&mut self.in_flight) {
            let _ = helper.join();
        }
        let storage = self.target.storage();
        if let Err(e) = storage
            .backend()
            .drop_blob(self.target.workspace_id(), self.blob)
        {
            tracing::warn!(error = %e, "could not remove an unfinished stream write; the sweeper will");
        }
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if self.state == State::Writing {
            self.state = State::Failed;
            self.discard();
        }
    }
}

impl io::Write for StreamWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_bytes(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writing().map_err(io::Error::other)?;
        self.settle(0).map_err(io::Error::other)
    }
}

/// The most helper threads streams keep at once in this process; a stream
/// that finds none free does its chunk work on the caller's thread.
const MAX_WORKERS: usize = 64;

/// Helper threads alive.
static WORKERS: AtomicUsize = AtomicUsize::new(0);

/// Work for a stream's [`Worker`].
type Job = Box<dyn FnOnce() + Send>;

/// A stream's helper thread: it runs the stream's chunk work in order
/// (storing a chunk, or fetching the next), so that the work overlaps
/// with what the caller does meanwhile. Started at the first chunk, so a
/// small value never starts one; it ends when its stream is dropped.
struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// A new helper thread, unless [`MAX_WORKERS`] are running or no thread
    /// can be started.
    fn start() -> Option<Self> {
        if WORKERS.fetch_add(1, Ordering::Relaxed) >= MAX_WORKERS {
            WORKERS.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let (jobs, queue) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("cubby-stream".into())
            .spawn(move || {
                // Counted out however the thread ends, a panic included.
                struct Alive;
                impl Drop for Alive {
                    fn drop(&mut self) {
                        WORKERS.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                let _alive = Alive;
                for job in queue {
                    job();
                }
            });
        match started {
            Ok(_) => Some(Self { jobs }),
            Err(e) => {
                WORKERS.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "no helper thread for a stream; working inline");
                None
            }
        }
    }
}

/// Chunk work handed to a stream's worker (or, without one, done already).
struct Helper<T>(mpsc::Receiver<Result<T, StorageError>>);

impl<T: Send + 'static> Helper<T> {
    /// Runs `work` on `worker`, after the work handed to it before; on this
    /// thread, before returning, if there is no worker.
    fn start(
        worker: Option<&Worker>,
        work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
    ) -> Self {
        let (answer, answered) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            // The stream may be gone, and nobody waiting.
            let _ = answer.send(work());
        });
        match worker {
            Some(worker) => {
                if let Err(mpsc::SendError(job)) = worker.jobs.send(job) {
                    job();
                }
            }
            None => job(),
        }
        Self(answered)
    }

    /// Its answer, once it is done; a helper that ended without one
    /// (it panicked) is an internal error.
    fn join(self) -> Result<T, StorageError> {
        self.0
            .recv()
            .unwrap_or_else(|_| Err(StorageError::internal("a stream helper thread failed")))
    }
}

/// The deadline of a write in progress that gets no chunk from now on.
fn idle_until(storage: &Storage) -> u64 {
    storage
        .now_ms()
        .saturating_add(STREAM_IDLE.as_millis() as u64)
}

/// A stored value being read ([`Namespace::read_stream`]), a chunk at a
/// time: the value as it was when the reader was opened, even if it is
/// replaced or deleted meanwhile (for 10 minutes; a reader slower than that
/// may fail, never return a mix). Reaching the end checks the value's
/// checksum. Implements `std::io::Read`. While the caller takes one chunk,
/// the next is fetched, unpacked and checksummed on a helper thread.
pub struct StreamReader {
    source: Source,
    info: ValueInfo,
    /// The current chunk and how much of it was read.
    chunk: Vec<u8>,
    at: usize,
    /// The next chunk to fetch.
    next: u32,
    /// The checksum of the chunks fetched so far, kept by the fetches
    /// (which run in order).
    hash: Arc<Mutex<Checksum>>,
    /// Chunks being fetched, from `next` on.
    ahead: VecDeque<Helper<Vec<u8>>>,
    /// The next chunk to ask for.
    requested: u32,
    /// Where chunks are fetched ahead, once there is a second.
    worker: Option<Worker>,
    /// Whether to fetch ahead (not for a value read whole at once).
    read_ahead: bool,
    /// Bytes returned so far.
    read: u64,
    checked: bool,
}

enum Source {
    Inline,
    Blob {
        storage: Storage,
        workspace: Arc<str>,
        blob: BlobRef,
    },
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("info", &self.info)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl StreamReader {
    pub(crate) fn open(namespace: &Namespace, row: Row) -> Self {
        let storage = namespace.storage();
        let info = ValueInfo::of(&row, storage.now_ms());
        let (source, chunk) = match row.blob {
            None => (Source::Inline, row.value),
            Some(blob) => (
                Source::Blob {
                    storage: storage.clone(),
                    workspace: Arc::from(namespace.workspace_id()),
                    blob,
                },
                Vec::new(),
            ),
        };
        Self {
            source,
            info,
            chunk,
            at: 0,
            next: 0,
            hash: Arc::default(),
            ahead: VecDeque::new(),
            requested: 0,
            worker: None,
            read_ahead: true,
            read: 0,
            checked: false,
        }
    }

    /// The value's size and metadata, as of when the reader was opened.
    pub fn info(&self) -> &ValueInfo {
        &self.info
    }

    /// The next bytes of the value, at most `max` (and at most what is left
    /// of the current chunk); empty at the end. Reaching the end checks the
    /// whole value against its checksum ([`StorageError::Corrupt`] if it
    /// does not match).
    pub fn read_bytes(&mut self, max: usize) -> Result<Vec<u8>, StorageError> {
        if self.at == self.chunk.len() && !self.fetch()? {
            self.check()?;
            return Ok(Vec::new());
        }
        let take = max.min(self.chunk.len() - self.at);
        let out = if self.at == 0 && take == self.chunk.len() {
            std::mem::take(&mut self.chunk)
        } else {
            let out = self.chunk[self.at..self.at + take].to_vec();
            self.at += take;
            out
        };
        self.read += take as u64;
        Ok(out)
    }

    /// Loads the next chunk; `false` at the end.
    fn fetch(&mut self) -> Result<bool, StorageError> {
        let Source::Blob {
            storage,
            workspace,
            blob,
        } = &self.source
        else {
            return Ok(false);
        };
        if self.next >= blob.chunks {
            return Ok(false);
        }
        let ahead = if self.read_ahead { READ_AHEAD } else { 0 };
        while self.requested < blob.chunks && self.ahead.len() <= ahead {
            if self.read_ahead && self.worker.is_none() && blob.chunks > 1 {
                self.worker = Worker::start();
            }
            let (storage, workspace, blob) = (storage.clone(), Arc::clone(workspace), *blob);
            let (index, hash) = (self.requested, Arc::clone(&self.hash));
            self.ahead
                .push_back(Helper::start(self.worker.as_ref(), move || {
                    fetch_chunk(&storage, &workspace, &blob, index, &hash)
                }));
            self.requested += 1;
        }
        let Some(next) = self.ahead.pop_front() else {
            return Ok(false);
        };
        self.chunk = next.join()?;
        self.at = 0;
        self.next += 1;
        Ok(true)
    }

    /// At the end: the bytes read are the value written.
    fn check(&mut self) -> Result<(), StorageError> {
        if self.checked {
            return Ok(());
        }
        self.checked = true;
        if let Source::Blob { blob, .. } = &self.source
            && (self.read != blob.size
                || self.hash.lock().map(|h| h.finish_128()).ok() != Some(blob.checksum))
        {
            return Err(StorageError::Corrupt(format!(
                "a streamed value read back as {} bytes that do not match its checksum",
                self.read
            )));
        }
        Ok(())
    }
}

impl io::Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let bytes = self.read_bytes(buf.len()).map_err(io::Error::other)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }
}

/// Chunk `index` of `blob`, unpacked, and `hash` with its bytes added.
fn fetch_chunk(
    storage: &Storage,
    workspace: &str,
    blob: &BlobRef,
    index: u32,
    hash: &Mutex<Checksum>,
) -> Result<Vec<u8>, StorageError> {
    let stored = storage
        .backend()
        .read_chunk(workspace, blob.id, index)?
        .ok_or_else(|| {
            StorageError::InvalidArgument(
                "the value was replaced or removed longer ago than a reader may take".into(),
            )
        })?;
    let chunk = unpack(stored, blob.compressed)?;
    hash.lock()
        .map_err(|_| StorageError::internal("a stream's chunk work failed"))?
        .write(&chunk);
    Ok(chunk)
}

/// The whole value of `row`, read from its chunks if it is streamed, for a
/// plain read: [`StorageError::TooLargeToRead`] if it is larger than the
/// value limit.
pub(crate) fn materialize(namespace: &Namespace, row: Row) -> Result<Row, StorageError> {
    let Some(blob) = row.blob else {
        return Ok(row);
    };
    let limit = namespace.storage().limits().max_value_bytes;
    if blob.size > limit as u64 {
        return Err(StorageError::TooLargeToRead {
            size: blob.size,
            limit,
        });
    }
    let mut reader = StreamReader::open(namespace, row.clone());
    reader.read_ahead = false;
    let mut value = Vec::with_capacity(blob.size as usize);
    loop {
        let bytes = reader.read_bytes(CHUNK_BYTES)?;
        if bytes.is_empty() {
            break;
        }
        value.extend_from_slice(&bytes);
    }
    Ok(Row {
        value,
        blob: None,
        ..row
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::StorageOptions;

    /// More readers than helper threads: the threads never pass their cap,
    /// and the readers past it read on their own thread, as correctly.
    #[test]
    fn streams_past_the_helper_cap_work_on_the_callers_thread() {
        let storage = Storage::in_memory(StorageOptions::default()).unwrap();
        let ws = storage.workspace("w").unwrap();
        let value: Vec<u8> = (0..3 * CHUNK_BYTES + 5).map(|i| (i % 253) as u8).collect();
        let mut writer = ws.write_stream("v", StreamOptions::default()).unwrap();
        writer.write_all(&value).unwrap();
        writer.finish().unwrap();
        let mut readers: Vec<StreamReader> = (0..MAX_WORKERS + 16)
            .map(|_| ws.read_stream("v").unwrap().unwrap())
            .collect();
        for reader in &mut readers {
            // The first chunk starts each reader's fetching ahead.
            assert_eq!(
                reader.read_bytes(CHUNK_BYTES).unwrap(),
                &value[..CHUNK_BYTES]
            );
            assert!(WORKERS.load(Ordering::Relaxed) <= MAX_WORKERS);
        }
        for reader in &mut readers {
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).unwrap();
            assert!(rest == value[CHUNK_BYTES..], "a reader read otherwise");
        }
    }
}
