//! `guestbook`: a command-style plugin written against the standard
//! `wasi:keyvalue@0.2.0-draft2` alone (plain wit-bindgen over the WIT of it in
//! `wit/deps`, no `cubby-sdk`), so it runs on any host of that interface; on
//! Cubby its bucket is a namespace of the workspace the host chose.
//!
//! `cubby run guestbook.wasm -w a --env VISITOR=ada` signs workspace `a`'s
//! guestbook for ada and prints who has signed it; `--env FORGET=1` removes
//! the visitor's entries instead.

use std::process::ExitCode;

/// The standard interface's bindings, generated from its WIT.
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/deps/keyvalue-0.2.0-draft2",
        world: "wasi:keyvalue/imports",
    });
}

use bindings::wasi::keyvalue::store::{Bucket, Error};
use bindings::wasi::keyvalue::{atomics, batch, store};

/// The bucket this plugin keeps its entries in.
const BUCKET: &str = "guestbook";

fn main() -> ExitCode {
    let visitor = std::env::var("VISITOR").unwrap_or_else(|_| "anonymous".into());
    let result = match std::env::var("FORGET") {
        Ok(_) => forget(&visitor),
        Err(_) => sign(&visitor),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guestbook: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// Counts the visit, stores a greeting, and prints everyone who signed.
fn sign(visitor: &str) -> Result<(), Error> {
    let book = store::open(BUCKET)?;
    // An atomic counter: concurrent visits are never lost.
    let visits = atomics::increment(&book, &format!("visits/{visitor}"), 1)?;

    // Two entries in one call.
    let greeting = format!("greeting/{visitor}");
    batch::set_many(
        &book,
        &[
            ("last-visitor".to_string(), visitor.as_bytes().to_vec()),
            (greeting.clone(), format!("hello, {visitor}!").into_bytes()),
        ],
    )?;

    // A scratch entry: written, read back, removed.
    book.set("scratch", b"pen")?;
    let pen = book.get("scratch")?;
    book.delete("scratch")?;
    assert!(pen.is_some() && !book.exists("scratch")?);

    // Several entries read back in one call.
    let read = batch::get_many(&book, &["last-visitor".to_string(), greeting])?;
    if let Some(Some((_, hello))) = read.get(1) {
        println!("{}", String::from_utf8_lossy(hello));
    }
    println!("{visitor} has visited {visits} time(s)");

    let signed: Vec<String> = all_keys(&book)?
        .into_iter()
        .filter_map(|k| k.strip_prefix("visits/").map(str::to_owned))
        .collect();
    println!("signed by: {}", signed.join(", "));
    Ok(())
}

/// Removes the visitor's entries.
fn forget(visitor: &str) -> Result<(), Error> {
    let book = store::open(BUCKET)?;
    batch::delete_many(
        &book,
        &[format!("visits/{visitor}"), format!("greeting/{visitor}")],
    )?;
    println!("forgot {visitor}");
    Ok(())
}

/// Every key of the bucket, a page at a time.
fn all_keys(book: &Bucket) -> Result<Vec<String>, Error> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = book.list_keys(cursor.as_deref())?;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
}

fn describe(e: &Error) -> String {
    match e {
        Error::NoSuchStore => format!("there is no bucket {BUCKET:?}"),
        Error::AccessDenied => format!("the host does not let this plugin open {BUCKET:?}"),
        Error::Other(message) => message.clone(),
    }
}
