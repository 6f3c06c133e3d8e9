//! `probe`: a test-only plugin that performs the storage call a request names
//! and reports the result as JSON, so tests can drive any key (hostile ones
//! included) through the real guest → host path, and repeats a get for the
//! benchmark. It also probes the sandbox and misbehaves on request: loops
//! forever, grows memory without bound, or panics.

use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Request {
    Get {
        key: String,
    },
    Set {
        key: String,
        value: String,
    },
    SetBytes {
        key: String,
        len: usize,
    },
    Delete {
        key: String,
    },
    Exists {
        key: String,
    },
    Page {
        prefix: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    },
    Keys {
        prefix: Option<String>,
    },
    /// `n` gets of one key in a loop (for the benchmark); answers the hits.
    RepeatGet {
        key: String,
        n: u32,
    },
    /// Tries the ambient authority a plugin must not have: the host's files,
    /// its environment, and a TCP connection to `port` on loopback.
    Ambient {
        port: u16,
    },
    Spin,
    Grow,
    Panic,
}

struct Probe;

impl cubby_sdk::Plugin for Probe {
    fn handle(request: Vec<u8>) -> Result<Vec<u8>, String> {
        let request: Request =
            serde_json::from_slice(&request).map_err(|e| format!("bad request: {e}"))?;
        let result = match request {
            Request::Get { key } => cubby_sdk::get_string(&key).map(|v| json!(v)),
            Request::Set { key, value } => {
                cubby_sdk::set_string(&key, &value).map(|()| Value::Null)
            }
            Request::SetBytes { key, len } => {
                cubby_sdk::set(&key, vec![7u8; len]).map(|()| Value::Null)
            }
            Request::Delete { key } => cubby_sdk::delete(&key).map(|b| json!(b)),
            Request::Exists { key } => cubby_sdk::exists(&key).map(|b| json!(b)),
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
            Request::RepeatGet { key, n } => (0..n)
                .try_fold(0u32, |hits, _| {
                    cubby_sdk::get(&key).map(|v| hits + u32::from(v.is_some()))
                })
                .map(|hits| json!(hits)),
            Request::Ambient { port } => Ok(json!({
                "files": std::fs::read_dir("/").is_ok() || std::fs::read("/etc/hostname").is_ok(),
                "env": std::env::vars().count(),
                "tcp": std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            })),
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
        cubby_sdk::Error::Host(_) => "host",
        cubby_sdk::Error::Decode { .. } => "decode",
        _ => "other",
    }
}

cubby_sdk::export!(Probe);
