// Shared by the build scripts of `cubby-artifacts` and `cubby-polyglot`
// (included with `#[path]`), which both put their output beside the outer
// build's.

use std::path::{Path, PathBuf};

/// The outer build's target folder: the ancestor of OUT_DIR that holds
/// cargo's `CACHEDIR.TAG`.
pub fn target_root(out_dir: &Path) -> Option<PathBuf> {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
}
