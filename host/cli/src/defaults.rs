//! Where the `cubby` command keeps things by default: the database in the
//! per-user data folder, compiled plugins in the per-user cache folder.

use std::path::PathBuf;

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "cubby")
}

/// The default database file: `cubby.redb` in the per-user data folder
/// (`$XDG_DATA_HOME/cubby` or `~/.local/share/cubby` on Linux,
/// `~/Library/Application Support/cubby` on macOS, `%APPDATA%\cubby\data`
/// on Windows). `None` when the platform has no home folder.
pub fn database_path() -> Option<PathBuf> {
    project_dirs().map(|d| d.data_dir().join("cubby.redb"))
}

/// The default folder for compiled plugins: the per-user cache folder
/// (`$XDG_CACHE_HOME/cubby` or `~/.cache/cubby` on Linux). `None` when the
/// platform has no home folder.
pub fn cache_dir() -> Option<PathBuf> {
    project_dirs().map(|d| d.cache_dir().to_path_buf())
}
