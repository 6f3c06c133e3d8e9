//! Host bindings of the `wasi:keyvalue` packages (`wit/deps/`, and
//! `wit/variants/` for Spin's `get-many`), one module per version, each in an
//! async and a sync flavour, with the interface's `error` as
//! [`KvError`](super::KvError) and the resources as Cubby's own types.

#![allow(missing_docs)]

/// `wasi:keyvalue@0.2.0-draft`: `u64` cursors and counters.
pub(crate) mod draft {
    wasmtime::component::bindgen!({
        path: "wit/deps/keyvalue-0.2.0-draft",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: { "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket },
        trappable_error_type: { "wasi:keyvalue/store.error" => crate::keyvalue::KvError },
    });

    pub(crate) mod sync {
        wasmtime::component::bindgen!({
            path: "wit/deps/keyvalue-0.2.0-draft",
            world: "wasi:keyvalue/imports",
            imports: { default: trappable },
            with: { "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket },
            trappable_error_type: { "wasi:keyvalue/store.error" => crate::keyvalue::KvError },
        });
    }
}

/// `wasi:keyvalue@0.2.0-draft2`: string cursors, `s64` counters, `cas`.
pub(crate) mod draft2 {
    wasmtime::component::bindgen!({
        path: "wit/deps/keyvalue-0.2.0-draft2",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket,
            "wasi:keyvalue/atomics.cas": crate::keyvalue::Cas,
        },
        trappable_error_type: { "wasi:keyvalue/store.error" => crate::keyvalue::KvError },
    });

    pub(crate) mod sync {
        wasmtime::component::bindgen!({
            path: "wit/deps/keyvalue-0.2.0-draft2",
            world: "wasi:keyvalue/imports",
            imports: { default: trappable },
            with: {
                "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket,
                "wasi:keyvalue/atomics.cas": crate::keyvalue::Cas,
            },
            trappable_error_type: { "wasi:keyvalue/store.error" => crate::keyvalue::KvError },
        });
    }
}

/// `wasi:keyvalue@0.2.0-draft2` with Spin's `get-many` (one `(key, option)`
/// per key): only `batch` differs, so `store` and `atomics` are those of
/// [`draft2`].
pub(crate) mod draft2_spin {
    wasmtime::component::bindgen!({
        path: "wit/variants/keyvalue-0.2.0-draft2-spin",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store": super::draft2::wasi::keyvalue::store,
            "wasi:keyvalue/atomics": super::draft2::wasi::keyvalue::atomics,
        },
        trappable_error_type: { "wasi:keyvalue/store.error" => crate::keyvalue::KvError },
    });

    pub(crate) mod sync {
        wasmtime::component::bindgen!({
            path: "wit/variants/keyvalue-0.2.0-draft2-spin",
            world: "wasi:keyvalue/imports",
            imports: { default: trappable },
            with: {
                "wasi:keyvalue/store": super::super::draft2::sync::wasi::keyvalue::store,
                "wasi:keyvalue/atomics": super::super::draft2::sync::wasi::keyvalue::atomics,
            },
            trappable_error_type: { "wasi:keyvalue/store.error" => crate::keyvalue::KvError },
        });
    }
}
