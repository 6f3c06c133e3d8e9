//! What the two `wasi:keyvalue@0.2.0-draft2` test guests (`kv-draft2` and
//! `kv-draft2-spin`, which differ only in `get-many`) share: string
//! cursors, `s64` counters, and the compare-and-swap commands `cas`,
//! `cas-race` and `cas-incr`. Each guest supplies the bindings as `kv` and
//! its `get_many`.

use super::kv;
use kv::atomics::{Cas, CasError};

pub type Cursor = String;
pub type Delta = i64;

pub fn list_keys(
    b: &kv::store::Bucket,
    cursor: Option<&Cursor>,
) -> Result<kv::store::KeyResponse, kv::store::Error> {
    b.list_keys(cursor.map(String::as_str))
}

pub fn parse_cursor(arg: &str) -> Cursor {
    arg.to_owned()
}

fn value(v: Option<Vec<u8>>) -> String {
    v.map_or_else(
        || "none".into(),
        |v| String::from_utf8_lossy(&v).into_owned(),
    )
}

/// Swaps `handle` to `new`: `swapped`, or `cas-failed current=V` with the
/// fresh handle.
fn swap(handle: Cas, new: &str) -> Result<(String, Option<Cas>), kv::store::Error> {
    match kv::atomics::swap(handle, new.as_bytes()) {
        Ok(()) => Ok(("swapped".into(), None)),
        Err(CasError::CasFailed(fresh)) => {
            let current = value(fresh.current()?);
            Ok((format!("cas-failed current={current}"), Some(fresh)))
        }
        Err(CasError::StoreError(e)) => Err(e),
    }
}

pub fn extra(command: &str, b: &kv::store::Bucket, rest: &[String]) -> super::commands::Outcome {
    let key = rest.first().map(String::as_str).unwrap_or_default();
    Ok(match command {
        // One compare-and-swap: KEY NEW.
        "cas" => swap(Cas::new(b, key)?, rest.get(1).map_or("", |s| s))?.0,
        // Two handles read the same version; the first swap wins, the
        // second fails with a fresh handle, and a retry with it wins.
        "cas-race" => {
            let first = Cas::new(b, key)?;
            let second = Cas::new(b, key)?;
            let before = value(first.current()?);
            let (one, _) = swap(first, "one")?;
            let (two, fresh) = swap(second, "two")?;
            let retry = match fresh {
                Some(fresh) => swap(fresh, "three")?.0,
                None => "no fresh handle".into(),
            };
            format!("before={before}\nfirst: {one}\nsecond: {two}\nretry: {retry}")
        }
        // KEY TIMES: adds one TIMES times by compare-and-swap; prints how
        // many swaps lost a race.
        "cas-incr" => {
            let times: u32 = rest.get(1).and_then(|t| t.parse().ok()).unwrap_or(1);
            let mut lost = 0;
            for _ in 0..times {
                let mut handle = Cas::new(b, key)?;
                loop {
                    let n: u64 = value(handle.current()?).parse().unwrap_or(0);
                    match kv::atomics::swap(handle, (n + 1).to_string().as_bytes()) {
                        Ok(()) => break,
                        Err(CasError::CasFailed(fresh)) => {
                            lost += 1;
                            handle = fresh;
                        }
                        Err(CasError::StoreError(e)) => return Err(e),
                    }
                }
            }
            format!("lost {lost}")
        }
        other => format!("unknown command {other}"),
    })
}
