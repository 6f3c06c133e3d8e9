//! Limits the engine enforces on every workspace.

use super::types::Quota;

/// Limits on keys, values, listings and per-workspace usage.
///
/// Every limit is checked before anything is written; exceeding one is a typed
/// [`StorageError`](crate::StorageError), never a panic.
///
/// ```
/// let mut limits = cubby_host::options::Limits::default();
/// limits.max_value_bytes = 64 * 1024;
/// assert_eq!(limits.max_key_bytes, 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest key, in bytes of UTF-8. Default 1024.
    pub max_key_bytes: usize,
    /// Largest value, in bytes. Default 1 MiB.
    pub max_value_bytes: usize,
    /// Page size of a listing when the caller names none. Default 100.
    pub default_page_size: u32,
    /// Largest page of a listing; larger requests are clamped. Default 1000.
    pub max_page_size: u32,
    /// Most keys one workspace may hold, unless the host sets another quota
    /// for it. Default 1,000,000.
    pub max_keys_per_workspace: u64,
    /// Most bytes (keys plus values) one workspace may hold, unless the host
    /// sets another quota for it. Default 1 GiB.
    pub max_bytes_per_workspace: u64,
    /// Most operations in one batch or transaction. Default 1000.
    pub max_batch_ops: u32,
    /// Largest value written as a stream, in bytes (its logical size).
    /// Default 256 MiB; always within the workspace's quota too.
    pub max_stream_bytes: u64,
    /// Most stream writes of one workspace in progress at once. Default 16.
    pub max_open_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 1024,
            max_value_bytes: 1024 * 1024,
            default_page_size: 100,
            max_page_size: 1000,
            max_keys_per_workspace: 1_000_000,
            max_bytes_per_workspace: 1024 * 1024 * 1024,
            max_batch_ops: 1000,
            max_stream_bytes: 256 * 1024 * 1024,
            max_open_streams: 16,
        }
    }
}

impl Limits {
    /// The quota of a workspace without an override.
    pub fn default_quota(&self) -> Quota {
        Quota {
            max_keys: self.max_keys_per_workspace,
            max_bytes: self.max_bytes_per_workspace,
        }
    }

    /// The page size to use for a requested `limit`: the default when none,
    /// at least 1, at most `max_page_size`.
    pub fn page_size(&self, requested: Option<u32>) -> usize {
        let wanted = requested.unwrap_or(self.default_page_size);
        wanted.clamp(1, self.max_page_size.max(1)) as usize
    }
}
