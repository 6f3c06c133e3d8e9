//! Builds every guest (example plugins and test guests) for wasm32-wasip2 and
//! writes their paths to `$OUT_DIR/guests.rs`.
//!
//! The nested cargo gets its own target folder (sharing the outer one deadlocks
//! on cargo's build lock) and an environment without the outer build's
//! `CARGO_*`, `RUSTFLAGS` and wrapper variables, which are meant for the host
//! target. The wasm32-wasip2 target is installed with rustup when missing.

// A build script reports failure by panicking with a message.
#![allow(clippy::expect_used)]

#[path = "nested_cargo.rs"]
mod nested_cargo;
#[path = "target_root.rs"]
mod target_root;

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// (constant name, package, file name, what it is)
const GUESTS: &[(&str, &str, &str, &str)] = &[
    (
        "COUNTER",
        "counter",
        "counter.wasm",
        "the `counter` example plugin (command-style)",
    ),
    (
        "NOTES",
        "notes",
        "notes.wasm",
        "the `notes` example plugin (request/response)",
    ),
    (
        "KVSH",
        "kvsh",
        "kvsh.wasm",
        "the `kvsh` example plugin (command-style, listing)",
    ),
    (
        "RATE_LIMITER",
        "rate-limiter",
        "rate_limiter.wasm",
        "the `rate-limiter` example plugin (request/response, counters and expiry)",
    ),
    (
        "TOKEN_CACHE",
        "token-cache",
        "token_cache.wasm",
        "the `token-cache` example plugin (request/response, expiry and renew-on-read)",
    ),
    (
        "GUESTBOOK",
        "guestbook",
        "guestbook.wasm",
        "the `guestbook` example plugin (command-style, standard `wasi:keyvalue@0.2.0-draft2` only)",
    ),
    (
        "FILES",
        "files",
        "files.wasm",
        "the `files` example plugin (command-style, files of any size as streams)",
    ),
    (
        "PROBE",
        "probe",
        "probe.wasm",
        "the `probe` test guest (request/response, misbehaves on request)",
    ),
    (
        "GETTER",
        "getter",
        "getter.wasm",
        "the `getter` test guest (request/response; answers the value of the key it is sent)",
    ),
    (
        "WRITER",
        "writer",
        "writer.wasm",
        "the `writer` test guest (command-style; writes until killed or refused)",
    ),
    (
        "EMBEDDED",
        "embedded",
        "embedded.wasm",
        "the `embedded` test guest (request/response; imports `example:app/clock`, which the embedder links)",
    ),
    (
        "KV_DRAFT",
        "kv-draft",
        "kv-draft.wasm",
        "the `kv-draft` test guest (command-style, `wasi:keyvalue@0.2.0-draft` only)",
    ),
    (
        "KV_DRAFT2",
        "kv-draft2",
        "kv-draft2.wasm",
        "the `kv-draft2` test guest (command-style, `wasi:keyvalue@0.2.0-draft2` only)",
    ),
    (
        "KV_DRAFT2_SPIN",
        "kv-draft2-spin",
        "kv-draft2-spin.wasm",
        "the `kv-draft2-spin` test guest (command-style, `wasi:keyvalue@0.2.0-draft2` with Spin's `get-many`)",
    ),
    (
        "KV_ODD_SHAPE",
        "kv-odd-shape",
        "kv-odd-shape.wasm",
        "the `kv-odd-shape` test guest (imports draft2's `get-many` in a shape no host serves)",
    ),
    (
        "KV_UNKNOWN",
        "kv-unknown",
        "kv-unknown.wasm",
        "the `kv-unknown` test guest (imports a `wasi:keyvalue` version no host provides)",
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.join("../..");
    for watched in [
        "wit",
        "guest-sdk",
        "example-plugins",
        "tests/guests",
        "Cargo.lock",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = target_root::target_root(&out_dir)
        .unwrap_or_else(|| root.join("target"))
        .join("cubby-guests");

    ensure_target_installed();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, package, _, _) in GUESTS {
        cmd.arg("-p").arg(package);
    }
    nested_cargo::without_outer_cargo(&mut cmd);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the guests: {e}"));
    if !output.status.success() {
        panic!(
            "building the guest plugins for {TARGET} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let mut consts = String::new();
    for (name, _, file, what) in GUESTS {
        let path = target_dir.join(TARGET).join("release").join(file);
        assert!(path.exists(), "{} was not built", path.display());
        consts.push_str(&format!(
            "/// Path of {what}, built for wasm32-wasip2.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    let cache = target_dir.with_file_name("cubby-compile-cache");
    consts.push_str(&format!(
        "/// A folder for wasmtime's compilation cache, shared by the test binaries.\npub const CACHE_DIR: &str = {:?};\n",
        cache.display().to_string()
    ));
    std::fs::write(out_dir.join("guests.rs"), consts).expect("cannot write guests.rs");
}

/// Installs the wasm32-wasip2 target with rustup if this toolchain lacks it
/// (machines with RUSTUP_AUTO_INSTALL=0 do not install it from
/// rust-toolchain.toml).
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.as_deref().is_some_and(Path::exists) {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup");
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Some(toolchain) = env::var_os("RUSTUP_TOOLCHAIN") {
        rustup.arg("--toolchain").arg(toolchain);
    }
    match rustup.output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed:\n{}\n\
             Install it yourself with: rustup target add {TARGET}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "the {TARGET} target is missing and rustup could not be run ({e}).\n\
             Install the target for your toolchain (with rustup: rustup target add {TARGET})."
        ),
    }
}
