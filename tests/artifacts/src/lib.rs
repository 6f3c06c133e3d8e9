//! Paths of the example plugins and test guests, built from source for
//! `wasm32-wasip2` by this crate's build script (in its own target folder,
//! `<target>/cubby-guests`). Nothing here is checked in.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

#[path = "../nested_cargo.rs"]
mod nested_cargo;
pub use nested_cargo::without_outer_cargo;
