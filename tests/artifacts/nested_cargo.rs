// Shared by the build script of `cubby-artifacts` (included with `#[path]`)
// and its library (for the benchmark and the tests that run cargo).

use std::process::Command;

/// Takes the outer build's settings out of a nested cargo's environment:
/// every `CARGO_*` variable but `CARGO_HOME`, the `RUSTC_*` wrappers,
/// `RUSTFLAGS` and `RUSTDOCFLAGS`. They are meant for the outer build (its
/// target folder, profile and host target); the nested build keeps what
/// names the toolchain and cargo's home (TOOLCHAIN.md).
pub fn without_outer_cargo(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC_")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}
