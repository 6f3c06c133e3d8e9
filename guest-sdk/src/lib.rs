//! # cubby-sdk
//!
//! Write Cubby plugins in ordinary Rust. A plugin is a WebAssembly component
//! built for `wasm32-wasip2`; the host binds every instance to one
//! **workspace**, and every function here reads and writes that workspace
//! only. There is nothing to open or configure.
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
//!         cubby_sdk::set("last-request", &request).map_err(|e| e.to_string())?;
//!         Ok(request)
//!     }
//! }
//!
//! cubby_sdk::export!(Echo);
//! # fn main() {}
//! ```
//!
//! The storage functions only work inside a plugin run by a Cubby host; in a
//! native build they compile but panic when called.

#![deny(missing_docs)]

// Lets the generated bindings name this crate as `::cubby_sdk` from inside it,
// the same path they use when expanded in a plugin crate.
extern crate self as cubby_sdk;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
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

/// What went wrong with a storage call or with decoding a stored value.
///
/// Every variant but [`Error::Host`] is caused by the plugin's own arguments
/// or data; `Display` gives a human message.
///
/// ```no_run
/// match cubby_sdk::set("k", vec![0u8; 10 << 20]) {
///     Ok(()) => {}
///     Err(cubby_sdk::Error::ValueTooLarge(limit)) => eprintln!("keep values under {limit} bytes"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key is empty or longer than the host's key limit.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The value is longer than the host's value limit (the payload, in bytes).
    #[error("value too large: the limit is {0} bytes")]
    ValueTooLarge(u64),
    /// The write would exceed one of the workspace's quotas; nothing was written.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// A listing cursor that the host did not hand out for this prefix.
    #[error("invalid listing cursor")]
    InvalidCursor,
    /// A failure on the host side, not caused by the plugin.
    #[error("storage failure on the host: {0}")]
    Host(String),
    /// The stored value could not be decoded as the type asked for.
    #[error("value of key {key:?} cannot be decoded: {reason}")]
    Decode {
        /// The key.
        key: String,
        /// Why decoding failed.
        reason: String,
    },
    /// The value could not be encoded (for example, JSON of a map with
    /// non-string keys).
    #[error("value cannot be encoded: {0}")]
    Encode(String),
}

impl From<wit::Error> for Error {
    fn from(e: wit::Error) -> Self {
        match e {
            wit::Error::InvalidKey(why) => Self::InvalidKey(why),
            wit::Error::ValueTooLarge(limit) => Self::ValueTooLarge(limit),
            wit::Error::QuotaExceeded(why) => Self::QuotaExceeded(why),
            wit::Error::InvalidCursor => Self::InvalidCursor,
            wit::Error::Internal(why) => Self::Host(why),
        }
    }
}

/// The result type of this crate: `Result<T, cubby_sdk::Error>`.
///
/// ```no_run
/// fn load_name() -> cubby_sdk::Result<String> {
///     Ok(cubby_sdk::get_string("name")?.unwrap_or_default())
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Returns the bytes stored under `key`, or `None`.
///
/// ```no_run
/// if let Some(bytes) = cubby_sdk::get("avatar.png")? {
///     println!("{} bytes", bytes.len());
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn get(key: impl AsRef<str>) -> Result<Option<Vec<u8>>> {
    Ok(wit::get(key.as_ref())?)
}

/// Stores `value` under `key`, replacing any previous value. Durable once it
/// returns (unless the host runs in relaxed or in-memory mode).
///
/// ```no_run
/// cubby_sdk::set("avatar.png", [0x89, b'P', b'N', b'G'])?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn set(key: impl AsRef<str>, value: impl AsRef<[u8]>) -> Result<()> {
    Ok(wit::set(key.as_ref(), value.as_ref())?)
}

/// Removes `key`; returns whether it existed. A missing key is not an error.
///
/// ```no_run
/// let existed = cubby_sdk::delete("session")?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn delete(key: impl AsRef<str>) -> Result<bool> {
    Ok(wit::delete(key.as_ref())?)
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
    Ok(wit::exists(key.as_ref())?)
}

/// Returns the value under `key` as UTF-8 text, or `None`. A value that is
/// not UTF-8 is [`Error::Decode`].
///
/// ```no_run
/// let name = cubby_sdk::get_string("name")?.unwrap_or_else(|| "world".into());
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn get_string(key: impl AsRef<str>) -> Result<Option<String>> {
    let key = key.as_ref();
    get(key)?
        .map(|bytes| String::from_utf8(bytes).map_err(|e| decode_error(key, e)))
        .transpose()
}

/// Stores `value` as UTF-8 text under `key`.
///
/// ```no_run
/// cubby_sdk::set_string("name", "Ada")?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn set_string(key: impl AsRef<str>, value: impl AsRef<str>) -> Result<()> {
    set(key, value.as_ref().as_bytes())
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
    let key = key.as_ref();
    get(key)?
        .map(|bytes| serde_json::from_slice(&bytes).map_err(|e| decode_error(key, e)))
        .transpose()
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
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Encode(e.to_string()))?;
    set(key, bytes)
}

fn decode_error(key: &str, e: impl std::fmt::Display) -> Error {
    Error::Decode {
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

/// One page of keys from [`list_keys`].
///
/// ```no_run
/// let page: cubby_sdk::KeyPage = cubby_sdk::list_keys(None, None, Some(10))?;
/// println!("{} keys, more: {}", page.keys.len(), page.cursor.is_some());
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in ascending byte order.
    pub keys: Vec<String>,
    /// Pass to [`list_keys`] for the next page; `None` on the last page.
    pub cursor: Option<String>,
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
    let page = wit::list_keys(prefix, cursor, limit)?;
    Ok(KeyPage {
        keys: page.keys,
        cursor: page.cursor,
    })
}

/// Iterates over all keys of the workspace in ascending byte order, fetching
/// them a page at a time.
///
/// ```no_run
/// for key in cubby_sdk::keys() {
///     println!("{}", key?);
/// }
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn keys() -> Keys {
    Keys::new(None)
}

/// Iterates over the keys that start with `prefix`, in ascending byte order.
///
/// ```no_run
/// let users: Vec<String> = cubby_sdk::keys_with_prefix("user/").collect::<Result<_, _>>()?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
pub fn keys_with_prefix(prefix: impl Into<String>) -> Keys {
    Keys::new(Some(prefix.into()))
}

/// An iterator over keys, returned by [`keys`] and [`keys_with_prefix`].
///
/// Each item is a key or the error that stopped the listing (after an error
/// the iterator ends). Pages are fetched lazily, so taking a few keys of a
/// large workspace costs one page.
///
/// ```no_run
/// let first_ten: Vec<String> = cubby_sdk::keys().take(10).collect::<Result<_, _>>()?;
/// # Ok::<(), cubby_sdk::Error>(())
/// ```
#[derive(Debug)]
pub struct Keys {
    prefix: Option<String>,
    cursor: Option<String>,
    page: std::vec::IntoIter<String>,
    done: bool,
}

impl Keys {
    fn new(prefix: Option<String>) -> Self {
        Self {
            prefix,
            cursor: None,
            page: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl Iterator for Keys {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.page.next() {
                return Some(Ok(key));
            }
            if self.done {
                return None;
            }
            match list_keys(self.prefix.as_deref(), self.cursor.as_deref(), None) {
                Ok(page) => {
                    self.done = page.cursor.is_none();
                    self.cursor = page.cursor;
                    self.page = page.keys.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
