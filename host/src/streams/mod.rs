//! The `cubby:storage/streams` imports, implemented for [`StorageCtx`]:
//! writers and readers of streamed values are resources in the store's
//! table, each holding the engine's [`StreamWriter`](crate::StreamWriter) or
//! [`StreamReader`](crate::StreamReader).
//!
//! As in `host.rs`, one macro writes both flavours: the sync one calls the
//! engine on the caller's thread, the async one on tokio's blocking pool
//! (the engine objects are shared with the blocking task through an
//! `Arc<Mutex<_>>`, so no borrow of the store crosses an `await`). A writer
//! the guest drops without finishing, or that is still open when the store
//! goes, removes what it wrote; that removal too runs on the blocking pool
//! when there is a tokio runtime.

use std::sync::{Arc, Mutex};

use wasmtime::component::Resource;

pub(crate) mod handles;
use handles::lock;
pub use handles::{Reader, Writer};

use crate::context::StorageCtx;
use crate::engine::blob::CHUNK_BYTES;
use crate::engine::{Condition, Namespace, StorageError, ValueInfo};
use crate::guest_error::small;
use crate::host::in_ns;

/// The refusal of using a writer after `finish`.
fn finished() -> StorageError {
    StorageError::InvalidArgument("the writer is finished".into())
}

/// A resource table that is full: the guest opened too many handles.
fn table_full(e: wasmtime::component::ResourceTableError) -> StorageError {
    StorageError::InvalidArgument(format!("too many open handles: {e}"))
}

/// A handle the table does not hold as expected: the host's failure.
fn bad_handle(e: wasmtime::component::ResourceTableError) -> StorageError {
    StorageError::internal(&format!("a stream handle: {e}"))
}

/// Runs one engine call of the sync flavour, on this thread.
fn run_now<T>(f: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
    f()
}

/// Implements a flavour's `Host`, `HostWriter` and `HostReader`. `$wit` is
/// its interface module; `$($async)?` is `async` for the async flavour.
macro_rules! streams_host {
    ($wit:path $(, $async:ident)?) => {
        const _: () = {
            use $wit as wit;

            /// Runs one engine call for this flavour.
            macro_rules! call {
                ($f:expr) => {
                    streams_host!(@run $f $(, $async)?)
                };
            }

            fn to_info(i: &ValueInfo) -> wit::ValueInfo {
                wit::ValueInfo {
                    size: i.size,
                    stored_size: i.stored_size,
                    streamed: i.streamed,
                    compressed: i.compressed,
                    version: i.version,
                    expires_in_ms: i
                        .expires_in
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                }
            }

            fn to_options(o: wit::StreamOptions) -> crate::engine::StreamOptions {
                let mut options = crate::engine::StreamOptions::default();
                options.write.ttl = o.ttl_ms.map(std::time::Duration::from_millis);
                options.write.condition = o.condition.map(Condition::from);
                options.compress = o.compress;
                options
            }

            impl wit::Host for StorageCtx {
                $($async)? fn open_writer(
                    &mut self,
                    ns: String,
                    key: String,
                    options: wit::StreamOptions,
                ) -> Result<Resource<Writer>, StorageError> {
                    let ws = self.workspace().clone();
                    let options = to_options(options);
                    let writer = call!(move || in_ns(&ws, &ns, |n: &Namespace| {
                        n.write_stream(&key, options)
                    }))?;
                    self.table.push(Writer::new(writer)).map_err(table_full)
                }

                $($async)? fn open_reader(&mut self, ns: String, key: String)
                    -> Result<Option<Resource<Reader>>, StorageError> {
                    let ws = self.workspace().clone();
                    let reader = call!(move || in_ns(&ws, &ns, |n| n.read_stream(&key)))?;
                    let Some(reader) = reader else {
                        return Ok(None);
                    };
                    let info = reader.info().clone();
                    let reader = Reader { reader: Arc::new(Mutex::new(reader)), info };
                    Ok(Some(self.table.push(reader).map_err(table_full)?))
                }

                $($async)? fn info(&mut self, ns: String, key: String)
                    -> Result<Option<wit::ValueInfo>, StorageError> {
                    let ws = self.workspace().clone();
                    let info = call!(move || in_ns(&ws, &ns, |n| n.info(&key)))?;
                    Ok(info.as_ref().map(to_info))
                }

                $($async)? fn limits(&mut self) -> wasmtime::Result<wit::StreamLimits> {
                    let limits = self.workspace().storage().limits();
                    Ok(wit::StreamLimits {
                        max_stream_bytes: limits.max_stream_bytes,
                        max_open_writers: limits.max_open_streams,
                        chunk_bytes: small(CHUNK_BYTES),
                    })
                }
            }

            impl wit::HostWriter for StorageCtx {
                $($async)? fn write(&mut self, writer: Resource<Writer>, bytes: Vec<u8>)
                    -> Result<(), StorageError> {
                    let shared = self.table.get(&writer).map_err(bad_handle)?.0.clone();
                    call!(move || match lock(&shared).as_mut() {
                        Some(w) => w.write_bytes(&bytes),
                        None => Err(finished()),
                    })
                }

                $($async)? fn finish(&mut self, writer: Resource<Writer>)
                    -> Result<u64, StorageError> {
                    let engine = lock(&self.table.get(&writer).map_err(bad_handle)?.0)
                        .take()
                        .ok_or_else(finished)?;
                    call!(move || engine.finish())
                }

                $($async)? fn drop(&mut self, writer: Resource<Writer>) -> wasmtime::Result<()> {
                    // An unfinished write is gone before the plugin goes on
                    // (removed off the executor's thread in the async
                    // flavour, like every storage call).
                    let engine = lock(&self.table.delete(writer)?.0).take();
                    if let Some(engine) = engine {
                        let removed = call!(move || {
                            drop(engine);
                            Ok(())
                        });
                        if let Err(e) = removed {
                            tracing::warn!(error = %e, "removing an unfinished stream write");
                        }
                    }
                    Ok(())
                }
            }

            impl wit::HostReader for StorageCtx {
                $($async)? fn read(&mut self, reader: Resource<Reader>, max: u64)
                    -> Result<Vec<u8>, StorageError> {
                    let shared = self.table.get(&reader).map_err(bad_handle)?.reader.clone();
                    let max = usize::try_from(max).unwrap_or(usize::MAX).min(CHUNK_BYTES);
                    call!(move || lock(&shared).read_bytes(max))
                }

                $($async)? fn info(&mut self, reader: Resource<Reader>)
                    -> wasmtime::Result<wit::ValueInfo> {
                    Ok(to_info(&self.table.get(&reader)?.info))
                }

                $($async)? fn drop(&mut self, reader: Resource<Reader>) -> wasmtime::Result<()> {
                    self.table.delete(reader)?;
                    Ok(())
                }
            }
        };
    };
    (@run $f:expr) => {
        run_now($f)
    };
    (@run $f:expr, async) => {
        crate::context::blocking($f).await
    };
}

streams_host!(crate::bindings::sync::cubby::storage::streams);
streams_host!(crate::bindings::cubby::storage::streams, async);
