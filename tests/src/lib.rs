//! Cubby's end-to-end tests live in `tests/`: `e2e.rs` (through the library,
//! with the example plugins built from source by `cubby-artifacts`) and
//! `crash.rs` (durability across a killed process, with the `crash-writer`
//! helper binary). This library only carries the README's Rust examples, which
//! run as doc tests.

/// The README's Rust examples, run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
