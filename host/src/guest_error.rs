//! What a guest is told when a storage call fails: the one mapping from
//! engine errors to guests, shared by `cubby:storage` (which returns the
//! case as its `error`) and `wasi:keyvalue` (which returns
//! `other("<case>: <message>")`).

use crate::engine::{Entry, ErrorKind, StorageError};

/// A storage error as a guest sees it, whichever interface it called: the
/// cases of `cubby:storage`'s `error`, each with what the WIT gives it.
///
/// Made from a [`StorageError`] in one place ([`GuestError::from`]): the
/// guest's own mistakes are passed on; a host-side failure is logged in
/// full there and reaches the guest as [`GuestError::Internal`] with a
/// short message, as the guest cannot act on its cause and it may name
/// things of the host's. The `Display` is the message without the case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuestError {
    #[error("{0}")]
    InvalidKey(String),
    #[error("{0}")]
    InvalidNamespace(String),
    #[error("the value is larger than the limit of {0} bytes")]
    ValueTooLarge(u64),
    /// `value-too-large` too, from a plain read of a larger streamed value.
    #[error(
        "the value is larger than the limit of {0} bytes for a plain read: read it as a stream"
    )]
    TooLargeToRead(u64),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("the cursor was not returned by this listing")]
    InvalidCursor,
    #[error("the stored value is not a decimal integer in range")]
    NotACounter,
    #[error("the counter would overflow")]
    Overflow,
    #[error("more operations in one batch than the limit of {0}")]
    TooManyOperations(u32),
    #[error("the condition of operation {index} does not hold")]
    Conflict { index: u32, current: Option<Entry> },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Internal(String),
}

impl From<StorageError> for GuestError {
    /// Exhaustive, so a new engine error cannot reach plugins unmapped.
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidKey(why) => Self::InvalidKey(why),
            StorageError::InvalidNamespace(why) => Self::InvalidNamespace(why),
            StorageError::ValueTooLarge { limit, .. } => {
                Self::ValueTooLarge(u64::try_from(limit).unwrap_or(u64::MAX))
            }
            StorageError::TooLargeToRead { limit, .. } => {
                Self::TooLargeToRead(u64::try_from(limit).unwrap_or(u64::MAX))
            }
            StorageError::QuotaExceeded(why) => Self::QuotaExceeded(why),
            StorageError::InvalidCursor => Self::InvalidCursor,
            StorageError::NotACounter => Self::NotACounter,
            StorageError::Overflow => Self::Overflow,
            StorageError::TooManyOperations { limit, .. } => Self::TooManyOperations(limit),
            StorageError::Conflict { index, current } => Self::Conflict {
                index: small(index),
                current,
            },
            StorageError::InvalidArgument(why) => Self::InvalidArgument(why),
            e @ (StorageError::Corrupt(_)
            | StorageError::InvalidWorkspace { .. }
            | StorageError::Backend(_)
            | StorageError::DiskFull(_)
            | StorageError::Unavailable(_)
            | StorageError::Closed
            | StorageError::Internal(_)) => Self::Internal(host_failure(&e).into()),
        }
    }
}

impl GuestError {
    /// The case, as [`StorageError::kind`] names it.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidKey(_) => ErrorKind::InvalidKey,
            Self::InvalidNamespace(_) => ErrorKind::InvalidNamespace,
            Self::ValueTooLarge(_) | Self::TooLargeToRead(_) => ErrorKind::ValueTooLarge,
            Self::QuotaExceeded(_) => ErrorKind::QuotaExceeded,
            Self::InvalidCursor => ErrorKind::InvalidCursor,
            Self::NotACounter => ErrorKind::NotACounter,
            Self::Overflow => ErrorKind::Overflow,
            Self::TooManyOperations(_) => ErrorKind::TooManyOperations,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// Logs a host-side failure in full and returns the short message a guest
/// gets for it.
fn host_failure(e: &StorageError) -> &'static str {
    match e {
        StorageError::Corrupt(_) => {
            tracing::error!(error = %e, "a stored entry is corrupt");
            "stored entry is corrupt"
        }
        // Logged where it was found.
        StorageError::Internal(_) => "internal error of the host",
        StorageError::DiskFull(_) => {
            tracing::error!(error = %crate::engine::error::cause_chain(e), "the database's disk is full");
            "the host's storage is full"
        }
        _ => {
            tracing::error!(error = ?e, "storage call failed on the host");
            "storage is unavailable"
        }
    }
}

/// A count the WIT carries as `u32`, saturated.
pub(crate) fn small(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

/// Milliseconds until an entry expires, as the WIT carries them.
pub(crate) fn expires_in_ms(entry: &Entry) -> Option<u64> {
    entry
        .expires_in
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The guest's case is the engine's kind, for every engine error; host
    /// failures are `internal` with a short message that names nothing of
    /// the host's.
    #[test]
    fn every_engine_error_reaches_guests_as_its_kind() {
        let entry = Entry {
            value: b"v".to_vec(),
            version: 3,
            expires_in: None,
        };
        let errors = [
            StorageError::InvalidKey("empty".into()),
            StorageError::InvalidNamespace("long".into()),
            StorageError::ValueTooLarge { len: 9, limit: 8 },
            StorageError::TooLargeToRead { size: 9, limit: 8 },
            StorageError::QuotaExceeded("keys".into()),
            StorageError::InvalidCursor,
            StorageError::NotACounter,
            StorageError::Overflow,
            StorageError::TooManyOperations { len: 9, limit: 8 },
            StorageError::Conflict {
                index: 2,
                current: Some(entry.clone()),
            },
            StorageError::InvalidArgument("zero ttl".into()),
            StorageError::InvalidWorkspace {
                id: "x y".into(),
                reason: "space",
            },
            StorageError::Corrupt("/srv/secret/cubby.redb page 7".into()),
            StorageError::Backend(Arc::new(std::io::Error::other("/srv/secret: EIO"))),
            StorageError::DiskFull(Arc::new(std::io::Error::other("/srv/secret: ENOSPC"))),
            StorageError::Unavailable(Arc::new(std::io::Error::other("db.internal:5432"))),
            StorageError::Closed,
            StorageError::Internal("invariant".into()),
        ];
        for e in errors {
            let kind = e.kind();
            let guest = GuestError::from(e.clone());
            assert_eq!(guest.kind(), kind, "{e:?}");
            assert_eq!(kind == ErrorKind::Internal, e.is_host_failure(), "{e:?}");
            if e.is_host_failure() {
                let message = guest.to_string();
                assert!(!message.contains("secret") && !message.contains("5432"));
                assert!(!message.contains("invariant"), "{message}");
            }
        }
        assert_eq!(
            GuestError::from(StorageError::Conflict {
                index: 2,
                current: Some(entry.clone())
            }),
            GuestError::Conflict {
                index: 2,
                current: Some(entry)
            }
        );
    }
}
