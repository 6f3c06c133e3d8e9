//! Values of any size, written and read as streams: [`Writer`] and
//! [`Reader`], which are `std::io::Write` and `std::io::Read`.

use std::io;
use std::time::Duration;

use crate::bindings::cubby::storage::streams as wit;
use crate::namespace::millis;
use crate::{Condition, Error, Namespace, Result};

/// Bytes a [`Writer`] gathers before it hands them to the host (fewer,
/// larger calls cost less).
const WRITE_BUFFER: usize = 64 * 1024;

/// How [`Namespace::create_with`] writes.
///
/// ```
/// use cubby_sdk::StreamOptions;
/// use std::time::Duration;
/// let options = StreamOptions::new().compress().ttl(Duration::from_secs(86_400));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    ttl: Option<Duration>,
    condition: Option<Condition>,
    compress: bool,
}

impl StreamOptions {
    /// No expiry, no condition, no compression.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expire this long after the value is published.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Publish only if the key holds nothing then.
    pub fn if_absent(mut self) -> Self {
        self.condition = Some(Condition::Absent);
        self
    }

    /// Publish only if the key's entry has this version then.
    pub fn if_version(mut self, version: u64) -> Self {
        self.condition = Some(Condition::VersionEquals(version));
        self
    }

    /// Store the value compressed (readers get it as written).
    pub fn compress(mut self) -> Self {
        self.compress = true;
        self
    }

    fn to_wit(&self) -> wit::StreamOptions {
        wit::StreamOptions {
            ttl_ms: self.ttl.map(millis),
            condition: self.condition.clone().map(Into::into),
            compress: self.compress,
        }
    }
}

/// What is known of a stored value without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueInfo {
    /// The value's length in bytes.
    pub size: u64,
    /// What it takes in storage (what usage and quotas count).
    pub stored_size: u64,
    /// Whether it was written as a stream.
    pub streamed: bool,
    /// Whether it is stored compressed.
    pub compressed: bool,
    /// Its version.
    pub version: u64,
    /// Time left until it expires; `None` when it never does.
    pub expires_in: Option<Duration>,
}

impl From<wit::ValueInfo> for ValueInfo {
    fn from(i: wit::ValueInfo) -> Self {
        Self {
            size: i.size,
            stored_size: i.stored_size,
            streamed: i.streamed,
            compressed: i.compressed,
            version: i.version,
            expires_in: i.expires_in_ms.map(Duration::from_millis),
        }
    }
}

/// A value being written ([`Namespace::create`]): a file of any size
/// (up to the host's limit, 256 MiB by default) through a plugin memory
/// of a few hundred KiB. Write with `std::io::Write` (`write_all`,
/// `io::copy`, `serde_json::to_writer`, ...), then [`finish`](Writer::finish):
/// nothing is visible before, the whole value after. Dropped without
/// `finish`, or after an error, it leaves nothing behind.
///
/// ```no_run
/// use std::io::Write;
/// let mut file = cubby_sdk::create("report.csv")?;
/// for row in 0..100_000 {
///     writeln!(file, "{row},{}", row * row)?;
/// }
/// let version = file.finish()?;
/// # let _ = version;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Writer {
    handle: Option<wit::Writer>,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Appends `bytes` (as `write_all` does, with the storage's error).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buffer.len() + bytes.len() > WRITE_BUFFER {
            self.send()?;
        }
        if bytes.len() >= WRITE_BUFFER {
            self.handle()?.write(bytes)?;
        } else {
            self.buffer.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// Publishes the value atomically and returns its version. Fails with
    /// the storage's error (a quota, a condition, the limit) and then
    /// nothing was written.
    pub fn finish(mut self) -> Result<u64> {
        self.send()?;
        let handle = self.handle.take().ok_or_else(gone)?;
        Ok(handle.finish()?)
    }

    /// Hands what is gathered to the host.
    fn send(&mut self) -> Result<()> {
        if !self.buffer.is_empty() {
            let bytes = std::mem::take(&mut self.buffer);
            let sent = self.handle()?.write(&bytes);
            self.buffer = bytes;
            self.buffer.clear();
            sent?;
        }
        Ok(())
    }

    fn handle(&self) -> Result<&wit::Writer> {
        self.handle.as_ref().ok_or_else(gone)
    }
}

fn gone() -> Error {
    Error::InvalidArgument("the writer is finished".into())
}

impl io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_bytes(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    /// Hands the gathered bytes to the host; nothing becomes visible
    /// before [`finish`](Writer::finish).
    fn flush(&mut self) -> io::Result<()> {
        self.send().map_err(io::Error::other)
    }
}

/// A stored value being read ([`Namespace::open`]), as `std::io::Read`: a
/// chunk of the host's at a time, so any size fits a small memory. Reaching
/// the end checks the whole value against its checksum.
///
/// ```no_run
/// use std::io::Read;
/// if let Some(mut file) = cubby_sdk::open("report.csv")? {
///     let mut text = String::new();
///     file.read_to_string(&mut text)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Reader {
    handle: wit::Reader,
    buffer: Vec<u8>,
    at: usize,
    done: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    /// The value's size and metadata, as of when it was opened.
    pub fn info(&self) -> ValueInfo {
        self.handle.info().into()
    }

    /// The next bytes of the value (at most the host's chunk size); empty
    /// at the end.
    pub fn read_chunk(&mut self) -> Result<Vec<u8>> {
        if self.at < self.buffer.len() {
            let rest = self.buffer[self.at..].to_vec();
            self.at = self.buffer.len();
            return Ok(rest);
        }
        if self.done {
            return Ok(Vec::new());
        }
        let chunk = self.handle.read(u64::MAX)?;
        self.done = chunk.is_empty();
        Ok(chunk)
    }
}

impl io::Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.buffer.len() {
            if self.done {
                return Ok(0);
            }
            self.buffer = self
                .handle
                .read(u64::MAX)
                .map_err(|e| io::Error::other(Error::from(e)))?;
            self.at = 0;
            if self.buffer.is_empty() {
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.buffer.len() - self.at);
        buf[..n].copy_from_slice(&self.buffer[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Namespace {
    /// Starts writing a value under `key` as a stream; see [`Writer`].
    pub fn create(&self, key: impl AsRef<str>) -> Result<Writer> {
        self.create_with(key, &StreamOptions::new())
    }

    /// [`create`](Self::create) with an expiry, a condition or compression.
    pub fn create_with(&self, key: impl AsRef<str>, options: &StreamOptions) -> Result<Writer> {
        let handle = wit::open_writer(self.name(), key.as_ref(), &options.to_wit())?;
        Ok(Writer {
            handle: Some(handle),
            buffer: Vec::with_capacity(WRITE_BUFFER),
        })
    }

    /// Opens the value under `key` for reading as a stream (any entry,
    /// however it was written), or `None`; see [`Reader`].
    pub fn open(&self, key: impl AsRef<str>) -> Result<Option<Reader>> {
        Ok(
            wit::open_reader(self.name(), key.as_ref())?.map(|handle| Reader {
                handle,
                buffer: Vec::new(),
                at: 0,
                done: false,
            }),
        )
    }

    /// The size and metadata of the value under `key`, without reading it;
    /// `None` if there is none.
    pub fn info(&self, key: impl AsRef<str>) -> Result<Option<ValueInfo>> {
        Ok(wit::info(self.name(), key.as_ref())?.map(Into::into))
    }
}

/// Starts writing a value under `key` in the default space as a stream;
/// see [`Writer`] and [`Namespace::create`].
pub fn create(key: impl AsRef<str>) -> Result<Writer> {
    Namespace::DEFAULT.create(key)
}

/// [`create`] with options; see [`StreamOptions`].
pub fn create_with(key: impl AsRef<str>, options: &StreamOptions) -> Result<Writer> {
    Namespace::DEFAULT.create_with(key, options)
}

/// Opens the value under `key` in the default space for reading as a
/// stream; see [`Reader`].
pub fn open(key: impl AsRef<str>) -> Result<Option<Reader>> {
    Namespace::DEFAULT.open(key)
}

/// The size and metadata of the value under `key` in the default space.
pub fn info(key: impl AsRef<str>) -> Result<Option<ValueInfo>> {
    Namespace::DEFAULT.info(key)
}
