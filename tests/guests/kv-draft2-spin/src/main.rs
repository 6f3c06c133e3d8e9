//! A test guest written against `wasi:keyvalue@0.2.0-draft2` alone with
//! `get-many` in the shape of Spin's SDK (one pair per key asked for, the
//! value `None` where missing); otherwise the same as `kv-draft2`.

#![allow(missing_docs)]

wit_bindgen::generate!({
    path: "../../../wit/variants/keyvalue-0.2.0-draft2-spin",
    world: "wasi:keyvalue/imports",
});

use wasi::keyvalue as kv;

#[path = "../../kv-common/commands.rs"]
mod commands;
#[path = "../../kv-common/draft2.rs"]
mod draft2;

use draft2::{Cursor, Delta, extra, list_keys, parse_cursor};

/// `get-many` as the commands print it: already a pair per key.
fn get_many(b: &kv::store::Bucket, keys: &[String]) -> Result<commands::Pairs, kv::store::Error> {
    kv::batch::get_many(b, keys)
}

fn main() -> std::process::ExitCode {
    commands::main()
}
