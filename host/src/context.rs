//! The per-instance storage context: what a plugin's `storage` imports act on.

use std::time::Duration;

use wasmtime::component::{HasData, Linker};

use crate::bindings::WitError;
use crate::bindings::cubby::storage::storage::{self as wit, Host};
use crate::engine::{
    Action, Condition, Entry, KeyPage, Namespace, Op, Outcome, StorageError, Workspace,
    WriteOptions,
};
/// The storage state of one plugin instance: the [`Workspace`] the host bound
/// it to. Created by the host for every store; a plugin cannot change it.
///
/// ```
/// use cubby_host::{Storage, StorageCtx, StorageOptions};
/// # fn main() -> anyhow::Result<()> {
/// let storage = Storage::in_memory(StorageOptions::default())?;
/// let ctx = StorageCtx::new(storage.workspace("tenant-1")?);
/// assert_eq!(ctx.workspace().id(), "tenant-1");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StorageCtx {
    workspace: Workspace,
}

impl StorageCtx {
    /// A context bound to `workspace`.
    pub fn new(workspace: Workspace) -> Self {
        Self { workspace }
    }

    /// The workspace this context is bound to.
    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }
}

/// Adds the `cubby:storage/storage` imports to `linker`; `get` finds the
/// [`StorageCtx`] in the store's data.
///
/// The storage functions block while they read or commit; call the plugin from
/// a thread that may block (as [`Runtime`](crate::Runtime) does), not from an
/// async worker.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasStorage>(linker, get)
}

struct HasStorage;

impl HasData for HasStorage {
    type Data<'a> = &'a mut StorageCtx;
}

/// The one place where engine errors become the WIT error. Host-side failures
/// are logged in full and reach the plugin as a short `internal` message.
impl From<StorageError> for WitError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidKey(why) => WitError::InvalidKey(why),
            StorageError::InvalidNamespace(why) => WitError::InvalidNamespace(why),
            StorageError::ValueTooLarge { limit, .. } => WitError::ValueTooLarge(limit as u64),
            StorageError::QuotaExceeded(why) => WitError::QuotaExceeded(why),
            StorageError::InvalidCursor => WitError::InvalidCursor,
            StorageError::NotACounter => WitError::NotACounter,
            StorageError::Overflow => WitError::Overflow,
            StorageError::TooManyOperations { limit, .. } => WitError::TooManyOperations(limit),
            StorageError::Conflict { index, current } => WitError::Conflict(wit::Conflict {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                current: current.map(Into::into),
            }),
            StorageError::InvalidArgument(why) => WitError::InvalidArgument(why),
            other => {
                tracing::error!(error = ?other, "storage call failed on the host");
                WitError::Internal(match other {
                    StorageError::Corrupt(_) => "stored entry is corrupt".into(),
                    _ => "storage is unavailable".into(),
                })
            }
        }
    }
}

impl From<Entry> for wit::Entry {
    fn from(e: Entry) -> Self {
        Self {
            value: e.value,
            version: e.version,
            expires_in_ms: e
                .expires_in
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

impl From<wit::Condition> for Condition {
    fn from(c: wit::Condition) -> Self {
        match c {
            wit::Condition::Absent => Self::Absent,
            wit::Condition::VersionEquals(v) => Self::VersionEquals(v),
            wit::Condition::ValueEquals(v) => Self::ValueEquals(v),
        }
    }
}

impl From<wit::Operation> for Op {
    fn from(op: wit::Operation) -> Self {
        let action = match op.action {
            wit::Action::Check => Action::Check,
            wit::Action::Set(put) => Action::Set {
                value: put.value,
                ttl: ttl(put.ttl_ms),
            },
            wit::Action::Delete => Action::Delete,
            wit::Action::Increment(delta) => Action::Increment { delta, ttl: None },
        };
        Op {
            namespace: op.namespace,
            key: op.key,
            condition: op.condition.map(Into::into),
            action,
        }
    }
}

impl From<KeyPage> for wit::KeyPage {
    fn from(page: KeyPage) -> Self {
        Self {
            keys: page.keys,
            cursor: page.cursor,
        }
    }
}

/// A time-to-live in milliseconds as the engine takes it (0 stays 0 and is
/// refused there).
fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

type WitResult<T> = wasmtime::Result<Result<T, WitError>>;

impl StorageCtx {
    /// Runs `f` on namespace `ns` of the bound workspace.
    fn in_ns<T>(
        &self,
        ns: &str,
        f: impl FnOnce(&Namespace) -> Result<T, StorageError>,
    ) -> WitResult<T> {
        let result = if ns.is_empty() {
            f(self.workspace.default_space())
        } else {
            self.workspace.namespace(ns).and_then(|n| f(&n))
        };
        Ok(result.map_err(Into::into))
    }
}

impl Host for StorageCtx {
    fn get(&mut self, ns: String, key: String) -> WitResult<Option<Vec<u8>>> {
        self.in_ns(&ns, |n| n.get(&key))
    }

    fn get_entry(&mut self, ns: String, key: String) -> WitResult<Option<wit::Entry>> {
        self.in_ns(&ns, |n| Ok(n.entry(&key)?.map(Into::into)))
    }

    fn get_and_renew(
        &mut self,
        ns: String,
        key: String,
        ttl_ms: u64,
    ) -> WitResult<Option<wit::Entry>> {
        self.in_ns(&ns, |n| {
            Ok(n.get_and_renew(&key, Duration::from_millis(ttl_ms))?
                .map(Into::into))
        })
    }

    fn exists(&mut self, ns: String, key: String) -> WitResult<bool> {
        self.in_ns(&ns, |n| n.exists(&key))
    }

    fn set(
        &mut self,
        ns: String,
        key: String,
        value: Vec<u8>,
        options: wit::WriteOptions,
    ) -> WitResult<u64> {
        let opts = WriteOptions {
            ttl: ttl(options.ttl_ms),
            condition: options.condition.map(Into::into),
        };
        self.in_ns(&ns, |n| n.set_with(&key, value, opts))
    }

    fn delete(
        &mut self,
        ns: String,
        key: String,
        condition: Option<wit::Condition>,
    ) -> WitResult<bool> {
        self.in_ns(&ns, |n| match condition {
            None => n.delete(&key),
            Some(c) => n.delete_if(&key, c.into()),
        })
    }

    fn expire(&mut self, ns: String, key: String, ttl_ms: Option<u64>) -> WitResult<bool> {
        self.in_ns(&ns, |n| n.expire(&key, ttl(ttl_ms)))
    }

    fn increment(
        &mut self,
        ns: String,
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> WitResult<i64> {
        self.in_ns(&ns, |n| n.increment(&key, delta, ttl(ttl_ms)))
    }

    fn get_many(&mut self, ns: String, keys: Vec<String>) -> WitResult<Vec<Option<Vec<u8>>>> {
        self.in_ns(&ns, |n| n.get_many(&keys))
    }

    fn set_many(&mut self, ns: String, entries: Vec<(String, Vec<u8>)>) -> WitResult<()> {
        self.in_ns(&ns, |n| n.set_many(entries))
    }

    fn delete_many(&mut self, ns: String, keys: Vec<String>) -> WitResult<u32> {
        self.in_ns(&ns, |n| {
            Ok(u32::try_from(n.delete_many(&keys)?).unwrap_or(u32::MAX))
        })
    }

    fn transaction(&mut self, operations: Vec<wit::Operation>) -> WitResult<Vec<wit::Outcome>> {
        let ops = operations.into_iter().map(Op::from).collect();
        let outcomes = match self.workspace.transact(ops) {
            Ok(outcomes) => outcomes,
            Err(e) => return Ok(Err(e.into())),
        };
        let mut out = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            out.push(match outcome {
                Outcome::Checked => wit::Outcome::Checked,
                Outcome::Set { version } => wit::Outcome::Set(version),
                Outcome::Deleted(existed) => wit::Outcome::Deleted(existed),
                Outcome::Incremented(n) => wit::Outcome::Incremented(n),
                // The WIT has no expire or renew operations.
                other => {
                    return Err(wasmtime::format_err!(
                        "transaction returned {other:?} for a WIT operation"
                    ));
                }
            });
        }
        Ok(Ok(out))
    }

    fn list_keys(
        &mut self,
        ns: String,
        prefix: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> WitResult<wit::KeyPage> {
        self.in_ns(&ns, |n| {
            Ok(n.list_keys(prefix.as_deref(), cursor.as_deref(), limit)?
                .into())
        })
    }

    fn list_namespaces(
        &mut self,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> WitResult<wit::KeyPage> {
        Ok(self
            .workspace
            .namespaces(cursor.as_deref(), limit)
            .map(Into::into)
            .map_err(Into::into))
    }

    fn clear(&mut self, ns: String) -> WitResult<wit::Cleared> {
        self.in_ns(&ns, |n| {
            let c = n.clear()?;
            Ok(wit::Cleared {
                deleted: u32::try_from(c.deleted).unwrap_or(u32::MAX),
                done: c.done,
            })
        })
    }

    fn usage(&mut self, ns: Option<String>) -> WitResult<wit::UsageCounts> {
        let usage = match ns {
            None => self.workspace.usage(),
            Some(ns) => self.workspace.namespace(&ns).and_then(|n| n.usage()),
        };
        Ok(usage
            .map(|u| wit::UsageCounts {
                keys: u.keys,
                bytes: u.bytes,
            })
            .map_err(Into::into))
    }

    fn limits(&mut self) -> wasmtime::Result<wit::WorkspaceLimits> {
        let quota = self.workspace.quota();
        let limits = self.workspace.storage().limits();
        let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(wit::WorkspaceLimits {
            max_keys: quota.max_keys,
            max_bytes: quota.max_bytes,
            max_key_bytes: small(limits.max_key_bytes),
            max_value_bytes: small(limits.max_value_bytes),
            max_batch: limits.max_batch_ops,
            max_page: limits.max_page_size,
        })
    }
}
