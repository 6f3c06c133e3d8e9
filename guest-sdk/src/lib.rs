//! # cubby-sdk
//!
//! Write Cubby plugins in ordinary Rust. A plugin is a WebAssembly component
//! built for `wasm32-wasip2`; the host binds every instance to one
//! **workspace**, and every function here reads and writes that workspace
//! only. There is nothing to open or configure.
//!
//! The free functions work on the workspace's default space; a [`Namespace`]
//! has the same functions for a named namespace. Beyond bytes, strings and
//! JSON there are expiry ([`put`] with a TTL, [`get_and_renew`],
//! [`expire`]), atomic counters ([`Counter`]), compare-and-swap ([`put`]
//! with a condition, [`update`]), batches ([`get_many`], [`set_many`],
//! [`delete_many`]), all-or-nothing [`Transaction`]s, [`usage`] and
//! [`limits`], and values of any size written and read as streams
//! ([`create`] and [`open`], `std::io::Write` and `std::io::Read`).
//!
//! ```no_run
//! // A command-style plugin (a binary with `fn main`), run with `cubby run`.
//! fn main() -> Result<(), cubby_sdk::Error> {
//!     let visits: u64 = cubby_sdk::get_json("visits")?.unwrap_or(0) + 1;
//!     cubby_sdk::set_json("visits", &visits)?;
//!     println!("visit number {visits}");
//!     Ok(())
//! }
//! ```
//!
//! A request/response plugin (a `cdylib`, called with `cubby call`)
//! implements [`Plugin`] and exports it with [`export!`]:
//!
//! ```no_run
//! struct Echo;
//!
//! impl cubby_sdk::Plugin for Echo {
//!     fn handle(request: Vec<u8>) -> Result<Vec<u8>, String> {
//!         cubby_sdk::set("last-request", &request)?;
//!         Ok(request)
//!     }
//! }
//!
//! cubby_sdk::export!(Echo);
//! # fn main() {}
//! ```
//!
//! One whose requests and responses are JSON implements [`JsonPlugin`]
//! instead, with its own request and response types; decoding, encoding and
//! the error answers are done for it:
//!
//! ```no_run
//! #[derive(serde::Deserialize)]
//! struct Visit { who: String }
//!
//! struct Visits;
//!
//! impl cubby_sdk::JsonPlugin for Visits {
//!     const NAME: &str = "visits";
//!     const EXPECTED: &str = r#"{"who":…}"#;
//!     type Request = Visit;
//!     type Response = i64;
//!
//!     fn handle(visit: Visit) -> Result<i64, String> {
//!         Ok(cubby_sdk::increment(format!("visits/{}", visit.who), 1)?)
//!     }
//! }
//!
//! cubby_sdk::export!(Visits);
//! # fn main() {}
//! ```
//!
//! The storage functions only work inside a plugin run by a Cubby host; in a
//! native build they compile but panic when called.

#![deny(missing_docs)]

// Lets the generated bindings name this crate as `::cubby_sdk` from inside it,
// the same path they use when expanded in a plugin crate.
extern crate self as cubby_sdk;

mod builders;
mod error;
mod json;
mod namespace;
mod stream;
mod types;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use builders::{Counter, Key, Outcome, Put, Transaction};
pub use error::{Error, Result};
pub use json::JsonPlugin;
pub use namespace::Namespace;
pub use stream::{Reader, StreamOptions, ValueInfo, Writer, create, create_with, info, open};
pub use types::{Condition, Entry, KeyPage, Keys, Limits, Usage};

#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "::cubby_sdk::bindings",
        runtime_path: "::cubby_sdk::__private::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

use bindings::cubby::storage::storage as wit;

/// The entry point of a request/response plugin: implement it and pass the
/// type to [`export!`].
///
/// `handle` gets the request bytes and returns the response bytes, or an error
/// message that the host reports to its caller.
///
/// ```no_run
/// struct Greeter;
///
/// impl cubby_sdk::Plugin for Greeter {
///     fn handle(request: Vec<u8>) -> Result<Vec<u8>, String> {
///         let name = String::from_utf8(request).map_err(|_| "name must be UTF-8")?;
///         Ok(format!("hello, {name}").into_bytes())
///     }
/// }
///
/// cubby_sdk::export!(Greeter);
/// # fn main() {}
/// ```
pub use bindings::exports::cubby::storage::handler::Guest as Plugin;

/// Exports a type that implements [`Plugin`] as this component's handler.
///
/// Use it once, in a `cdylib` crate built for `wasm32-wasip2`:
///
/// ```no_run
/// struct Noop;
/// impl cubby_sdk::Plugin for Noop {
///     fn handle(_: Vec<u8>) -> Result<Vec<u8>, String> { Ok(Vec::new()) }
/// }
/// cubby_sdk::export!(Noop);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export {
    ($plugin:ident) => {
        $crate::__export_plugin_impl!($plugin with_types_in $crate::bindings);
    };
}

/// Returns the bytes stored under `key`, or `None`.
///
/// ```no_run
/// if let Some(bytes) = cubby_sdk::get("avatar.png")? {
///     println!("{} bytes", bytes.len());
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn get(key: impl AsRef<str>) -> Result<Option<Vec<u8>>> {
    Namespace::DEFAULT.get(key)
}

/// Stores `value` under `key`, replacing any previous value (and its
/// expiry). Durable once it returns (unless the host runs in relaxed or
/// in-memory mode). For a TTL or a condition, use [`put`].
///
/// ```no_run
/// cubby_sdk::set("avatar.png", [0x89, b'P', b'N', b'G'])?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn set(key: impl AsRef<str>, value: impl AsRef<[u8]>) -> Result<()> {
    Namespace::DEFAULT.set(key, value)
}

/// Starts a write with a time-to-live and/or a condition; see [`Put`].
///
/// ```no_run
/// use std::time::Duration;
/// let version = cubby_sdk::put("token", b"abc").ttl(Duration::from_secs(3600)).apply()?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Put {
    Namespace::DEFAULT.put(key, value)
}

/// Like [`put`], with `value` encoded as JSON.
///
/// ```no_run
/// use std::time::Duration;
/// cubby_sdk::put_json("profile", &["ada", "admin"])?.ttl(Duration::from_secs(60)).apply()?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn put_json<T: Serialize + ?Sized>(key: impl Into<String>, value: &T) -> Result<Put> {
    Namespace::DEFAULT.put_json(key, value)
}

/// Removes `key`; returns whether it existed. A missing key is not an error.
///
/// ```no_run
/// let existed = cubby_sdk::delete("session")?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn delete(key: impl AsRef<str>) -> Result<bool> {
    Namespace::DEFAULT.delete(key)
}

/// Returns whether a value is stored under `key`.
///
/// ```no_run
/// if !cubby_sdk::exists("initialised")? {
///     cubby_sdk::set("initialised", b"yes")?;
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn exists(key: impl AsRef<str>) -> Result<bool> {
    Namespace::DEFAULT.exists(key)
}

/// Returns the entry under `key` with its version and remaining
/// time-to-live, or `None`.
///
/// ```no_run
/// if let Some(e) = cubby_sdk::entry("doc")? {
///     cubby_sdk::put("doc", b"edited").if_version(e.version).apply()?;
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn entry(key: impl AsRef<str>) -> Result<Option<Entry>> {
    Namespace::DEFAULT.entry(key)
}

/// Returns the entry under `key` and, atomically, makes it expire `ttl` from
/// now: sliding expiry, as for sessions. `None` if there is none.
///
/// ```no_run
/// use std::time::Duration;
/// let session = cubby_sdk::get_and_renew("session/abc", Duration::from_secs(1800))?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn get_and_renew(key: impl AsRef<str>, ttl: Duration) -> Result<Option<Entry>> {
    Namespace::DEFAULT.get_and_renew(key, ttl)
}

/// Sets (`Some`) or removes (`None`) the expiry of `key`, keeping its value
/// and version; `false` if there is no entry.
///
/// ```no_run
/// use std::time::Duration;
/// cubby_sdk::expire("draft", Some(Duration::from_secs(86_400)))?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn expire(key: impl AsRef<str>, ttl: Option<Duration>) -> Result<bool> {
    Namespace::DEFAULT.expire(key, ttl)
}

/// Adds `delta` to the counter under `key` and returns the new value,
/// atomically; see [`Counter`].
///
/// ```no_run
/// let n = cubby_sdk::increment("visits", 1)?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn increment(key: impl AsRef<str>, delta: i64) -> Result<i64> {
    Namespace::DEFAULT.increment(key, delta)
}

/// Replaces the value under `key` with `f(current)` using compare-and-swap,
/// retrying until no concurrent writer got in between; see
/// [`Namespace::update`].
///
/// ```no_run
/// cubby_sdk::update("log", |old| {
///     let mut log = old.map(<[u8]>::to_vec).unwrap_or_default();
///     log.extend_from_slice(b"one more line\n");
///     log
/// })?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn update(key: impl AsRef<str>, f: impl FnMut(Option<&[u8]>) -> Vec<u8>) -> Result<Vec<u8>> {
    Namespace::DEFAULT.update(key, f)
}

/// [`update`] for a JSON value; see [`Namespace::update_json`].
///
/// ```no_run
/// let total: u64 = cubby_sdk::update_json("total", |t: Option<u64>| t.unwrap_or(0) + 5)?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn update_json<T: Serialize + DeserializeOwned>(
    key: impl AsRef<str>,
    f: impl FnMut(Option<T>) -> T,
) -> Result<T> {
    Namespace::DEFAULT.update_json(key, f)
}

/// Returns the value under `key` as UTF-8 text, or `None`. A value that is
/// not UTF-8 is [`Error::Decode`].
///
/// ```no_run
/// let name = cubby_sdk::get_string("name")?.unwrap_or_else(|| "world".into());
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn get_string(key: impl AsRef<str>) -> Result<Option<String>> {
    Namespace::DEFAULT.get_string(key)
}

/// Stores `value` as UTF-8 text under `key`.
///
/// ```no_run
/// cubby_sdk::set_string("name", "Ada")?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn set_string(key: impl AsRef<str>, value: impl AsRef<str>) -> Result<()> {
    Namespace::DEFAULT.set_string(key, value)
}

/// Returns the JSON value under `key` decoded as `T`, or `None`.
///
/// ```no_run
/// #[derive(serde::Deserialize)]
/// struct Settings { theme: String }
///
/// let settings: Option<Settings> = cubby_sdk::get_json("settings")?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn get_json<T: DeserializeOwned>(key: impl AsRef<str>) -> Result<Option<T>> {
    Namespace::DEFAULT.get_json(key)
}

/// Stores `value` as JSON under `key`.
///
/// ```no_run
/// #[derive(serde::Serialize)]
/// struct Settings { theme: String }
///
/// cubby_sdk::set_json("settings", &Settings { theme: "dark".into() })?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn set_json<T: Serialize + ?Sized>(key: impl AsRef<str>, value: &T) -> Result<()> {
    Namespace::DEFAULT.set_json(key, value)
}

/// Returns the values of `keys` in order, from one consistent snapshot.
///
/// ```no_run
/// let [a, b] = <[_; 2]>::try_from(cubby_sdk::get_many(&["a", "b"])?).unwrap();
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn get_many<K: AsRef<str>>(keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
    Namespace::DEFAULT.get_many(keys)
}

/// Stores every pair, all-or-nothing, in one transaction.
///
/// ```no_run
/// cubby_sdk::set_many(&[("first", "Ada"), ("last", "Lovelace")])?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn set_many<K: AsRef<str>, V: AsRef<[u8]>>(entries: &[(K, V)]) -> Result<()> {
    Namespace::DEFAULT.set_many(entries)
}

/// Removes every key, all-or-nothing; returns how many existed.
///
/// ```no_run
/// let removed = cubby_sdk::delete_many(&["first", "last"])?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn delete_many<K: AsRef<str>>(keys: &[K]) -> Result<u32> {
    Namespace::DEFAULT.delete_many(keys)
}

/// Lists one page of keys, optionally only those starting with `prefix`.
///
/// `cursor` is `None` for the first page, then the previous page's cursor;
/// `limit` is the page size wanted (the host clamps it). Most plugins want
/// [`keys`], which does the paging.
///
/// ```no_run
/// let first = cubby_sdk::list_keys(Some("user/"), None, Some(50))?;
/// if let Some(cursor) = first.cursor {
///     let second = cubby_sdk::list_keys(Some("user/"), Some(&cursor), Some(50))?;
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn list_keys(
    prefix: Option<&str>,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<KeyPage> {
    Namespace::DEFAULT.list_keys(prefix, cursor, limit)
}

/// Iterates over all keys of the default space in ascending byte order,
/// fetching them a page at a time.
///
/// ```no_run
/// for key in cubby_sdk::keys() {
///     println!("{}", key?);
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn keys() -> Keys {
    Namespace::DEFAULT.keys()
}

/// Iterates over the keys that start with `prefix`, in ascending byte order.
///
/// ```no_run
/// let users: Vec<String> = cubby_sdk::keys_with_prefix("user/").collect::<Result<_, _>>()?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn keys_with_prefix(prefix: impl Into<String>) -> Keys {
    Namespace::DEFAULT.keys_with_prefix(prefix)
}

/// Iterates over the names of the workspace's namespaces that hold a key
/// (the default space is not listed).
///
/// ```no_run
/// for name in cubby_sdk::namespaces() {
///     println!("{}", name?);
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn namespaces() -> Keys {
    Keys::new(types::Listing::Namespaces)
}

/// What the whole workspace stores, all namespaces together (live entries
/// only). For one namespace, see [`Namespace::usage`].
///
/// ```no_run
/// let u = cubby_sdk::usage()?;
/// println!("{} keys, {} bytes", u.keys, u.bytes);
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn usage() -> Result<Usage> {
    let u = wit::usage(None)?;
    Ok(Usage {
        keys: u.keys,
        bytes: u.bytes,
    })
}

/// The limits and quotas the host enforces on this workspace.
///
/// ```no_run
/// let limits = cubby_sdk::limits();
/// println!("values up to {} bytes", limits.max_value_bytes);
/// ```
pub fn limits() -> Limits {
    let l = wit::limits();
    Limits {
        max_keys: l.max_keys,
        max_bytes: l.max_bytes,
        max_key_bytes: l.max_key_bytes,
        max_value_bytes: l.max_value_bytes,
        max_batch: l.max_batch,
        max_page: l.max_page,
    }
}
