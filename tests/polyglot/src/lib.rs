//! The Python and JavaScript example plugins, built from source by this
//! crate's build script with the pinned toolchains in `tools/`
//! (componentize-py from PyPI, componentize-js from npm), which it installs
//! under `<target>/cubby-polyglot/tools` when they are missing. Nothing here
//! is checked in.
//!
//! Where `python3`/pip or `node`/npm is unavailable (or the registries cannot
//! be reached), the plugins of that language are not built and
//! [`Polyglot::path`] says so once per test; with `CI=true` the build fails
//! instead, so CI never skips them.

/// A plugin built from another language's source (or a toolchain installed
/// to build them), or why it was not built.
#[derive(Debug, Clone, Copy)]
pub struct Polyglot {
    /// The plugin's name (its component's file name).
    pub name: &'static str,
    built: Result<&'static str, &'static str>,
}

impl Polyglot {
    /// The component's path (a toolchain's folder), or `None` (after printing
    /// why, for the test's output) when its toolchain was unavailable on
    /// this machine.
    ///
    /// # Panics
    /// When it was not built and `CI` is `true` (the build script refuses to
    /// skip there, so this is a second guard).
    pub fn path(&self) -> Option<&'static str> {
        match self.built {
            Ok(path) => Some(path),
            Err(why) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{} was not built under CI=true: {why}",
                    self.name
                );
                eprintln!("note: {} tests skipped: it was not built: {why}", self.name);
                None
            }
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/polyglot.rs"));
