//! Unit tests of the engine, called directly (no wasm). Every test in
//! `basics`, `batches`, `expiry`, `quota` and `model` is a conformance test
//! that runs on redb and on PostgreSQL (see [`crate::testing`]);
//! `redb_only` and `postgres_only` hold what only one backend has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basics;
mod batches;
mod citus;
mod expiry;
mod faults;
mod model;
mod old_layouts;
mod postgres_faults;
mod postgres_only;
mod quota;
mod redb_only;
mod streams;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

use crate::options::{Limits, ManualClock};
use crate::testing::{Place, all_keys};
use crate::{Namespace, Storage, StorageOptions};

const SEC: Duration = Duration::from_secs(1);

/// Storage with the default options.
fn open(place: &Place) -> Storage {
    place.open(StorageOptions::default())
}

/// Storage with some limits changed.
fn with_limits(place: &Place, f: impl FnOnce(&mut Limits)) -> Storage {
    let mut options = StorageOptions::default();
    f(&mut options.limits);
    place.open(options)
}

/// Storage on a clock that only moves when the test says so, without a
/// background sweeper.
fn manual(place: &Place, clock: &ManualClock, f: impl FnOnce(&mut StorageOptions)) -> Storage {
    let mut options = StorageOptions {
        clock: Arc::new(clock.clone()),
        sweep_interval: None,
        ..StorageOptions::default()
    };
    f(&mut options);
    place.open(options)
}

/// The ids of the workspaces that hold data, in order.
fn workspace_ids(storage: &Storage) -> Vec<String> {
    let listed = storage.workspaces().unwrap();
    listed.into_iter().map(|(id, _)| id).collect()
}
