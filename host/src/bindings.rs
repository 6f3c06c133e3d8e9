//! Host bindings generated from the WIT package in `wit/`.
//!
//! `imports: { default: trappable }` gives every host function a
//! `wasmtime::Result` so that a host bug can trap instead of panicking; every
//! error a plugin can cause is returned as the WIT `error` instead.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: trappable },
});

pub use cubby::storage::storage::Error as WitError;
