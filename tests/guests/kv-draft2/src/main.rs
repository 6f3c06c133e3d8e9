//! A test guest written against `wasi:keyvalue@0.2.0-draft2` alone (plain
//! wit-bindgen over Cubby's WIT of the standard, no `cubby-sdk`), with
//! `get-many` in the standard repository's shape. Commands: see
//! `kv-common/commands.rs` and `kv-common/draft2.rs`.

#![allow(missing_docs)]

wit_bindgen::generate!({
    path: "../../../wit/deps/keyvalue-0.2.0-draft2",
    world: "wasi:keyvalue/imports",
});

use wasi::keyvalue as kv;

#[path = "../../kv-common/commands.rs"]
mod commands;
#[path = "../../kv-common/draft2.rs"]
mod draft2;

use draft2::{Cursor, Delta, extra, list_keys, parse_cursor};

/// `get-many` as the commands print it: each key asked for, with its value
/// or `None`.
fn get_many(b: &kv::store::Bucket, keys: &[String]) -> Result<commands::Pairs, kv::store::Error> {
    Ok(commands::pairs(keys, kv::batch::get_many(b, keys)?))
}

fn main() -> std::process::ExitCode {
    commands::main()
}
