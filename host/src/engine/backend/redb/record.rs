//! The on-disk format of one stored entry.
//!
//! ```text
//! byte 0      format tag: 1, the value follows; 2, a streamed value's
//!             blob reference follows (schema 4 on)
//! bytes 1..9  version, u64 little-endian: changes on every write (never reused)
//! bytes 9..17 expiry, u64 little-endian milliseconds since the Unix epoch; 0 = none
//! bytes 17..  tag 1: the value; tag 2: the blob reference (`blob.rs`, 61
//!             bytes), its chunks in `cubby_chunks`
//! ```
//!
//! The version serves compare-and-swap; the expiry, time-to-live. A counter
//! is an ordinary value holding its number in decimal ASCII.

use crate::engine::StorageError;
use crate::engine::backend::Row;
use crate::engine::blob::BlobRef;

const INLINE: u8 = 1;
const STREAMED: u8 = 2;
const HEADER: usize = 17;

/// A decoded entry, borrowing its value from the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub version: u64,
    pub expires_at_ms: Option<u64>,
    /// The value; empty for a streamed one.
    pub value: &'a [u8],
    pub blob: Option<BlobRef>,
}

impl<'a> Record<'a> {
    pub fn encode(version: u64, expires_at_ms: Option<u64>, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + value.len());
        out.push(INLINE);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&expires_at_ms.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    /// The record of `row`, streamed or not.
    pub fn of(row: &Row) -> Vec<u8> {
        match &row.blob {
            None => Self::encode(row.version, row.expires_at_ms, &row.value),
            Some(blob) => {
                let mut out = Self::encode(row.version, row.expires_at_ms, &blob.encode());
                out[0] = STREAMED;
                out
            }
        }
    }

    pub fn decode(bytes: &'a [u8]) -> Result<Self, StorageError> {
        let header = bytes
            .get(..HEADER)
            .ok_or_else(|| StorageError::Corrupt(format!("record of {} bytes", bytes.len())))?;
        if header[0] != INLINE && header[0] != STREAMED {
            return Err(StorageError::Corrupt(format!(
                "unknown record format {}",
                header[0]
            )));
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let expiry = word(9);
        let (value, blob) = match header[0] {
            STREAMED => (&[][..], Some(BlobRef::decode(&bytes[HEADER..])?)),
            _ => (&bytes[HEADER..], None),
        };
        Ok(Self {
            version: word(1),
            expires_at_ms: (expiry != 0).then_some(expiry),
            value,
            blob,
        })
    }

    /// The record as an owned row.
    pub fn to_row(self) -> Row {
        Row {
            value: self.value.to_vec(),
            version: self.version,
            expires_at_ms: self.expires_at_ms,
            blob: self.blob,
        }
    }

    /// Whether the entry is live at `now_ms` (the same rule as [`Row::is_live`]).
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
}

/// The value length that a stored record accounts for in usage (a streamed
/// value's: what its chunks take), also for a record that does not decode
/// (so usage stays consistent when it is removed).
pub(crate) fn stored_value_len(bytes: &[u8]) -> u64 {
    match Record::decode(bytes) {
        Ok(Record {
            blob: Some(blob), ..
        }) => blob.stored,
        _ => bytes.len().saturating_sub(HEADER) as u64,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let bytes = Record::encode(7, Some(99), b"hello");
        let r = Record::decode(&bytes).unwrap();
        assert_eq!(r.version, 7);
        assert_eq!(r.expires_at_ms, Some(99));
        assert_eq!(r.value, b"hello");
        assert!(!r.is_live(99));
        assert!(r.is_live(98));
        let none = Record::encode(1, None, b"");
        assert_eq!(Record::decode(&none).unwrap().expires_at_ms, None);
    }

    #[test]
    fn streamed_records_round_trip() {
        let blob = BlobRef {
            id: 3,
            size: 1 << 20,
            stored: 4000,
            chunks: 4,
            compressed: true,
            checksum: 7 << 100,
        };
        let row = Row {
            value: Vec::new(),
            version: 9,
            expires_at_ms: Some(5),
            blob: Some(blob),
        };
        let bytes = Record::of(&row);
        assert_eq!(Record::decode(&bytes).unwrap().to_row(), row);
        assert_eq!(stored_value_len(&bytes), 4000);
        let mut cut = bytes.clone();
        cut.pop();
        assert!(matches!(
            Record::decode(&cut),
            Err(StorageError::Corrupt(_))
        ));
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        for bad in [&b""[..], b"\x01short", &[9u8; 20][..]] {
            assert!(matches!(Record::decode(bad), Err(StorageError::Corrupt(_))));
        }
    }
}
