//! Export and import of a workspace ([`Workspace::export`],
//! [`Workspace::import`]) in a portable, streaming, checksummed format
//! (`format.rs` documents it).
//!
//! # How an import stays all-or-nothing
//! An import is staged, then published:
//! 1. Entries are read, checked (keys, namespaces, value sizes against this
//!    database's [`Limits`](crate::options::Limits)) and written in bounded
//!    transactions (at most 1,000 entries or 4 MiB each) into a **staging
//!    area**: a workspace whose id starts with `~import~`, which no caller
//!    can name (`~` is not allowed in ids), so no plugin or listing sees
//!    it. Writers of every other workspace are served in between.
//! 2. Only when the whole file has been read and its totals and checksum
//!    hold is the staging area **published**: one transaction checks the
//!    target's quota against the result, writes the staged entries into the
//!    target with fresh versions (with [`ImportMode::Replace`], after
//!    removing every entry the file does not hold) and removes the staging
//!    area. The workspace changes at once, or not at all.
//!
//! A failure before publishing (a corrupt or truncated file, a bad entry, a
//! refused quota) removes the staging area and leaves the workspace as it
//! was. A process that dies while staging leaves a staging area behind;
//! the next import into the same database removes those older than a day.

mod format;

use std::io::{BufReader, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::backend::{Exported, Publish, QuotaRule, WriteRequest};
use super::blob::{CHUNK_BYTES, Checksum, unpack};
use super::{
    Action, Op, Storage, StorageError, StreamOptions, StreamWriter, Usage, Workspace, rules,
};

/// The prefix of staging areas' ids.
pub(crate) const STAGING_PREFIX: &str = "~import~";
/// Staging areas older than this are abandoned and removed.
const STAGING_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Most entries staged in one transaction.
const STAGE_ENTRIES: usize = 1000;
/// Most value bytes staged in one transaction.
const STAGE_BYTES: usize = 4 << 20;
/// How often progress is reported, in entries.
const PROGRESS_EVERY: u64 = 1000;

/// How [`Workspace::import`] treats what the workspace already holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportMode {
    /// Entries in the file overwrite the keys they name; every other entry
    /// stays.
    #[default]
    Merge,
    /// The workspace ends holding exactly what the file holds.
    Replace,
}

/// What to export; see [`Workspace::export_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Only these namespaces (`""` is the default space); empty: the whole
    /// workspace.
    pub namespaces: Vec<String>,
}

impl ExportOptions {
    /// Exports only these namespaces.
    pub fn namespaces(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.namespaces = names.into_iter().map(Into::into).collect();
        self
    }
}

/// How far an export or import has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Entries written (export) or read (import) so far.
    pub done: u64,
    /// Entries in all (from the export's header).
    pub total: u64,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// Entries exported, with their keys and values' bytes.
    pub usage: Usage,
    /// Bytes of the export file.
    pub file_bytes: u64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    /// Entries written into the workspace.
    pub imported: u64,
    /// Entries of the file already expired when they were read or published,
    /// skipped.
    pub expired: u64,
    /// The mode it ran in.
    pub mode: ImportMode,
}

/// Why an export or import failed. An import that fails wrote nothing into
/// its workspace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The storage refused or failed (a limit, the quota, the database).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The input is not a Cubby export at all.
    #[error("not a Cubby export: {0}")]
    NotAnExport(String),
    /// The input is a Cubby export of a format version this build does not
    /// read.
    #[error("export format version {found}, this build reads version {supported}")]
    UnsupportedVersion {
        /// The file's version.
        found: u64,
        /// The version this build reads.
        supported: u64,
    },
    /// The input is damaged: a line that does not parse, totals that do not
    /// add up, or a checksum that does not match.
    #[error("corrupt export: {0}")]
    Corrupt(String),
    /// The input ends before its trailer.
    #[error("truncated export: {0}")]
    Truncated(String),
}

impl Workspace {
    /// Writes the whole workspace to `out` in Cubby's export format (JSON
    /// Lines: a header with the format version, source, time and totals;
    /// one line per entry with its namespace, key, base64 value and
    /// deadline; a trailer with the SHA-256 of the rest; the README's
    /// "Operating Cubby" documents it): one consistent snapshot, even while others write, streamed
    /// so memory does not grow with the workspace. `out` is written through
    /// a buffer and flushed at the end.
    ///
    /// ```
    /// use cubby_host::{Storage, StorageOptions};
    /// use cubby_host::transfer::ImportMode;
    /// # fn main() -> anyhow::Result<()> {
    /// let storage = Storage::in_memory(StorageOptions::default())?;
    /// let a = storage.workspace("a")?;
    /// a.set("greeting", b"hello")?;
    /// let mut file = Vec::new();
    /// a.export(&mut file)?;
    /// let b = storage.workspace("b")?;
    /// b.import(file.as_slice(), ImportMode::Replace)?;
    /// assert_eq!(b.get("greeting")?.as_deref(), Some(&b"hello"[..]));
    /// # Ok(()) }
    /// ```
    pub fn export(&self, out: impl Write) -> Result<ExportSummary, TransferError> {
        self.export_with(out, &ExportOptions::default(), |_| {})
    }

    /// [`export`](Self::export) with options, reporting progress every
    /// 1,000 entries and at the end.
    pub fn export_with(
        &self,
        out: impl Write,
        options: &ExportOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<ExportSummary, TransferError> {
        for ns in &options.namespaces {
            rules::check_namespace(ns)?;
        }
        let mut namespaces = options.namespaces.clone();
        namespaces.sort();
        namespaces.dedup();
        let storage = self.storage();
        let now_ms = storage.now_ms();
        let mut writer = format::Writer::new(std::io::BufWriter::with_capacity(1 << 16, out));
        let (mut usage, mut done) = (Usage::default(), 0u64);
        // Whether the streamed value whose chunks come next is compressed.
        let mut compressed = false;
        storage
            .backend()
            .export(self.id(), &namespaces, now_ms, &mut |item| {
                match item {
                    Exported::Totals(totals) => {
                        usage = totals;
                        writer.header(&format::Header {
                            format: format::FORMAT.into(),
                            version: format::VERSION,
                            workspace: self.id().into(),
                            source: storage.location().into(),
                            exported_at_ms: now_ms,
                            exported_at: humantime::format_rfc3339_millis(
                                std::time::UNIX_EPOCH + Duration::from_millis(now_ms),
                            )
                            .to_string(),
                            namespaces: (!namespaces.is_empty()).then(|| namespaces.clone()),
                            keys: totals.keys,
                            bytes: totals.bytes,
                        })?;
                        progress(Progress {
                            done: 0,
                            total: usage.keys,
                        });
                    }
                    Exported::Entry {
                        ns,
                        key,
                        value,
                        expires_at_ms,
                        blob,
                    } => {
                        match blob {
                            None => writer.entry(ns, key, value, expires_at_ms)?,
                            Some(blob) => {
                                compressed = blob.compressed;
                                let stream = format::Stream {
                                    size: blob.size,
                                    stored: blob.stored,
                                    chunks: blob.chunks,
                                    compressed: blob.compressed,
                                    xxh3: format!("{:032x}", blob.checksum),
                                };
                                writer.stream_entry(ns, key, &stream, expires_at_ms)?;
                            }
                        }
                        done += 1;
                        if done.is_multiple_of(PROGRESS_EVERY) {
                            progress(Progress {
                                done,
                                total: usage.keys,
                            });
                        }
                    }
                    Exported::Chunk(data) => {
                        writer.chunk(&unpack(data.to_vec(), compressed)?)?;
                    }
                }
                Ok(())
            })?;
        let file_bytes = writer.finish()?;
        progress(Progress {
            done,
            total: usage.keys,
        });
        Ok(ExportSummary { usage, file_bytes })
    }

    /// Reads an export from `input` into this workspace, all-or-nothing
    /// (the README's "Operating Cubby" says how: the file is staged in
    /// bounded transactions where nothing can see it, then published in
    /// one). The file may
    /// come from any workspace and any database; entries get this
    /// database's versions, keep their deadlines, and those already expired
    /// are skipped and counted.
    ///
    /// Errors, each leaving the workspace as it was: a file that is not an
    /// export ([`TransferError::NotAnExport`]), of another format version,
    /// corrupt (a line that does not parse, totals or checksum that do not
    /// match), truncated, an entry this database's limits refuse, or a
    /// result over the workspace's quota
    /// ([`StorageError::QuotaExceeded`]).
    pub fn import(
        &self,
        input: impl Read,
        mode: ImportMode,
    ) -> Result<ImportSummary, TransferError> {
        self.import_with(input, mode, |_| {})
    }

    /// [`import`](Self::import), reporting progress every 1,000 entries.
    pub fn import_with(
        &self,
        input: impl Read,
        mode: ImportMode,
        progress: impl FnMut(Progress),
    ) -> Result<ImportSummary, TransferError> {
        let storage = self.storage();
        remove_abandoned_staging(storage);
        let staging = storage
            .backend()
            .staging_id(staging_id(self.id(), storage.now_ms()), self.id())?;
        let result = self.stage_and_publish(input, mode, &staging, progress);
        if result.is_err()
            && let Err(e) = remove_staging(storage, &staging)
        {
            tracing::warn!(staging, error = %e, "could not remove a failed import's staging area");
        }
        result
    }

    fn stage_and_publish(
        &self,
        input: impl Read,
        mode: ImportMode,
        staging: &str,
        mut progress: impl FnMut(Progress),
    ) -> Result<ImportSummary, TransferError> {
        let storage = self.storage();
        let limits = storage.limits();
        let max_line = limits.max_value_bytes.max(CHUNK_BYTES).div_ceil(3) * 4
            + 4 * limits.max_key_bytes
            + 64 * 1024;
        let mut reader = format::Reader::new(BufReader::with_capacity(1 << 16, input), max_line);
        let header = reader.header()?;
        let header = Usage {
            keys: header.keys,
            bytes: header.bytes,
        };
        let total = header.keys;
        if mode == ImportMode::Replace {
            let now = self.usage()?;
            let quota = self.quota()?;
            // The exact check is made when publishing; this one spares
            // staging a file that cannot fit.
            if header.keys > quota.max_keys.max(now.keys)
                || header.bytes > quota.max_bytes.max(now.bytes)
            {
                return Err(StorageError::QuotaExceeded(format!(
                    "the file holds {} keys and {} bytes, the workspace's quota is {} keys and \
                     {} bytes",
                    header.keys, header.bytes, quota.max_keys, quota.max_bytes
                ))
                .into());
            }
        }
        progress(Progress { done: 0, total });
        let mut batch = Batch::default();
        let mut expired = 0;
        let batch_ops = STAGE_ENTRIES.min(limits.max_batch_ops.max(1) as usize);
        while let Some(entry) = reader.entry()? {
            let now_ms = storage.now_ms();
            let ttl = match entry.expires_at_ms {
                Some(at) if at <= now_ms => {
                    expired += 1;
                    // Its chunks are read (and checked) all the same.
                    while reader.chunk()?.is_some() {}
                    continue;
                }
                Some(at) => Some(Duration::from_millis(at - now_ms)),
                None => None,
            };
            if let Some(stream) = &entry.stream {
                batch.flush(storage, staging)?;
                stage_stream(storage, staging, &entry, stream, ttl, &mut reader)?;
                continue;
            }
            let op = Op::new(
                entry.key,
                Action::Set {
                    value: entry.value,
                    ttl,
                },
            )
            .in_namespace(entry.ns);
            rules::check_op(limits, &op)?;
            batch.push(op);
            if batch.ops.len() >= batch_ops || batch.bytes >= STAGE_BYTES {
                batch.flush(storage, staging)?;
            }
            if reader.entries().is_multiple_of(PROGRESS_EVERY) {
                progress(Progress {
                    done: reader.entries(),
                    total,
                });
            }
        }
        batch.flush(storage, staging)?;
        let published = storage.backend().publish(&Publish {
            staging: staging.to_owned(),
            workspace: self.id().to_owned(),
            replace: mode == ImportMode::Replace,
            quota: storage.quota_rule(self.id()),
            now_ms: storage.now_ms(),
        })?;
        progress(Progress {
            done: reader.entries(),
            total,
        });
        Ok(ImportSummary {
            imported: published.written,
            expired: expired + published.expired,
            mode,
        })
    }
}

/// Stages one streamed value of the file, read a piece at a time, after
/// checking it against its size and checksum.
fn stage_stream<R: std::io::BufRead>(
    storage: &Storage,
    staging: &str,
    entry: &format::EntryIn,
    stream: &format::Stream,
    ttl: Option<Duration>,
    reader: &mut format::Reader<R>,
) -> Result<(), TransferError> {
    let namespace = Workspace::new(storage.clone(), staging.into()).namespace(&entry.ns)?;
    let mut options = StreamOptions::default();
    options.write.ttl = ttl;
    options.compress = stream.compressed;
    let mut writer =
        StreamWriter::open_with(namespace, &entry.key, options, QuotaRule::unlimited())?;
    let mut hash = Checksum::new();
    let mut size = 0u64;
    while let Some(piece) = reader.chunk()? {
        hash.write(&piece);
        size += piece.len() as u64;
        writer.write_bytes(&piece)?;
    }
    if size != stream.size || format!("{:032x}", hash.finish_128()) != stream.xxh3 {
        return Err(TransferError::Corrupt(format!(
            "the streamed value {:?} does not match its size and checksum",
            entry.key
        )));
    }
    writer.finish()?;
    Ok(())
}

/// Staged entries not written yet.
#[derive(Default)]
struct Batch {
    ops: Vec<Op>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, op: Op) {
        if let Action::Set { value, .. } = &op.action {
            self.bytes += value.len() + op.key.len();
        }
        self.ops.push(op);
    }

    /// Writes the batch into the staging area in one transaction.
    fn flush(&mut self, storage: &Storage, staging: &str) -> Result<(), StorageError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        storage.backend().write(WriteRequest {
            workspace: staging.into(),
            ops: std::mem::take(&mut self.ops),
            blob: None,
            now_ms: storage.now_ms(),
            quota: QuotaRule::unlimited(),
        })?;
        self.bytes = 0;
        Ok(())
    }
}

/// A staging area's id: unique, unnameable by callers, and dated so an
/// abandoned one can be recognised.
fn staging_id(ws: &str, now_ms: u64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{STAGING_PREFIX}{now_ms}~{}~{n}~{ws}", std::process::id())
}

/// When a staging area was made, from its id.
fn staging_started_ms(id: &str) -> Option<u64> {
    id.strip_prefix(STAGING_PREFIX)?
        .split('~')
        .next()?
        .parse()
        .ok()
}

/// Removes a staging area in bounded steps, as any workspace is removed.
fn remove_staging(storage: &Storage, staging: &str) -> Result<(), StorageError> {
    Workspace::new(storage.clone(), staging.into())
        .clear_all()
        .map(drop)
}

/// How often, at most, imports look for abandoned staging areas: the look
/// lists every workspace, which on Citus asks every shard.
const STAGING_CHECK_EVERY: Duration = Duration::from_secs(3600);

/// Removes staging areas left by imports that died more than a day ago;
/// looks at most once an hour per process.
fn remove_abandoned_staging(storage: &Storage) {
    if !storage.claim_staging_check(STAGING_CHECK_EVERY.as_millis() as u64) {
        return;
    }
    let now_ms = storage.now_ms();
    let cutoff = now_ms.saturating_sub(STAGING_MAX_AGE.as_millis() as u64);
    let all = match storage.backend().workspaces(now_ms) {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for abandoned staging areas");
            return;
        }
    };
    for (id, _) in all {
        if staging_started_ms(&id).is_some_and(|at| at < cutoff) {
            tracing::info!(staging = id, "removing an abandoned import's staging area");
            if let Err(e) = remove_staging(storage, &id) {
                tracing::warn!(staging = id, error = %e, "could not remove an abandoned staging area");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_ids_cannot_be_named_and_carry_their_start() {
        let id = staging_id("team-a", 1234);
        assert!(rules::check_workspace_id(&id).is_err());
        assert_eq!(staging_started_ms(&id), Some(1234));
        assert_ne!(id, staging_id("team-a", 1234));
    }
}
