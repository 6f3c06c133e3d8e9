//! The commands every `wasi:keyvalue` test guest understands, written against
//! the interface names only; each guest supplies its version's bindings as
//! `kv`, its `Cursor` and `Delta` types, `list_keys`, `get_many` (as pairs
//! of the key and its value or `None`, whatever its shape) and
//! version-only commands (`extra`).
//!
//! `GUEST COMMAND BUCKET ARGS…` prints its result on stdout, or `err KIND` /
//! `err other: MESSAGE` for the interface's `error`, and exits with 1 then.

use std::process::ExitCode;

use super::{Cursor, Delta, extra, kv, list_keys};
use kv::store::{Bucket, Error};

/// What a command printed, or the interface's error.
pub type Outcome = Result<String, Error>;

/// `get-many`'s answer as the commands print it: each key asked for, with
/// its value or `None`.
pub type Pairs = Vec<(String, Option<Vec<u8>>)>;

/// The standard repository's `get-many` answer (`None` for a key that holds
/// nothing) as [`Pairs`]. (The guest of Spin's shape has no use for it.)
#[allow(dead_code)]
pub fn pairs(keys: &[String], found: Vec<Option<(String, Vec<u8>)>>) -> Pairs {
    keys.iter()
        .zip(found)
        .map(|(asked, entry)| match entry {
            Some((key, value)) => (key, Some(value)),
            None => (asked.clone(), None),
        })
        .collect()
}

/// The error as a test reads it.
pub fn show(e: &Error) -> String {
    match e {
        Error::NoSuchStore => "no-such-store".into(),
        Error::AccessDenied => "access-denied".into(),
        Error::Other(message) => format!("other: {message}"),
    }
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, bucket, rest @ ..] = args.as_slice() else {
        println!("usage: COMMAND BUCKET ARGS…");
        return ExitCode::from(2);
    };
    match run(command, bucket, rest) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("err {}", show(&e));
            ExitCode::FAILURE
        }
    }
}

fn arg(rest: &[String], i: usize) -> &str {
    rest.get(i).map(String::as_str).unwrap_or_default()
}

fn run(command: &str, bucket: &str, rest: &[String]) -> Outcome {
    let b = kv::store::open(bucket)?;
    Ok(match command {
        "open" => "ok".into(),
        "get" => match b.get(arg(rest, 0))? {
            Some(v) => String::from_utf8_lossy(&v).into_owned(),
            None => "none".into(),
        },
        "set" => {
            b.set(arg(rest, 0), arg(rest, 1).as_bytes())?;
            "ok".into()
        }
        // `get-loop PREFIX N SPREAD`: N gets of PREFIX0 … PREFIX{SPREAD-1}
        // in turn (named before the loop), for the benchmark; prints the hits.
        "get-loop" => {
            let n: usize = arg(rest, 1).parse().unwrap_or(0);
            let spread: usize = arg(rest, 2).parse().unwrap_or(1).max(1);
            let keys: Vec<String> = (0..spread)
                .map(|i| format!("{}{i}", arg(rest, 0)))
                .collect();
            let mut hits = 0u64;
            for i in 0..n {
                hits += u64::from(b.get(&keys[i % spread])?.is_some());
            }
            hits.to_string()
        }
        "set-size" => {
            let size = arg(rest, 1).parse().unwrap_or(0);
            b.set(arg(rest, 0), &vec![b'x'; size])?;
            "ok".into()
        }
        "delete" => {
            b.delete(arg(rest, 0))?;
            "ok".into()
        }
        "exists" => b.exists(arg(rest, 0))?.to_string(),
        "incr" => {
            let delta: Delta = arg(rest, 1).parse().unwrap_or_default();
            let times: u32 = arg(rest, 2).parse().unwrap_or(1);
            let mut last = Default::default();
            for _ in 0..times {
                last = kv::atomics::increment(&b, arg(rest, 0), delta)?;
            }
            last.to_string()
        }
        "list" => list(&b)?,
        "page" => {
            let cursor = rest.first().map(|c| super::parse_cursor(c));
            let page = list_keys(&b, cursor.as_ref())?;
            let mut out: Vec<String> = page.keys;
            out.push(match page.cursor {
                Some(c) => format!("cursor {c}"),
                None => "cursor none".into(),
            });
            out.join("\n")
        }
        // The key printed is the one the host answered with.
        "get-many" => super::get_many(&b, rest)?
            .into_iter()
            .map(|(key, value)| match value {
                Some(v) => format!("{key}={}", String::from_utf8_lossy(&v)),
                None => format!("{key}: none"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        "set-many" => {
            let pairs: Vec<(String, Vec<u8>)> = rest
                .iter()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_owned(), v.as_bytes().to_vec())
                })
                .collect();
            kv::batch::set_many(&b, &pairs)?;
            "ok".into()
        }
        "delete-many" => {
            kv::batch::delete_many(&b, rest)?;
            "ok".into()
        }
        // Holds N more handles of the bucket open at once.
        "open-many" => {
            let n: usize = arg(rest, 0).parse().unwrap_or(0);
            let mut open = Vec::with_capacity(n);
            for _ in 0..n {
                open.push(kv::store::open(bucket)?);
            }
            format!("opened {}", open.len())
        }
        other => return extra(other, &b, rest),
    })
}

/// Every key, a page at a time, then `pages N`.
fn list(b: &Bucket) -> Outcome {
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = list_keys(b, cursor.as_ref())?;
        pages += 1;
        out.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.push(format!("pages {pages}"));
    Ok(out.join("\n"))
}
