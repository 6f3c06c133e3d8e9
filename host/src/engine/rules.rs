//! The front's rules for what a caller may pass: workspace ids, namespace
//! names, keys, values, time-to-live, batch sizes, and the encoding of
//! listing cursors. Everything here is checked before a request reaches a
//! backend.

use std::time::Duration;

use super::{Action, Limits, Op, StorageError};

/// Longest workspace id, in bytes.
const MAX_WORKSPACE_ID: usize = 128;
/// Longest namespace name, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 128;

/// A workspace id is 1 to 128 characters from `A-Z a-z 0-9 - _ . :`.
pub(crate) fn check_workspace_id(id: &str) -> Result<(), StorageError> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_WORKSPACE_ID {
        "it is longer than 128 characters"
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        "only A-Z a-z 0-9 - _ . : are allowed"
    } else {
        return Ok(());
    };
    Err(StorageError::InvalidWorkspace {
        id: id.to_owned(),
        reason,
    })
}

/// A namespace name is at most [`MAX_NAMESPACE_BYTES`] bytes; `""` is the
/// default space.
pub(crate) fn check_namespace(name: &str) -> Result<(), StorageError> {
    if name.len() > MAX_NAMESPACE_BYTES {
        return Err(StorageError::InvalidNamespace(format!(
            "namespace is {} bytes, the limit is {MAX_NAMESPACE_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

/// A key is non-empty and at most [`Limits::max_key_bytes`] long.
pub(crate) fn check_key(limits: &Limits, key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey("key is empty".into()));
    }
    let max = limits.max_key_bytes;
    if key.len() > max {
        return Err(StorageError::InvalidKey(format!(
            "key is {} bytes, the limit is {max}",
            key.len()
        )));
    }
    Ok(())
}

/// A batch has at most [`Limits::max_batch_ops`] operations.
pub(crate) fn check_batch(limits: &Limits, len: usize) -> Result<(), StorageError> {
    let limit = limits.max_batch_ops;
    if len > limit as usize {
        return Err(StorageError::TooManyOperations { len, limit });
    }
    Ok(())
}

/// Everything about one op that can be checked before it is applied: its
/// namespace, key, value size and time-to-live (at least 1 ms).
pub(crate) fn check_op(limits: &Limits, op: &Op) -> Result<(), StorageError> {
    check_namespace(&op.namespace)?;
    check_key(limits, &op.key)?;
    let ttl = match &op.action {
        Action::Set { value, ttl } => {
            let limit = limits.max_value_bytes;
            if value.len() > limit {
                return Err(StorageError::ValueTooLarge {
                    len: value.len(),
                    limit,
                });
            }
            *ttl
        }
        Action::Increment { ttl, .. }
        | Action::IncrementUnsigned { ttl, .. }
        | Action::Expire(ttl) => *ttl,
        Action::Renew(ttl) => Some(*ttl),
        Action::Check | Action::Delete => None,
    };
    if ttl.is_some_and(|t| t < Duration::from_millis(1)) {
        return Err(StorageError::InvalidArgument(
            "a time-to-live must be at least 1 ms".into(),
        ));
    }
    Ok(())
}

/// The cursor that resumes a listing after `last`: opaque to callers (hex of
/// the key), and only ever naming a key of the listing it came from.
pub(crate) fn encode_cursor(last: &str) -> String {
    hex::encode(last.as_bytes())
}

/// The key a cursor resumes after. A cursor that does not decode, is empty,
/// or does not start with the listing's `prefix` is
/// [`StorageError::InvalidCursor`]. A well-formed cursor can only name a key
/// inside the listing's own workspace and namespace: backends take it as a
/// bound within that range.
pub(crate) fn decode_cursor(cursor: &str, prefix: &str) -> Result<String, StorageError> {
    let bytes = hex::decode(cursor).map_err(|_| StorageError::InvalidCursor)?;
    let key = String::from_utf8(bytes).map_err(|_| StorageError::InvalidCursor)?;
    if key.is_empty() || !key.starts_with(prefix) {
        return Err(StorageError::InvalidCursor);
    }
    Ok(key)
}
