//! `probe`: a test-only plugin that performs the storage call a request names
//! and reports the result as JSON, so tests can drive any key (hostile ones
//! included) through the real guest → host path, and repeats a get for the
//! benchmark, and exercises every richer operation (expiry, counters,
//! compare-and-swap, batches, transactions, namespaces, usage). It also probes the sandbox and misbehaves on request: loops
//! forever, grows memory without bound, or panics. It writes and reads
//! streamed values of any size from a seeded pattern, to check them
//! without holding them.

mod pattern;
use pattern::Pattern;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cubby_sdk::{Condition, Namespace, Transaction};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Request {
    Get {
        #[serde(default)]
        ns: String,
        key: String,
    },
    Set {
        #[serde(default)]
        ns: String,
        key: String,
        value: String,
    },
    SetBytes {
        key: String,
        len: usize,
    },
    Delete {
        #[serde(default)]
        ns: String,
        key: String,
    },
    Exists {
        #[serde(default)]
        ns: String,
        key: String,
    },
    /// A `put` with optional TTL and condition; answers the new version.
    Put {
        key: String,
        value: String,
        ttl_ms: Option<u64>,
        #[serde(default)]
        if_absent: bool,
        if_version: Option<u64>,
    },
    Entry {
        key: String,
    },
    Renew {
        key: String,
        ttl_ms: u64,
    },
    Expire {
        key: String,
        ttl_ms: Option<u64>,
    },
    DeleteIf {
        key: String,
        version: u64,
    },
    Incr {
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    },
    /// `n` increments of 1; answers the last value.
    IncrLoop {
        key: String,
        n: u32,
    },
    /// `n` read-modify-write updates (+1) through compare-and-swap.
    UpdateLoop {
        key: String,
        n: u32,
    },
    GetMany {
        keys: Vec<String>,
    },
    SetMany {
        entries: Vec<(String, String)>,
    },
    DeleteMany {
        keys: Vec<String>,
    },
    Tx {
        ops: Vec<TxOp>,
    },
    Clear {
        ns: String,
    },
    Namespaces,
    Usage {
        ns: Option<String>,
    },
    Limits,
    Page {
        prefix: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    },
    Keys {
        prefix: Option<String>,
    },
    /// `n` gets in a loop (for the benchmark): of `key` itself, or with
    /// `spread`, of the keys `{key}0` … `{key}{spread-1}` in turn (named
    /// before the loop starts); answers the hits.
    RepeatGet {
        key: String,
        n: u32,
        #[serde(default)]
        spread: u32,
    },
    /// `n` sets of `{key}0` … `{key}{n-1}` to a 16-byte value, each its own
    /// write (for the benchmark); answers `n`.
    RepeatSet {
        key: String,
        n: u32,
    },
    /// What this instance found left of earlier calls: how many calls its
    /// statics counted before this one, its memory's size in 64 KiB
    /// pages when the call began, and how many words of a zeroed and of an
    /// initialised static array differ from what the plugin was built with
    /// (all the same on every call when each call gets a fresh instance);
    /// then it overwrites both arrays with `mark`, for the next call to find.
    /// Also whether its stack lies below its data in memory (so running past
    /// the stack traps instead of overwriting data).
    Leftover {
        #[serde(default)]
        mark: u64,
    },
    /// Tries the ambient authority a plugin must not have: the host's files,
    /// its environment, and a TCP connection to `port` on loopback.
    Ambient {
        port: u16,
    },
    /// Writes `size` bytes made from `seed` (see [`Pattern`]) as a stream,
    /// in pieces of 64 KiB; answers the version.
    StreamWrite {
        key: String,
        size: u64,
        seed: u64,
        #[serde(default)]
        compress: bool,
        #[serde(default)]
        if_absent: bool,
        /// Stop after this many bytes without finishing.
        abandon_after: Option<u64>,
    },
    /// Reads the value under `key` as a stream and checks it against the
    /// bytes `seed` makes; answers its size, whether every byte matched, and
    /// the largest piece the host returned.
    StreamRead {
        key: String,
        seed: u64,
    },
    /// The value's metadata (`info`).
    StreamInfo {
        key: String,
    },
    Spin,
    Grow,
    Panic,
}

fn stream_write(
    key: &str,
    size: u64,
    seed: u64,
    options: &cubby_sdk::StreamOptions,
    abandon_after: Option<u64>,
) -> cubby_sdk::Result<Value> {
    let mut writer = cubby_sdk::create_with(key, options)?;
    let mut pattern = Pattern::new(seed);
    let mut piece = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        if abandon_after.is_some_and(|at| size - left >= at) {
            return Ok(json!("abandoned"));
        }
        let n = left.min(piece.len() as u64) as usize;
        pattern.fill(&mut piece[..n]);
        writer.write_bytes(&piece[..n])?;
        left -= n as u64;
    }
    Ok(json!(writer.finish()?))
}

fn stream_read(key: &str, seed: u64) -> cubby_sdk::Result<Value> {
    let Some(mut reader) = cubby_sdk::open(key)? else {
        return Ok(Value::Null);
    };
    let mut pattern = Pattern::new(seed);
    let (mut size, mut matches, mut largest) = (0u64, true, 0usize);
    loop {
        let chunk = reader.read_chunk()?;
        if chunk.is_empty() {
            break;
        }
        matches &= pattern.check(&chunk);
        size += chunk.len() as u64;
        largest = largest.max(chunk.len());
    }
    Ok(json!({ "size": size, "matches": matches, "largest_piece": largest }))
}

/// One operation of a `tx` request.
#[derive(Deserialize)]
struct TxOp {
    #[serde(default)]
    ns: String,
    key: String,
    action: String,
    value: Option<String>,
    delta: Option<i64>,
    #[serde(default)]
    if_absent: bool,
    if_version: Option<u64>,
    if_value: Option<String>,
}

fn ns(name: String) -> Namespace {
    Namespace::new(name)
}

fn entry_json(e: Option<cubby_sdk::Entry>) -> Value {
    e.map_or(Value::Null, |e| {
        json!({
            "value": String::from_utf8_lossy(&e.value),
            "version": e.version,
            "ttl_ms": e.expires_in.map(|d| d.as_millis() as u64),
        })
    })
}

fn tx(ops: Vec<TxOp>) -> cubby_sdk::Result<Value> {
    let mut t = Transaction::new();
    for op in ops {
        let key = ns(op.ns).key(op.key);
        t = match op.action.as_str() {
            "check" => t.check(key, Condition::Absent),
            "set" => t.set(key, op.value.unwrap_or_default()),
            "delete" => t.delete(key),
            _ => t.increment(key, op.delta.unwrap_or(1)),
        };
        if op.if_absent {
            t = t.if_absent();
        }
        if let Some(v) = op.if_version {
            t = t.if_version(v);
        }
        if let Some(v) = op.if_value {
            t = t.if_value(v);
        }
    }
    let outcomes = t.commit()?;
    Ok(json!(
        outcomes
            .iter()
            .map(|o| format!("{o:?}"))
            .collect::<Vec<_>>()
    ))
}

/// Words in each marked array: 16 KiB, several pages of memory.
const MARKED_WORDS: usize = 2048;
/// What every word of [`INITIALISED`] holds in the plugin as built.
const INITIAL_WORD: u64 = 0x005e_ed0f_c0ff_ee00;

/// An array the plugin starts with zeroed (`.bss`), and one it starts with
/// data from its image (`.data`).
static ZEROED: [AtomicU64; MARKED_WORDS] = [const { AtomicU64::new(0) }; MARKED_WORDS];
static INITIALISED: [AtomicU64; MARKED_WORDS] =
    [const { AtomicU64::new(INITIAL_WORD) }; MARKED_WORDS];

/// How many words of [`ZEROED`] and [`INITIALISED`] differ from the plugin
/// as built; then overwrites every word of both with `mark`.
fn leftover_marks(mark: u64) -> (usize, usize) {
    let changed = |array: &[AtomicU64], initial: u64| {
        array
            .iter()
            .filter(|w| w.swap(mark, Ordering::SeqCst) != initial)
            .count()
    };
    (changed(&ZEROED, 0), changed(&INITIALISED, INITIAL_WORD))
}

struct Probe;

impl cubby_sdk::Plugin for Probe {
    fn handle(request: Vec<u8>) -> Result<Vec<u8>, String> {
        let pages_at_start = memory_pages();
        let request: Request =
            serde_json::from_slice(&request).map_err(|e| format!("bad request: {e}"))?;
        let result = match request {
            Request::Get { ns: n, key } => ns(n).get_string(&key).map(|v| json!(v)),
            Request::Set { ns: n, key, value } => {
                ns(n).set_string(&key, &value).map(|()| Value::Null)
            }
            Request::SetBytes { key, len } => {
                cubby_sdk::set(&key, vec![7u8; len]).map(|()| Value::Null)
            }
            Request::Delete { ns: n, key } => ns(n).delete(&key).map(|b| json!(b)),
            Request::Exists { ns: n, key } => ns(n).exists(&key).map(|b| json!(b)),
            Request::Put {
                key,
                value,
                ttl_ms,
                if_absent,
                if_version,
            } => {
                let mut put = cubby_sdk::put(key, value);
                if let Some(ms) = ttl_ms {
                    put = put.ttl(Duration::from_millis(ms));
                }
                if if_absent {
                    put = put.if_absent();
                }
                if let Some(v) = if_version {
                    put = put.if_version(v);
                }
                put.apply().map(|v| json!(v))
            }
            Request::Entry { key } => cubby_sdk::entry(&key).map(entry_json),
            Request::Renew { key, ttl_ms } => {
                cubby_sdk::get_and_renew(&key, Duration::from_millis(ttl_ms)).map(entry_json)
            }
            Request::Expire { key, ttl_ms } => {
                cubby_sdk::expire(&key, ttl_ms.map(Duration::from_millis)).map(|b| json!(b))
            }
            Request::DeleteIf { key, version } => Namespace::DEFAULT
                .delete_if_version(&key, version)
                .map(|b| json!(b)),
            Request::Incr { key, delta, ttl_ms } => {
                let mut counter = cubby_sdk::Counter::new(key);
                if let Some(ms) = ttl_ms {
                    counter = counter.expire_new_after(Duration::from_millis(ms));
                }
                counter.add(delta).map(|n| json!(n))
            }
            Request::IncrLoop { key, n } => (0..n)
                .try_fold(0, |_, _| cubby_sdk::increment(&key, 1))
                .map(|n| json!(n)),
            Request::UpdateLoop { key, n } => (0..n)
                .try_fold(0u64, |_, _| {
                    cubby_sdk::update_json(&key, |old: Option<u64>| old.unwrap_or(0) + 1)
                })
                .map(|n| json!(n)),
            Request::GetMany { keys } => cubby_sdk::get_many(&keys).map(|values| {
                json!(
                    values
                        .into_iter()
                        .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
                        .collect::<Vec<_>>()
                )
            }),
            Request::SetMany { entries } => cubby_sdk::set_many(&entries).map(|()| Value::Null),
            Request::DeleteMany { keys } => cubby_sdk::delete_many(&keys).map(|n| json!(n)),
            Request::Tx { ops } => tx(ops),
            Request::Clear { ns: n } => ns(n).clear().map(|n| json!(n)),
            Request::Namespaces => cubby_sdk::namespaces()
                .collect::<Result<Vec<_>, _>>()
                .map(|n| json!(n)),
            Request::Usage { ns: None } => cubby_sdk::usage().map(|u| json!([u.keys, u.bytes])),
            Request::Usage { ns: Some(n) } => ns(n).usage().map(|u| json!([u.keys, u.bytes])),
            Request::Limits => {
                let l = cubby_sdk::limits();
                Ok(
                    json!({ "max_keys": l.max_keys, "max_bytes": l.max_bytes, "max_batch": l.max_batch }),
                )
            }
            Request::Page {
                prefix,
                cursor,
                limit,
            } => cubby_sdk::list_keys(prefix.as_deref(), cursor.as_deref(), limit)
                .map(|p| json!({ "keys": p.keys, "cursor": p.cursor })),
            Request::Keys { prefix } => {
                let keys = match prefix {
                    Some(p) => cubby_sdk::keys_with_prefix(p),
                    None => cubby_sdk::keys(),
                };
                keys.collect::<Result<Vec<_>, _>>().map(|k| json!(k))
            }
            Request::RepeatGet { key, n, spread } => {
                let keys: Vec<String> = match spread {
                    0 => vec![key],
                    _ => (0..spread).map(|i| format!("{key}{i}")).collect(),
                };
                (0..n as usize)
                    .try_fold(0u32, |hits, i| {
                        cubby_sdk::get(&keys[i % keys.len()]).map(|v| hits + u32::from(v.is_some()))
                    })
                    .map(|hits| json!(hits))
            }
            Request::RepeatSet { key, n } => (0..n)
                .try_for_each(|i| cubby_sdk::set(format!("{key}{i}"), [7u8; 16]))
                .map(|()| json!(n)),
            Request::Leftover { mark } => {
                static CALLS: AtomicU64 = AtomicU64::new(0);
                let (zeroed, initialised) = leftover_marks(mark);
                let local = 0u8;
                let stack_below_data =
                    std::ptr::from_ref(&local).addr() < std::ptr::from_ref(&ZEROED).addr();
                Ok(json!({
                    "stack_below_data": stack_below_data,
                    "calls_before": CALLS.fetch_add(1, Ordering::SeqCst),
                    "pages": pages_at_start,
                    "zeroed_changed": zeroed,
                    "initialised_changed": initialised,
                }))
            }
            Request::Ambient { port } => Ok(json!({
                "files": std::fs::read_dir("/").is_ok() || std::fs::read("/etc/hostname").is_ok(),
                "env": std::env::vars().count(),
                "tcp": std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            })),
            Request::StreamWrite {
                key,
                size,
                seed,
                compress,
                if_absent,
                abandon_after,
            } => {
                let mut options = cubby_sdk::StreamOptions::new();
                if compress {
                    options = options.compress();
                }
                if if_absent {
                    options = options.if_absent();
                }
                stream_write(&key, size, seed, &options, abandon_after)
            }
            Request::StreamRead { key, seed } => stream_read(&key, seed),
            Request::StreamInfo { key } => cubby_sdk::info(&key).map(|i| {
                i.map_or(Value::Null, |i| {
                    json!({
                        "size": i.size,
                        "stored_size": i.stored_size,
                        "streamed": i.streamed,
                        "compressed": i.compressed,
                        "version": i.version,
                    })
                })
            }),
            Request::Spin => loop {
                std::hint::spin_loop();
            },
            Request::Grow => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Request::Panic => panic!("probe was asked to panic"),
        };
        let response = match result {
            Ok(value) => json!({ "ok": value }),
            Err(cubby_sdk::Error::Conflict { index, current }) => {
                json!({ "err": "conflict", "index": index, "current": entry_json(current) })
            }
            Err(e) => json!({ "err": kind(&e), "message": e.to_string() }),
        };
        serde_json::to_vec(&response).map_err(|e| e.to_string())
    }
}

fn kind(e: &cubby_sdk::Error) -> &'static str {
    match e {
        cubby_sdk::Error::InvalidKey(_) => "invalid-key",
        cubby_sdk::Error::ValueTooLarge(_) => "value-too-large",
        cubby_sdk::Error::QuotaExceeded(_) => "quota-exceeded",
        cubby_sdk::Error::InvalidCursor => "invalid-cursor",
        cubby_sdk::Error::InvalidNamespace(_) => "invalid-namespace",
        cubby_sdk::Error::NotACounter => "not-a-counter",
        cubby_sdk::Error::Overflow => "overflow",
        cubby_sdk::Error::TooManyOperations(_) => "too-many-operations",
        cubby_sdk::Error::InvalidArgument(_) => "invalid-argument",
        cubby_sdk::Error::Host(_) => "host",
        cubby_sdk::Error::Decode { .. } => "decode",
        _ => "other",
    }
}

cubby_sdk::export!(Probe);

/// The size of this instance's memory, in 64 KiB pages (0 off wasm, where
/// the guest is only type-checked).
fn memory_pages() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0);
    #[cfg(not(target_arch = "wasm32"))]
    0
}
