//! The SDK's error type.

use crate::types::Entry;
use crate::wit;

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
    /// The namespace name is longer than 128 bytes.
    #[error("invalid namespace: {0}")]
    InvalidNamespace(String),
    /// The value is longer than the host's value limit (the payload, in bytes).
    #[error("value too large: the limit is {0} bytes")]
    ValueTooLarge(u64),
    /// The write would exceed one of the workspace's quotas; nothing was written.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// A listing cursor that the host did not hand out for this listing.
    #[error("invalid listing cursor")]
    InvalidCursor,
    /// An increment found a stored value that is not a counter.
    #[error("the stored value is not a counter")]
    NotACounter,
    /// An increment would take the counter outside the range of `i64`.
    #[error("the counter would overflow")]
    Overflow,
    /// A batch or transaction longer than the host's limit (the payload).
    #[error("too many operations: the limit is {0}")]
    TooManyOperations(u32),
    /// A condition did not hold, so nothing was written. `index` is the
    /// operation's position in a [`Transaction`](crate::Transaction) (0
    /// otherwise); `current` is what is stored under its key now.
    #[error("condition of operation {index} does not hold")]
    Conflict {
        /// Which operation's condition failed.
        index: u32,
        /// The entry stored under that key now, if any.
        current: Option<Entry>,
    },
    /// An argument the host refused, such as a zero time-to-live.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
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
            wit::Error::InvalidNamespace(why) => Self::InvalidNamespace(why),
            wit::Error::ValueTooLarge(limit) => Self::ValueTooLarge(limit),
            wit::Error::QuotaExceeded(why) => Self::QuotaExceeded(why),
            wit::Error::InvalidCursor => Self::InvalidCursor,
            wit::Error::NotACounter => Self::NotACounter,
            wit::Error::Overflow => Self::Overflow,
            wit::Error::TooManyOperations(limit) => Self::TooManyOperations(limit),
            wit::Error::Conflict(c) => Self::Conflict {
                index: c.index,
                current: c.current.map(Into::into),
            },
            wit::Error::InvalidArgument(why) => Self::InvalidArgument(why),
            wit::Error::Internal(why) => Self::Host(why),
        }
    }
}

impl From<Error> for String {
    /// The error's message, so that `?` passes a storage error on as the
    /// error of a [`Plugin::handle`](crate::Plugin::handle) (or a
    /// [`JsonPlugin::handle`](crate::JsonPlugin::handle)).
    ///
    /// ```no_run
    /// fn handle(request: Vec<u8>) -> Result<Vec<u8>, String> {
    ///     cubby_sdk::set("last-request", &request)?;
    ///     Ok(request)
    /// }
    /// ```
    fn from(e: Error) -> Self {
        e.to_string()
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

pub(crate) fn decode_error(key: &str, e: impl std::fmt::Display) -> Error {
    Error::Decode {
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

pub(crate) fn encode_error(e: impl std::fmt::Display) -> Error {
    Error::Encode(e.to_string())
}
