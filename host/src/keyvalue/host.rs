//! The `wasi:keyvalue` `Host` impls for [`StorageCtx`]. What both versions
//! share is written once in `kv_host!`, and each version adds its cursors
//! and counters (and `0.2.0-draft2` its `cas`); each version is expanded in
//! the sync flavour (engine calls on this thread) and the async flavour
//! (writes, and every call to a remote database, on tokio's blocking pool;
//! reads of a local one on the calling thread).

use wasmtime::component::{Linker, Resource};

use super::{Bucket, Cas, GetManyShape, KvError, bindings};
use crate::context::{HasStorage, StorageCtx, blocking};
use crate::engine::{Condition, StorageError, WriteOptions};

/// Runs one blocking engine call: on this thread (sync) or on the blocking
/// pool (async).
macro_rules! run {
    ($f:expr) => {
        now($f)
    };
    ($f:expr, async) => {
        blocking($f).await
    };
}

/// Runs one engine call that only reads namespace `$ns`: on this thread
/// (sync, or async with a local database) or on the blocking pool (async
/// with a remote one).
macro_rules! read {
    ($ns:ident, $f:expr) => {
        now($f)
    };
    ($ns:ident, $f:expr, async) => {{
        let local = $ns.storage().reads_are_local();
        crate::context::read(local, $f).await
    }};
}

/// Runs one engine call of the sync flavour, on this thread.
fn now<T>(f: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
    f()
}

/// The interface's `error` for a [`KvError`]; a trap stays a trap.
macro_rules! to_wit {
    ($kv:ident, $e:expr) => {
        match $e {
            KvError::NoSuchStore => Ok($kv::store::Error::NoSuchStore),
            KvError::AccessDenied => Ok($kv::store::Error::AccessDenied),
            KvError::Other(message) => Ok($kv::store::Error::Other(message)),
            KvError::Trap(e) => Err(e),
        }
    };
}

/// Implements `store` and `batch` of the version whose bindings are `$kv`,
/// and the version's own parts (`@draft` or `@draft2`).
macro_rules! kv_host {
    ($kv:path, $version:ident $(, $async:ident)?) => {
        const _: () = {
            use $kv as kv;

            impl kv::store::Host for StorageCtx {
                $($async)? fn open(&mut self, identifier: String)
                    -> Result<Resource<Bucket>, KvError> {
                    self.open_bucket(&identifier)
                }

                fn convert_error(&mut self, e: KvError) -> wasmtime::Result<kv::store::Error> {
                    to_wit!(kv, e)
                }
            }

            impl kv::store::HostBucket for StorageCtx {
                $($async)? fn get(&mut self, bucket: Resource<Bucket>, key: String)
                    -> Result<Option<Vec<u8>>, KvError> {
                    let ns = self.bucket(&bucket)?;
                    Ok(read!(ns, move || ns.get(&key) $(, $async)?)?)
                }

                $($async)? fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>)
                    -> Result<(), KvError> {
                    let ns = self.bucket(&bucket)?;
                    run!(move || ns.set(&key, value) $(, $async)?)?;
                    Ok(())
                }

                $($async)? fn delete(&mut self, bucket: Resource<Bucket>, key: String)
                    -> Result<(), KvError> {
                    let ns = self.bucket(&bucket)?;
                    run!(move || ns.delete(&key) $(, $async)?)?;
                    Ok(())
                }

                $($async)? fn exists(&mut self, bucket: Resource<Bucket>, key: String)
                    -> Result<bool, KvError> {
                    let ns = self.bucket(&bucket)?;
                    Ok(read!(ns, move || ns.exists(&key) $(, $async)?)?)
                }

                kv_host!(@list_keys $version $(, $async)?);

                $($async)? fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
                    self.table.delete(bucket)?;
                    Ok(())
                }
            }

            kv_host!(@batch $kv, upstream $(, $async)?);

            kv_host!(@atomics $version $(, $async)?);
        };
    };

    // `batch`, with `get-many` in the given shape.
    (@batch $kv:path, $shape:ident $(, $async:ident)?) => {
        const _: () = {
            use $kv as kv;

            impl kv::batch::Host for StorageCtx {
                kv_host!(@get_many $shape $(, $async)?);

                $($async)? fn set_many(
                    &mut self,
                    bucket: Resource<Bucket>,
                    key_values: Vec<(String, Vec<u8>)>,
                ) -> Result<(), KvError> {
                    let ns = self.bucket(&bucket)?;
                    Ok(run!(move || ns.set_many(key_values) $(, $async)?)?)
                }

                $($async)? fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>)
                    -> Result<(), KvError> {
                    let ns = self.bucket(&bucket)?;
                    run!(move || ns.delete_many(&keys) $(, $async)?)?;
                    Ok(())
                }
            }
        };
    };

    // The standard repository's `get-many`: `none` for a missing key.
    (@get_many upstream $(, $async:ident)?) => {
        $($async)? fn get_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>)
            -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
            let ns = self.bucket(&bucket)?;
            Ok(read!(ns, move || {
                let values = ns.get_many(&keys)?;
                Ok(keys.into_iter().zip(values).map(|(key, value)| value.map(|v| (key, v))).collect())
            } $(, $async)?)?)
        }
    };

    // Spin's `get-many`: every key, its value `none` where missing.
    (@get_many spin $(, $async:ident)?) => {
        $($async)? fn get_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>)
            -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
            let ns = self.bucket(&bucket)?;
            Ok(read!(ns, move || {
                let values = ns.get_many(&keys)?;
                Ok(keys.into_iter().zip(values).collect())
            } $(, $async)?)?)
        }
    };

    // 0.2.0-draft: a `u64` cursor stands for an engine cursor kept in the
    // bucket.
    (@list_keys draft $(, $async:ident)?) => {
        $($async)? fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<u64>)
            -> Result<kv::store::KeyResponse, KvError> {
            let open = self.table.get(&bucket)?;
            let after = cursor.map(|n| open.cursors.resolve(n)).transpose()?;
            let ns = open.namespace.clone();
            let page = read!(ns, move || ns.list_keys(None, after.as_deref(), None) $(, $async)?)?;
            let cursor = match page.cursor {
                Some(next) => Some(self.table.get_mut(&bucket)?.cursors.issue(next)),
                None => None,
            };
            Ok(kv::store::KeyResponse { keys: page.keys, cursor })
        }
    };

    // 0.2.0-draft2: the engine's own cursor.
    (@list_keys draft2 $(, $async:ident)?) => {
        $($async)? fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<String>)
            -> Result<kv::store::KeyResponse, KvError> {
            let ns = self.bucket(&bucket)?;
            let page = read!(ns, move || ns.list_keys(None, cursor.as_deref(), None) $(, $async)?)?;
            Ok(kv::store::KeyResponse { keys: page.keys, cursor: page.cursor })
        }
    };

    // 0.2.0-draft: `u64` counters.
    (@atomics draft $(, $async:ident)?) => {
        impl kv::atomics::Host for StorageCtx {
            $($async)? fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: u64)
                -> Result<u64, KvError> {
                let ns = self.bucket(&bucket)?;
                Ok(run!(move || ns.increment_unsigned(&key, delta, None) $(, $async)?)?)
            }
        }
    };

    // 0.2.0-draft2: `s64` counters and compare-and-swap.
    (@atomics draft2 $(, $async:ident)?) => {
        impl kv::atomics::Host for StorageCtx {
            $($async)? fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: i64)
                -> Result<i64, KvError> {
                let ns = self.bucket(&bucket)?;
                Ok(run!(move || ns.increment(&key, delta, None) $(, $async)?)?)
            }

            $($async)? fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>)
                -> wasmtime::Result<Result<(), kv::atomics::CasError>> {
                // Consumed: the handle leaves the table whatever happens.
                let Cas { namespace, key, current } = self.table.delete(cas)?;
                let mut options = WriteOptions::default();
                options.condition = Some(match current {
                    Some(entry) => Condition::VersionEquals(entry.version),
                    None => Condition::Absent,
                });
                let (ns, k) = (namespace.clone(), key.clone());
                let error = match run!(move || ns.set_with(&k, value, options) $(, $async)?) {
                    Ok(_) => return Ok(Ok(())),
                    // Lost the race: a fresh handle holds the entry that won.
                    Err(StorageError::Conflict { current, .. }) => {
                        match self.new_cas(namespace, key, current) {
                            Ok(fresh) => return Ok(Err(kv::atomics::CasError::CasFailed(fresh))),
                            Err(e) => e,
                        }
                    }
                    Err(e) => KvError::from(e),
                };
                Ok(Err(kv::atomics::CasError::StoreError(to_wit!(kv, error)?)))
            }
        }

        impl kv::atomics::HostCas for StorageCtx {
            $($async)? fn new(&mut self, bucket: Resource<Bucket>, key: String)
                -> Result<Resource<Cas>, KvError> {
                let ns = self.bucket(&bucket)?;
                let (ns, key, current) = run!(move || {
                    let current = ns.entry(&key)?;
                    Ok((ns, key, current))
                } $(, $async)?)?;
                self.new_cas(ns, key, current)
            }

            $($async)? fn current(&mut self, cas: Resource<Cas>)
                -> Result<Option<Vec<u8>>, KvError> {
                Ok(self.table.get(&cas)?.current.as_ref().map(|e| e.value.clone()))
            }

            $($async)? fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
                self.table.delete(cas)?;
                Ok(())
            }
        }
    };
}

kv_host!(bindings::draft::sync::wasi::keyvalue, draft);
kv_host!(bindings::draft::wasi::keyvalue, draft, async);
kv_host!(bindings::draft2::sync::wasi::keyvalue, draft2);
kv_host!(bindings::draft2::wasi::keyvalue, draft2, async);
kv_host!(@batch bindings::draft2_spin::sync::wasi::keyvalue, spin);
kv_host!(@batch bindings::draft2_spin::wasi::keyvalue, spin, async);

/// Adds both versions' `store`, `atomics` and `batch` of one flavour, whose
/// Adds both versions' `store`, `atomics` and `batch` of one flavour, whose
/// bindings are `$draft`, `$draft2` and `$spin`, with draft2's `batch` in
/// the shape `$shape` asks for.
macro_rules! add_all {
    ($linker:ident, $get:ident, $shape:ident, $draft:path, $draft2:path, $spin:path) => {{
        use $draft as draft;
        use $draft2 as draft2;
        use $spin as spin;
        draft::store::add_to_linker::<T, HasStorage>($linker, $get)?;
        draft::atomics::add_to_linker::<T, HasStorage>($linker, $get)?;
        draft::batch::add_to_linker::<T, HasStorage>($linker, $get)?;
        draft2::store::add_to_linker::<T, HasStorage>($linker, $get)?;
        draft2::atomics::add_to_linker::<T, HasStorage>($linker, $get)?;
        match $shape {
            GetManyShape::Upstream => draft2::batch::add_to_linker::<T, HasStorage>($linker, $get),
            GetManyShape::Spin => spin::batch::add_to_linker::<T, HasStorage>($linker, $get),
        }
    }};
}

/// Adds both versions' `store`, `atomics` and `batch` (sync flavour).
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
    shape: GetManyShape,
) -> wasmtime::Result<()> {
    add_all!(
        linker,
        get,
        shape,
        bindings::draft::sync::wasi::keyvalue,
        bindings::draft2::sync::wasi::keyvalue,
        bindings::draft2_spin::sync::wasi::keyvalue
    )
}

/// Adds both versions' `store`, `atomics` and `batch` (async flavour).
pub(crate) fn add_to_linker_async<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
    shape: GetManyShape,
) -> wasmtime::Result<()> {
    add_all!(
        linker,
        get,
        shape,
        bindings::draft::wasi::keyvalue,
        bindings::draft2::wasi::keyvalue,
        bindings::draft2_spin::wasi::keyvalue
    )
}
