//! The `cubby:storage/storage` imports, implemented for [`StorageCtx`]: each
//! import is one call of the engine on the context's workspace.
//!
//! The bindings come in a sync and an async flavour (see
//! [`bindings`](crate::bindings)), with distinct Rust types for the same WIT
//! types. Both `Host` impls, and the conversions between WIT and engine
//! types, are written once here and expanded for each flavour by
//! `storage_host!`, so the two cannot drift apart. The sync flavour calls
//! the engine directly (it blocks, so call plugins from a thread that may
//! block, as [`Runtime`](crate::Runtime) does); the async flavour runs each
//! write, and every call to a remote database, on tokio's blocking pool, and
//! reads of a local one (`read!`) on the calling thread.

use std::time::Duration;

use crate::context::StorageCtx;
use crate::engine::{Action, Condition, Namespace, Op, Outcome, StorageError, Workspace};
use crate::guest_error::{GuestError, expires_in_ms, small};

/// Runs `f` on namespace `ns` of `ws` (`""` is the default space).
pub(crate) fn in_ns<T>(
    ws: &Workspace,
    ns: &str,
    f: impl FnOnce(&Namespace) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    if ns.is_empty() {
        f(ws.default_space())
    } else {
        f(&ws.namespace(ns)?)
    }
}

/// A time-to-live in milliseconds as the engine takes it (0 stays 0 and is
/// refused there).
fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

/// Runs one engine call of the sync flavour, on this thread.
fn run_now<T>(
    ws: &Workspace,
    f: impl FnOnce(&Workspace) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    f(ws)
}

/// Implements a flavour's `Host` trait. `$wit` is its interface module;
/// `$($async)?` is `async` for the async flavour.
macro_rules! storage_host {
    ($wit:path $(, $async:ident)?) => {
        const _: () = {
            use $wit as wit;

            /// Runs one engine call for this flavour.
            macro_rules! call {
                ($ctx:ident, $f:expr) => {
                    storage_host!(@run $ctx, $f $(, $async)?)
                };
            }

            /// Runs one engine call that only reads, for this flavour.
            macro_rules! read {
                ($ctx:ident, $f:expr) => {
                    storage_host!(@read $ctx, $f $(, $async)?)
                };
            }

            fn to_entry(e: crate::engine::Entry) -> wit::Entry {
                wit::Entry {
                    expires_in_ms: expires_in_ms(&e),
                    value: e.value,
                    version: e.version,
                }
            }

            // The one mapping of a guest's condition, for `cubby:storage`
            // and `cubby:storage/streams` alike.
            impl From<wit::Condition> for Condition {
                fn from(c: wit::Condition) -> Self {
                    match c {
                        wit::Condition::Absent => Self::Absent,
                        wit::Condition::VersionEquals(v) => Self::VersionEquals(v),
                        wit::Condition::ValueEquals(v) => Self::ValueEquals(v),
                    }
                }
            }

            fn to_op(op: wit::Operation) -> Op {
                let action = match op.action {
                    wit::Action::Check => Action::Check,
                    wit::Action::Set(put) => Action::Set {
                        value: put.value,
                        ttl: ttl(put.ttl_ms),
                    },
                    wit::Action::Delete => Action::Delete,
                    wit::Action::Increment(delta) => Action::Increment { delta, ttl: None },
                };
                let mut out = Op::new(op.key, action).in_namespace(op.namespace);
                out.condition = op.condition.map(Condition::from);
                out
            }

            fn to_outcome(o: Outcome) -> Result<wit::Outcome, StorageError> {
                Ok(match o {
                    Outcome::Checked => wit::Outcome::Checked,
                    Outcome::Set { version } => wit::Outcome::Set(version),
                    Outcome::Deleted(existed) => wit::Outcome::Deleted(existed),
                    Outcome::Incremented(n) => wit::Outcome::Incremented(n),
                    // The WIT's operations never expire or renew.
                    Outcome::ExpiryChanged(_) | Outcome::Renewed(_) => {
                        return Err(StorageError::internal(
                            "a transaction answered with an expiry outcome",
                        ));
                    }
                })
            }

            fn to_key_page(p: crate::engine::KeyPage) -> wit::KeyPage {
                wit::KeyPage {
                    keys: p.keys,
                    cursor: p.cursor,
                }
            }

            impl wit::Host for StorageCtx {
                $($async)? fn get(&mut self, ns: String, key: String)
                    -> Result<Option<Vec<u8>>, StorageError> {
                    read!(self, move |ws| in_ns(ws, &ns, |n| n.get(&key)))
                }

                $($async)? fn get_entry(&mut self, ns: String, key: String)
                    -> Result<Option<wit::Entry>, StorageError> {
                    read!(self, move |ws| in_ns(ws, &ns, |n| Ok(n.entry(&key)?.map(to_entry))))
                }

                $($async)? fn get_and_renew(&mut self, ns: String, key: String, ttl_ms: u64)
                    -> Result<Option<wit::Entry>, StorageError> {
                    call!(self, move |ws| in_ns(ws, &ns, |n| {
                        Ok(n.get_and_renew(&key, Duration::from_millis(ttl_ms))?.map(to_entry))
                    }))
                }

                $($async)? fn exists(&mut self, ns: String, key: String)
                    -> Result<bool, StorageError> {
                    read!(self, move |ws| in_ns(ws, &ns, |n| n.exists(&key)))
                }

                $($async)? fn set(
                    &mut self,
                    ns: String,
                    key: String,
                    value: Vec<u8>,
                    options: wit::WriteOptions,
                ) -> Result<u64, StorageError> {
                    call!(self, move |ws| {
                        let mut opts = crate::engine::WriteOptions::default();
                        opts.ttl = ttl(options.ttl_ms);
                        opts.condition = options.condition.map(Condition::from);
                        in_ns(ws, &ns, |n| n.set_with(&key, value, opts))
                    })
                }

                $($async)? fn delete(
                    &mut self,
                    ns: String,
                    key: String,
                    condition: Option<wit::Condition>,
                ) -> Result<bool, StorageError> {
                    call!(self, move |ws| in_ns(ws, &ns, |n| match condition {
                        None => n.delete(&key),
                        Some(c) => n.delete_if(&key, Condition::from(c)),
                    }))
                }

                $($async)? fn expire(&mut self, ns: String, key: String, ttl_ms: Option<u64>)
                    -> Result<bool, StorageError> {
                    call!(self, move |ws| in_ns(ws, &ns, |n| n.expire(&key, ttl(ttl_ms))))
                }

                $($async)? fn increment(
                    &mut self,
                    ns: String,
                    key: String,
                    delta: i64,
                    ttl_ms: Option<u64>,
                ) -> Result<i64, StorageError> {
                    call!(self, move |ws| in_ns(ws, &ns, |n| n.increment(&key, delta, ttl(ttl_ms))))
                }

                $($async)? fn get_many(&mut self, ns: String, keys: Vec<String>)
                    -> Result<Vec<Option<Vec<u8>>>, StorageError> {
                    read!(self, move |ws| in_ns(ws, &ns, |n| n.get_many(&keys)))
                }

                $($async)? fn set_many(&mut self, ns: String, entries: Vec<(String, Vec<u8>)>)
                    -> Result<(), StorageError> {
                    call!(self, move |ws| in_ns(ws, &ns, |n| n.set_many(entries)))
                }

                $($async)? fn delete_many(&mut self, ns: String, keys: Vec<String>)
                    -> Result<u32, StorageError> {
                    call!(self, move |ws| in_ns(ws, &ns, |n| Ok(small(n.delete_many(&keys)?))))
                }

                $($async)? fn transaction(&mut self, operations: Vec<wit::Operation>)
                    -> Result<Vec<wit::Outcome>, StorageError> {
                    call!(self, move |ws| {
                        let ops = operations.into_iter().map(to_op).collect();
                        ws.transact(ops)?.into_iter().map(to_outcome).collect()
                    })
                }

                $($async)? fn list_keys(
                    &mut self,
                    ns: String,
                    prefix: Option<String>,
                    cursor: Option<String>,
                    limit: Option<u32>,
                ) -> Result<wit::KeyPage, StorageError> {
                    read!(self, move |ws| in_ns(ws, &ns, |n| {
                        Ok(to_key_page(n.list_keys(prefix.as_deref(), cursor.as_deref(), limit)?))
                    }))
                }

                $($async)? fn list_namespaces(&mut self, cursor: Option<String>, limit: Option<u32>)
                    -> Result<wit::KeyPage, StorageError> {
                    read!(self, move |ws| Ok(to_key_page(ws.namespaces(cursor.as_deref(), limit)?)))
                }

                $($async)? fn clear(&mut self, ns: String) -> Result<wit::Cleared, StorageError> {
                    call!(self, move |ws| in_ns(ws, &ns, |n| {
                        let c = n.clear()?;
                        Ok(wit::Cleared { deleted: small(c.deleted), done: c.done })
                    }))
                }

                $($async)? fn usage(&mut self, ns: Option<String>)
                    -> Result<wit::UsageCounts, StorageError> {
                    read!(self, move |ws| {
                        let u = match ns {
                            None => ws.usage()?,
                            Some(ns) => ws.namespace(&ns)?.usage()?,
                        };
                        Ok(wit::UsageCounts { keys: u.keys, bytes: u.bytes })
                    })
                }

                $($async)? fn limits(&mut self) -> wasmtime::Result<wit::WorkspaceLimits> {
                    // The quota may be stored in the database; if it cannot
                    // be read, the plugin is told the default (writes are
                    // still checked against the stored one).
                    let limits = self.workspace().storage().limits().clone();
                    let quota = read!(self, |ws: &Workspace| ws.quota()).unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "could not read the workspace's quota");
                        limits.default_quota()
                    });
                    Ok(wit::WorkspaceLimits {
                        max_keys: quota.max_keys,
                        max_bytes: quota.max_bytes,
                        max_key_bytes: small(limits.max_key_bytes),
                        max_value_bytes: small(limits.max_value_bytes),
                        max_batch: limits.max_batch_ops,
                        max_page: limits.max_page_size,
                    })
                }

                // The WIT's spelling of `GuestError`, the one mapping.
                fn convert_error(&mut self, e: StorageError) -> wasmtime::Result<wit::Error> {
                    Ok(match GuestError::from(e) {
                        GuestError::InvalidKey(why) => wit::Error::InvalidKey(why),
                        GuestError::InvalidNamespace(why) => wit::Error::InvalidNamespace(why),
                        GuestError::ValueTooLarge(limit) | GuestError::TooLargeToRead(limit) => {
                            wit::Error::ValueTooLarge(limit)
                        }
                        GuestError::QuotaExceeded(why) => wit::Error::QuotaExceeded(why),
                        GuestError::InvalidCursor => wit::Error::InvalidCursor,
                        GuestError::NotACounter => wit::Error::NotACounter,
                        GuestError::Overflow => wit::Error::Overflow,
                        GuestError::TooManyOperations(limit) => {
                            wit::Error::TooManyOperations(limit)
                        }
                        GuestError::Conflict { index, current } => {
                            wit::Error::Conflict(wit::Conflict {
                                index,
                                current: current.map(to_entry),
                            })
                        }
                        GuestError::InvalidArgument(why) => wit::Error::InvalidArgument(why),
                        GuestError::Internal(why) => wit::Error::Internal(why),
                    })
                }
            }
        };
    };
    (@run $ctx:ident, $f:expr) => {
        run_now($ctx.workspace(), $f)
    };
    (@run $ctx:ident, $f:expr, async) => {
        $ctx.offload($f).await
    };
    (@read $ctx:ident, $f:expr) => {
        run_now($ctx.workspace(), $f)
    };
    (@read $ctx:ident, $f:expr, async) => {
        $ctx.read($f).await
    };
}

storage_host!(crate::bindings::sync::cubby::storage::storage);
storage_host!(crate::bindings::cubby::storage::storage, async);
