//! `cubby new`: for every language and kind, from an empty folder to a
//! stored value by the commands of the new project's own README (build, run
//! or call, inspect), with the `cubby` binary on `PATH`; and the mistakes
//! that must be a one-line error that writes nothing.
//!
//! The README's set-up step (once) is stood in for by the pinned tools
//! `tests/polyglot` installs (the same versions: checked here), and cubby-sdk
//! comes from this repository through cargo's `[patch]` configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

const CUBBY: &str = env!("CARGO_BIN_EXE_cubby");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A temporary folder holding an empty `work/`, where `cubby new` runs, and
/// the database and compile cache the commands use.
struct Sandbox {
    root: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("work")).unwrap();
        Sandbox { root }
    }

    fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// A command in `dir`, with `cubby` first on `PATH`, the sandbox's
    /// database and cache, and none of the outer cargo's variables (they
    /// are meant for the test's own build, not a plugin's); cargo and rustc
    /// are the toolchain this repository pins, whose wasm32-wasip2 target
    /// the build installs.
    fn command(&self, program: &str, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir);
        cubby_artifacts::without_outer_cargo(&mut cmd);
        let bin = Path::new(CUBBY).parent().unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path)),
        )
        .unwrap();
        cmd.env("PATH", path)
            .env("CUBBY_DB", self.root.path().join("cubby.redb"))
            .env("CUBBY_CACHE_DIR", self.root.path().join("cache"))
            .env("RUSTUP_TOOLCHAIN", pinned_toolchain())
            .env_remove("CUBBY_LOG");
        cmd
    }

    /// `cubby new ARGS` in `work/`.
    fn new_project(&self, args: &[&str]) -> Output {
        self.command(CUBBY, &self.work())
            .arg("new")
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs one line of a README through `sh` in `dir`; its stdout, after
    /// checking that it succeeded.
    fn sh(&self, dir: &Path, line: &str) -> String {
        let out = self.command("sh", dir).args(["-c", line]).output().unwrap();
        assert!(
            out.status.success(),
            "`{line}` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Everything under `work/`, as sorted relative paths.
    fn listing(&self) -> Vec<String> {
        let mut found = Vec::new();
        list(&self.work(), &self.work(), &mut found);
        found.sort();
        found
    }
}

fn list(root: &Path, dir: &Path, found: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        found.push(path.strip_prefix(root).unwrap().display().to_string());
        if path.is_dir() && !path.is_symlink() {
            list(root, &path, found);
        }
    }
}

/// The toolchain of `rust-toolchain.toml` (its wasm32-wasip2 target is
/// installed by the build of the test guests).
fn pinned_toolchain() -> String {
    let file = fs::read_to_string(repo().join("rust-toolchain.toml")).unwrap();
    file.lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .expect("a channel in rust-toolchain.toml")
        .trim_matches('"')
        .to_owned()
}

/// Creates the project and checks that `cubby new --json` listed the files
/// it wrote; the project's folder.
fn scaffold(sandbox: &Sandbox, args: &[&str]) -> PathBuf {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = sandbox.new_project(&all);
    assert!(
        out.status.success(),
        "cubby new {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let project = sandbox.work().join(doc["path"].as_str().unwrap());
    let files = doc["files"].as_array().unwrap();
    assert!(files.len() >= 4, "{doc}");
    for file in files {
        let file = project.join(file.as_str().unwrap());
        assert!(file.is_file(), "{} is missing", file.display());
    }
    // The steps `--json` gives are the README's commands.
    let commands = readme_steps(&project).map(|line| {
        let (command, _comment) = line.split_once("   # ").expect("a commented command");
        command.trim_end().to_owned()
    });
    for (key, command) in ["build", "run", "inspect"].iter().zip(&commands) {
        assert_eq!(doc["steps"][key].as_str(), Some(command.as_str()), "{key}");
    }
    project
}

/// The commands of the README's "Build, run, inspect" block: build, run or
/// call, inspect.
fn readme_steps(project: &Path) -> [String; 3] {
    let readme = fs::read_to_string(project.join("README.md")).unwrap();
    let block = readme
        .split("## Build, run, inspect")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("a Build, run, inspect block in the README");
    let lines: Vec<String> = block.lines().map(str::to_owned).collect();
    lines.try_into().expect("three commands")
}

/// Builds, then runs or calls the plugin twice and reads what it stored,
/// all by the README's commands; `answer(n)` is what the n-th run prints.
fn build_run_inspect(sandbox: &Sandbox, project: &Path, answer: impl Fn(u32) -> String) {
    let [build, run, inspect] = readme_steps(project);
    sandbox.sh(project, &build);
    assert_eq!(sandbox.sh(project, &run).trim_end(), answer(1), "{run}");
    assert_eq!(sandbox.sh(project, &run).trim_end(), answer(2), "{run}");
    assert_eq!(sandbox.sh(project, &inspect), "2", "{inspect}");
    // Another workspace counts on its own.
    let elsewhere = run.replace("-w demo", "-w elsewhere");
    assert_ne!(elsewhere, run);
    assert_eq!(sandbox.sh(project, &elsewhere).trim_end(), answer(1));
}

fn greeting(n: u32) -> String {
    format!("Hello, world! (greeting {n})")
}

fn run_line(n: u32) -> String {
    format!("Hello! This is run {n} in this workspace.")
}

/// Rust projects share one target folder (a link from each project), so
/// that cubby-sdk's dependencies are built once.
fn share_rust_target(project: &Path) {
    let shared = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-rust");
    fs::create_dir_all(&shared).unwrap();
    std::os::unix::fs::symlink(&shared, project.join("target")).unwrap();
}

#[test]
fn a_rust_plugin_by_version_with_a_patch_in_cargo_config() {
    let sandbox = Sandbox::new();
    // cargo's [patch] configuration, in a folder above the project: the
    // project itself depends on cubby-sdk by version.
    let cargo_dir = sandbox.root.path().join(".cargo");
    fs::create_dir(&cargo_dir).unwrap();
    let sdk = repo().join("guest-sdk");
    fs::write(
        cargo_dir.join("config.toml"),
        format!(
            "[patch.crates-io]\ncubby-sdk = {{ path = {:?} }}\n",
            sdk.display()
        ),
    )
    .unwrap();
    let project = scaffold(&sandbox, &["hello-plugin"]);
    let manifest = fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("cubby-sdk = \"{}\"", env!("CARGO_PKG_VERSION"))),
        "{manifest}"
    );
    let config = fs::read_to_string(project.join(".cargo/config.toml")).unwrap();
    assert!(
        config.contains(r#"rustflags = ["-C", "link-arg=-zstack-size=65536"]"#),
        "{config}"
    );
    assert!(!config.contains("[patch"), "{config}");
    share_rust_target(&project);
    build_run_inspect(&sandbox, &project, greeting);
}

#[test]
fn a_rust_command_with_sdk_path() {
    let sandbox = Sandbox::new();
    let sdk = repo().join("guest-sdk");
    let project = scaffold(
        &sandbox,
        &[
            "hello-command",
            "--kind",
            "command",
            "--sdk-path",
            sdk.to_str().unwrap(),
        ],
    );
    let config = fs::read_to_string(project.join(".cargo/config.toml")).unwrap();
    assert!(config.contains("[patch.crates-io]"), "{config}");
    share_rust_target(&project);
    build_run_inspect(&sandbox, &project, run_line);
}

/// The pin the scaffold writes is the one the tests install.
fn python_project(kind: &str) {
    let Some(tool) = cubby_polyglot::COMPONENTIZE_PY.path() else {
        return;
    };
    let sandbox = Sandbox::new();
    let project = scaffold(&sandbox, &["hello-py", "--lang", "python", "--kind", kind]);
    assert_eq!(
        fs::read_to_string(project.join("requirements.txt")).unwrap(),
        fs::read_to_string(repo().join("tests/polyglot/tools/requirements.txt")).unwrap(),
        "the scaffold pins another componentize-py than the tests use"
    );
    // The README's once-per-machine step, `python3 -m venv .venv &&
    // .venv/bin/pip install -r requirements.txt`, stood in for by the
    // installed pin.
    let venv_bin = project.join(".venv/bin");
    fs::create_dir_all(&venv_bin).unwrap();
    fs::write(
        venv_bin.join("componentize-py"),
        format!("#!/bin/sh\nPYTHONPATH={tool} exec python3 {tool}/bin/componentize-py \"$@\"\n"),
    )
    .unwrap();
    sandbox.sh(&venv_bin, "chmod +x componentize-py");
    build_run_inspect(
        &sandbox,
        &project,
        if kind == "plugin" { greeting } else { run_line },
    );
}

#[test]
fn a_python_plugin() {
    python_project("plugin");
}

#[test]
fn a_python_command() {
    python_project("command");
}

fn js_project(kind: &str) {
    let Some(tool) = cubby_polyglot::COMPONENTIZE_JS.path() else {
        return;
    };
    let sandbox = Sandbox::new();
    let project = scaffold(&sandbox, &["hello-js", "--lang", "js", "--kind", kind]);
    let package: serde_json::Value =
        serde_json::from_slice(&fs::read(project.join("package.json")).unwrap()).unwrap();
    let pinned: serde_json::Value = serde_json::from_slice(
        &fs::read(repo().join("tests/polyglot/tools/package.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        package["devDependencies"], pinned["dependencies"],
        "the scaffold pins another componentize-js than the tests use"
    );
    // The README's once-per-machine `npm install`, stood in for by the
    // installed pin.
    std::os::unix::fs::symlink(
        Path::new(tool).join("node_modules"),
        project.join("node_modules"),
    )
    .unwrap();
    build_run_inspect(
        &sandbox,
        &project,
        if kind == "plugin" { greeting } else { run_line },
    );
}

#[test]
fn a_javascript_plugin() {
    js_project("plugin");
}

#[test]
fn a_javascript_command() {
    js_project("command");
}

/// A mistake: exit status 1, one `error:` line, and nothing written.
fn refused(sandbox: &Sandbox, args: &[&str], why: &str) {
    let before = sandbox.listing();
    let out = sandbox.new_project(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(stderr.contains(why), "{args:?}: {stderr}");
    assert_eq!(sandbox.listing(), before, "{args:?} wrote something");
}

#[test]
fn a_bad_name_or_an_existing_folder_is_one_line_and_writes_nothing() {
    let sandbox = Sandbox::new();
    for name in ["Hello", "2fast", "my plugin", "héllo", "fn", "test", "con"] {
        refused(&sandbox, &[name], &format!("invalid plugin name {name:?}"));
    }
    refused(
        &sandbox,
        &["ok-folder", "--name", "Bad.Name"],
        "invalid plugin name \"Bad.Name\"",
    );
    refused(&sandbox, &["nested/Deep"], "invalid plugin name \"Deep\"");
    assert!(!sandbox.work().join("nested").exists());

    fs::create_dir(sandbox.work().join("taken")).unwrap();
    fs::write(sandbox.work().join("taken/keep.txt"), "mine").unwrap();
    fs::write(sandbox.work().join("a-file"), "mine").unwrap();
    for taken in ["taken", "a-file"] {
        refused(&sandbox, &[taken], "already exists");
        refused(&sandbox, &[taken, "--lang", "js"], "already exists");
    }
    assert_eq!(
        fs::read_to_string(sandbox.work().join("taken/keep.txt")).unwrap(),
        "mine"
    );

    let not_the_sdk = repo().join("host");
    refused(
        &sandbox,
        &["fine", "--sdk-path", not_the_sdk.to_str().unwrap()],
        "is not the cubby-sdk crate",
    );
    refused(
        &sandbox,
        &["fine", "--lang", "python", "--sdk-path", "."],
        "--sdk-path is for Rust plugins",
    );
    // And a good name after all that works.
    let out = sandbox.new_project(&["fine"]);
    assert!(out.status.success());
    // Without --json: what was made, and the commands to go on with.
    let stdout = String::from_utf8(out.stdout).unwrap();
    for line in [
        "Created fine (a Rust request/response plugin) in fine",
        "  cd fine\n",
        "  rustup target add wasm32-wasip2   # once\n",
        "  cargo build --release\n",
        "  cubby call target/wasm32-wasip2/release/fine.wasm -w demo --input world\n",
        "  cubby kv get -w demo greeted/world",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    assert!(sandbox.work().join("fine/src/lib.rs").is_file());
    assert!(
        sandbox
            .listing()
            .iter()
            .all(|p| !p.starts_with(".cubby-new-")),
        "a staging folder was left behind"
    );
}
