//! A test guest written against `wasi:keyvalue@0.2.0-draft` alone (plain
//! wit-bindgen over Cubby's WIT of the standard, no `cubby-sdk`): `u64`
//! cursors and counters. Commands: see `kv-common/commands.rs`.

#![allow(missing_docs)]

wit_bindgen::generate!({
    path: "../../../wit/deps/keyvalue-0.2.0-draft",
    world: "wasi:keyvalue/imports",
});

use wasi::keyvalue as kv;

type Cursor = u64;
type Delta = u64;

#[path = "../../kv-common/commands.rs"]
mod commands;

fn list_keys(
    b: &kv::store::Bucket,
    cursor: Option<&Cursor>,
) -> Result<kv::store::KeyResponse, kv::store::Error> {
    b.list_keys(cursor.copied())
}

fn parse_cursor(arg: &str) -> Cursor {
    arg.parse().unwrap_or_default()
}

/// `get-many` as the commands print it: each key asked for, with its value
/// or `None`.
fn get_many(b: &kv::store::Bucket, keys: &[String]) -> Result<commands::Pairs, kv::store::Error> {
    Ok(commands::pairs(keys, kv::batch::get_many(b, keys)?))
}

/// This version has no commands of its own.
fn extra(command: &str, _: &kv::store::Bucket, _: &[String]) -> commands::Outcome {
    Ok(format!("unknown command {command}"))
}

fn main() -> std::process::ExitCode {
    commands::main()
}
