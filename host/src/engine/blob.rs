//! Values kept in chunks behind one entry (streamed values): the reference
//! an entry holds, how chunks are made and read back, and the timing of the
//! rows that chunks leave behind.
//!
//! A streamed value's bytes are cut into chunks of [`CHUNK_BYTES`] (each
//! compressed on its own when the value is), stored under the workspace and
//! a blob id that the backend hands out and never hands out again. The entry
//! holds a [`BlobRef`]: the id, the logical size, what the chunks take, their
//! number, whether they are compressed, and the XXH3-128 checksum of the
//! logical bytes.
//!
//! Chunks of a blob that no entry holds are *loose*: a write in progress
//! (until [`STREAM_IDLE`] after its last chunk, when the sweeper takes it for
//! abandoned), or a value that was replaced, deleted, cleared or swept
//! (kept [`REPLACED_GRACE`] for the readers that opened it before, then
//! removed by the sweeper).

use std::time::Duration;

use twox_hash::XxHash3_128;

use super::StorageError;

/// The logical bytes of one chunk (the last may be shorter): 512 bytes
/// short of 256 KiB, so that a chunk with its key and redb's leaf header
/// (at most about 160 bytes) fits a 256 KiB page. redb gives a page of a
/// power-of-two size, so a chunk of a whole 256 KiB would take a 512 KiB
/// page and write twice its size.
pub(crate) const CHUNK_BYTES: usize = 256 * 1024 - 512;

/// How long a write in progress may go without a chunk before the sweeper
/// removes it as abandoned (its process died, or it was never finished).
pub(crate) const STREAM_IDLE: Duration = Duration::from_secs(10 * 60);

/// How long the chunks of a replaced or removed streamed value stay for the
/// readers that opened it before.
pub(crate) const REPLACED_GRACE: Duration = Duration::from_secs(10 * 60);

/// The zstd level of compressed values: fast, and most of the gain.
const ZSTD_LEVEL: i32 = 3;

/// What a loose blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loose {
    /// A write in progress.
    Open,
    /// A value no entry holds any more.
    Garbage,
}

impl Loose {
    /// The code stored for it.
    pub fn code(self) -> u8 {
        match self {
            Self::Open => 0,
            Self::Garbage => 1,
        }
    }

    /// The kind a stored code names.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Open),
            1 => Some(Self::Garbage),
            _ => None,
        }
    }
}

/// What an entry holds of a streamed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlobRef {
    /// The blob's id: never handed out twice within a workspace.
    pub id: u64,
    /// The value's length, as readers get it.
    pub size: u64,
    /// What its chunks take, as usage counts it.
    pub stored: u64,
    /// How many chunks.
    pub chunks: u32,
    /// Whether each chunk is zstd-compressed.
    pub compressed: bool,
    /// XXH3-128 of the logical bytes ([`Checksum`]).
    pub checksum: u128,
}

/// The checksum of a streamed value, computed as its bytes pass: XXH3-128.
/// It finds damaged or mixed-up chunks at many gigabytes a second; it is no
/// defence against someone who crafts collisions on purpose, which only a
/// plugin could do, and only to its own workspace's values.
pub(crate) type Checksum = XxHash3_128;

/// The checksum of a whole value.
pub(crate) fn checksum_of(value: &[u8]) -> u128 {
    XxHash3_128::oneshot(value)
}

/// The encoded length of a [`BlobRef`].
pub(crate) const BLOB_REF_BYTES: usize = 8 + 8 + 8 + 4 + 1 + 16;

impl BlobRef {
    /// Fixed-size little-endian encoding: id, size, stored, chunks,
    /// compressed (0 or 1), checksum.
    pub fn encode(&self) -> [u8; BLOB_REF_BYTES] {
        let mut out = [0u8; BLOB_REF_BYTES];
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..16].copy_from_slice(&self.size.to_le_bytes());
        out[16..24].copy_from_slice(&self.stored.to_le_bytes());
        out[24..28].copy_from_slice(&self.chunks.to_le_bytes());
        out[28] = u8::from(self.compressed);
        out[29..45].copy_from_slice(&self.checksum.to_le_bytes());
        out
    }

    /// Decodes [`encode`](Self::encode)'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        let corrupt = || StorageError::Corrupt(format!("blob reference of {} bytes", bytes.len()));
        if bytes.len() != BLOB_REF_BYTES || bytes[28] > 1 {
            return Err(corrupt());
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut chunks = [0u8; 4];
        chunks.copy_from_slice(&bytes[24..28]);
        let mut checksum = [0u8; 16];
        checksum.copy_from_slice(&bytes[29..45]);
        Ok(Self {
            id: u64_at(0),
            size: u64_at(8),
            stored: u64_at(16),
            chunks: u32::from_le_bytes(chunks),
            compressed: bytes[28] == 1,
            checksum: u128::from_le_bytes(checksum),
        })
    }

    /// Whether `value` is this blob's value (same length and checksum),
    /// for [`Condition::ValueEquals`](crate::ops::Condition::ValueEquals).
    pub fn holds(&self, value: &[u8]) -> bool {
        value.len() as u64 == self.size && checksum_of(value) == self.checksum
    }
}

/// The error of publishing, or writing to, a write that is no longer in
/// progress.
pub(crate) fn abandoned() -> StorageError {
    StorageError::InvalidArgument(
        "the stream write is no longer in progress (it was idle too long, or its workspace \
         was removed)"
            .into(),
    )
}

/// The refusal of one writer too many.
pub(crate) fn too_many_writers(max_open: u32) -> StorageError {
    StorageError::InvalidArgument(format!(
        "the workspace already has {max_open} stream writes in progress, the most it may"
    ))
}

/// A chunk as stored: `logical` bytes, compressed when `compress`.
pub(crate) fn pack(logical: Vec<u8>, compress: bool) -> Result<Vec<u8>, StorageError> {
    if compress {
        zstd::bulk::compress(&logical, ZSTD_LEVEL)
            .map_err(|e| StorageError::internal(&format!("compressing a chunk: {e}")))
    } else {
        Ok(logical)
    }
}

/// The logical bytes of a stored chunk.
pub(crate) fn unpack(stored: Vec<u8>, compressed: bool) -> Result<Vec<u8>, StorageError> {
    if !compressed {
        return Ok(stored);
    }
    zstd::bulk::decompress(&stored, CHUNK_BYTES)
        .map_err(|e| StorageError::Corrupt(format!("a compressed chunk does not decompress: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_reference_round_trips_and_checks_values() {
        let value = b"hello, chunks";
        let blob = BlobRef {
            id: 7,
            size: value.len() as u64,
            stored: 99,
            chunks: 1,
            compressed: true,
            checksum: checksum_of(value),
        };
        assert_eq!(BlobRef::decode(&blob.encode()).unwrap(), blob);
        assert!(blob.holds(value));
        assert!(!blob.holds(b"hello, chunkz"));
        assert!(BlobRef::decode(&blob.encode()[..44]).is_err());
    }

    #[test]
    fn chunks_pack_and_unpack() {
        let logical = vec![b'a'; CHUNK_BYTES];
        let packed = pack(logical.clone(), true).unwrap();
        assert!(packed.len() < 1000);
        assert_eq!(unpack(packed, true).unwrap(), logical);
        assert_eq!(
            unpack(pack(b"raw".to_vec(), false).unwrap(), false).unwrap(),
            b"raw"
        );
        assert!(unpack(b"not zstd".to_vec(), true).is_err());
    }
}
