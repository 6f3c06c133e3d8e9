//! The concurrent model campaign: several workers at once, each running
//! random operations with hostile keys on its own workspace (the ids are
//! prefixes of one another) and checking every answer against its own
//! model (`cubby_tests::model`); then every workspace's whole state is
//! compared with its worker's model, and its usage with a recount. On redb
//! the workers are threads of one process (which owns the file); on
//! PostgreSQL, processes (`storage-worker model`).
//!
//! CI runs a short campaign. `CUBBY_MODEL_OPS` sets the operations of each
//! campaign (split between its workers) and `CUBBY_MODEL_SEED` the seed; the
//! README gives the command of a long one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Instant;

use cubby_host::testing::{Place, assert_usage_is_exact, contents};
use cubby_host::{Storage, StorageOptions};
use cubby_tests::model::{self, Model, WORKSPACES};

/// The campaign's operations in all (`CUBBY_MODEL_OPS`, else `default`).
fn total_ops(default: u64) -> u64 {
    std::env::var("CUBBY_MODEL_OPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("CUBBY_MODEL_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(6)
}

/// What the workers did, summed, and each workspace's final model.
struct Campaign {
    ops: u64,
    mismatches: u64,
    first: Vec<String>,
    models: Vec<(&'static str, Model)>,
}

/// Compares every workspace with its worker's model, and its usage with
/// a recount; prints the campaign's line and fails on any mismatch.
fn finish(storage: &Storage, what: &str, campaign: Campaign, started: Instant) {
    let mut mismatches = campaign.mismatches;
    let mut first = campaign.first;
    for (id, want) in &campaign.models {
        let ws = storage.workspace(id).unwrap();
        let got = contents(&ws).unwrap();
        if &got != want {
            mismatches += 1;
            first.push(format!("{id}: the stored state is not the model's"));
        }
        assert_usage_is_exact(storage, id);
    }
    eprintln!(
        "concurrent model campaign ({what}, seed {}): {} operations on {} workspaces in {:.1?}, {mismatches} mismatches",
        seed(),
        campaign.ops,
        campaign.models.len(),
        started.elapsed()
    );
    assert_eq!(mismatches, 0, "{first:#?}");
}

#[test]
fn threads_on_one_redb_file_each_match_their_model() {
    let place = Place::redb_file();
    let storage = place.open(StorageOptions::default());
    let workers = 8;
    let each = total_ops(40_000) / workers as u64;
    let started = Instant::now();
    let found: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = WORKSPACES[..workers]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let ws = storage.workspace(id).unwrap();
                scope.spawn(move || (*id, model::run(&ws, seed() + i as u64, each)))
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let campaign = Campaign {
        ops: found.iter().map(|(_, f)| f.ops).sum(),
        mismatches: found.iter().map(|(_, f)| f.mismatches).sum(),
        first: found.iter().flat_map(|(_, f)| f.first.clone()).collect(),
        models: found.into_iter().map(|(id, f)| (id, f.model)).collect(),
    };
    finish(&storage, "redb, 8 threads", campaign, started);
}

#[test]
fn processes_on_one_postgres_database_each_match_their_model() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let workers = 4;
    let each = total_ops(12_000) / workers as u64;
    let started = Instant::now();
    let children: Vec<_> = WORKSPACES[..workers]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let child = Command::new(env!("CARGO_BIN_EXE_storage-worker"))
                .args([&place.db_arg(), "model", id])
                .arg((seed() + i as u64).to_string())
                .arg(each.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            (*id, child)
        })
        .collect();
    let mut campaign = Campaign {
        ops: 0,
        mismatches: 0,
        first: Vec::new(),
        models: Vec::new(),
    };
    for (id, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "worker {id} failed: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        for line in lines.by_ref() {
            if let Some(n) = line.strip_prefix("ops ") {
                campaign.ops += n.parse::<u64>().unwrap();
            } else if let Some(n) = line.strip_prefix("mismatches ") {
                campaign.mismatches += n.parse::<u64>().unwrap();
            } else if let Some(m) = line.strip_prefix("mismatch ") {
                campaign.first.push(m.to_owned());
            } else if line == "model" {
                break;
            }
        }
        campaign.models.push((id, model::decode(lines).unwrap()));
    }
    let storage = place.open(StorageOptions::default());
    finish(&storage, "PostgreSQL, 4 processes", campaign, started);
}
