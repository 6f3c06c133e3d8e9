//! Tests of the glue that call the generated `Host` traits directly, as a
//! guest's calls would, for the edge cases a guest controls; and of the
//! crate documentation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod keyvalue_imports;
mod readme;
mod storage_imports;

use crate::options::Limits;
use crate::{Storage, StorageCtx, StorageOptions};

/// Storage in memory with small limits, so that every limit is easy to
/// reach: keys of 8 bytes, values of 16, batches of 4, pages of 10, and a
/// default quota of 5 keys.
fn small_storage() -> Storage {
    let limits = Limits {
        max_key_bytes: 8,
        max_value_bytes: 16,
        max_batch_ops: 4,
        default_page_size: 3,
        max_page_size: 10,
        max_keys_per_workspace: 5,
        ..Limits::default()
    };
    let options = StorageOptions {
        limits,
        sweep_interval: None,
        ..StorageOptions::default()
    };
    Storage::in_memory(options).unwrap()
}

/// A context bound to workspace `ws` of `storage`.
fn ctx(storage: &Storage, ws: &str) -> StorageCtx {
    StorageCtx::new(storage.workspace(ws).unwrap())
}
