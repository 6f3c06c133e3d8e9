//! Helpers for Cubby's end-to-end tests: the paths of the guests (built from
//! source by `cubby-artifacts`) and a runtime configured for tests.

use std::time::Duration;

pub use cubby_artifacts as guests;
use cubby_host::{Output, Runtime, RuntimeBuilder};

/// A runtime builder for tests: stdout and stderr captured, and compiled
/// components cached on disk so each is compiled once for the whole suite.
pub fn runtime_builder() -> RuntimeBuilder {
    Runtime::builder()
        .cache_dir(guests::CACHE_DIR)
        .stdout(Output::Capture)
        .stderr(Output::Capture)
        .timeout(Duration::from_secs(5))
}

/// The README's Rust examples, run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
