//! Cubby's end-to-end tests live in `tests/`: `e2e.rs` (through the library,
//! with the example plugins built from source by `cubby-artifacts`) and
//! `crash.rs` (durability across a killed process, with the `crash-writer`
//! helper binary), among others. This library carries the concurrent model
//! campaign's worker ([`model`]), shared by the tests and the
//! `storage-worker` helper, and the README's Rust examples, which run as
//! doc tests.

pub mod model;

/// The README's Rust examples, run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
