//! Builds the Python and JavaScript example plugins from source and writes
//! their paths to `$OUT_DIR/polyglot.rs`.
//!
//! The toolchains are pinned in `tools/` (`requirements.txt` for
//! componentize-py, `package.json` and `package-lock.json` for
//! componentize-js) and installed with pip and npm under
//! `<target>/cubby-polyglot/tools` the first time, or when a pin changes.
//! Each component is rebuilt only when a file it is built from changes (its
//! name carries a hash of them all), so a warm `cargo test` runs no Python
//! or Node at all.
//!
//! Where `python3`/pip or `node`/npm is missing, or installing the pinned
//! tool fails (no network), that language's plugins are skipped with a
//! warning, unless `CI=true`: then the build fails. A plugin that does not
//! build from its source always fails the build.

// A build script reports failure by panicking with a message.
#![allow(clippy::expect_used)]

#[path = "../artifacts/target_root.rs"]
mod target_root;

use std::env;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;

use sha2::{Digest, Sha256};

#[derive(Clone, Copy, PartialEq)]
enum Lang {
    Python,
    JavaScript,
}

struct Plugin {
    /// The constant's name in `polyglot.rs`.
    konst: &'static str,
    /// The component's file name.
    name: &'static str,
    /// Its source folder, from the repository root.
    dir: &'static str,
    lang: Lang,
    /// The world of `wit/` it targets.
    world: &'static str,
    /// Python: the app module; JavaScript: the source file in its folder.
    entry: &'static str,
    /// What it is, for its constant's doc comment.
    what: &'static str,
}

const PLUGINS: &[Plugin] = &[
    Plugin {
        konst: "PY_NOTES",
        name: "py-notes",
        dir: "example-plugins/py-notes",
        lang: Lang::Python,
        world: "plugin",
        entry: "app",
        what: "The `py-notes` example plugin (Python, request/response)",
    },
    Plugin {
        konst: "PY_COUNTER",
        name: "py-counter",
        dir: "example-plugins/py-counter",
        lang: Lang::Python,
        world: "command",
        entry: "app",
        what: "The `py-counter` example plugin (Python, command-style)",
    },
    Plugin {
        konst: "JS_NOTES",
        name: "js-notes",
        dir: "example-plugins/js-notes",
        lang: Lang::JavaScript,
        world: "plugin",
        entry: "notes.js",
        what: "The `js-notes` example plugin (JavaScript, request/response)",
    },
    Plugin {
        konst: "PY_HELPERS",
        name: "py-helpers",
        dir: "tests/guests/py-helpers",
        lang: Lang::Python,
        world: "command",
        entry: "app",
        what: "The `py-helpers` test guest (Python, command-style: every helper of `cubby.py`)",
    },
    Plugin {
        konst: "JS_HELPERS",
        name: "js-helpers",
        dir: "tests/guests/js-helpers",
        lang: Lang::JavaScript,
        world: "command",
        entry: "helpers.js",
        what: "The `js-helpers` test guest (JavaScript, command-style: every helper of `cubby.js`)",
    },
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("the repository root");
    let tools_src = manifest_dir.join("tools");
    let mut watched = vec![
        root.join("wit"),
        root.join("guest-sdk/python"),
        root.join("guest-sdk/js"),
        tools_src.clone(),
    ];
    watched.extend(PLUGINS.iter().map(|p| root.join(p.dir)));
    for path in &watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-env-changed=PATH");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let work = target_root::target_root(&out_dir)
        .unwrap_or_else(|| root.join("target"))
        .join("cubby-polyglot");
    let ci = env::var("CI").as_deref() == Ok("true");
    let ctx = Ctx {
        root,
        tools_src,
        work,
    };

    // Python and JavaScript install and build side by side; each plugin's
    // build is its own thread.
    let per_lang: Vec<LangResult> = thread::scope(|s| {
        let per_lang = [Lang::Python, Lang::JavaScript].map(|lang| {
            let ctx = &ctx;
            s.spawn(move || {
                let tool = match lang {
                    Lang::Python => ctx.python(),
                    Lang::JavaScript => ctx.javascript(),
                };
                let builds: Vec<_> = PLUGINS
                    .iter()
                    .filter(|p| p.lang == lang)
                    .map(|p| {
                        let tool = tool.clone();
                        (p, s.spawn(move || tool.map(|tool| ctx.build(p, &tool))))
                    })
                    .collect();
                let built = builds
                    .into_iter()
                    .map(|(p, h)| (p, h.join().expect("a build thread panicked")))
                    .collect::<Vec<_>>();
                (lang, tool, built)
            })
        });
        per_lang
            .into_iter()
            .map(|h| h.join().expect("a build thread panicked"))
            .collect()
    });

    let mut consts = String::new();
    for (lang, tool, results) in per_lang {
        for (plugin, result) in results {
            let built = match result {
                Ok(path) => format!("Ok({:?})", path.display().to_string()),
                Err(why) => {
                    // A path that never exists: cargo runs this script again
                    // on the next build, so installing the tool (or coming
                    // back online) is noticed without touching a source file.
                    println!(
                        "cargo:rerun-if-changed={}",
                        ctx.work
                            .join("retried-while-a-toolchain-is-missing")
                            .display()
                    );
                    assert!(!ci, "CI=true, so {} must be built, but: {why}", plugin.name);
                    println!(
                        "cargo:warning={} not built, its tests will be skipped: {why}",
                        plugin.name
                    );
                    format!("Err({why:?})")
                }
            };
            consts.push_str(&format!(
                "/// {}, built from `{}`.\npub const {}: Polyglot = Polyglot {{ name: {:?}, built: {built} }};\n",
                plugin.what,
                plugin.dir,
                plugin.konst,
                plugin.name,
            ));
        }
        // The installed tool itself, for tests that build with it.
        let (konst, name, what) = match lang {
            Lang::Python => (
                "COMPONENTIZE_PY",
                "componentize-py",
                "The folder of the pinned componentize-py (a pip `--target` folder: \
                 `bin/componentize-py`, run with it on `PYTHONPATH`)",
            ),
            Lang::JavaScript => (
                "COMPONENTIZE_JS",
                "componentize-js",
                "The folder of the pinned componentize-js (an npm project: \
                 `node_modules/.bin/componentize-js`)",
            ),
        };
        let installed = match tool {
            Ok(tool) => format!("Ok({:?})", tool.dir.display().to_string()),
            Err(why) => format!("Err({why:?})"),
        };
        consts.push_str(&format!(
            "/// {what}.\npub const {konst}: Polyglot = Polyglot {{ name: {name:?}, built: {installed} }};\n",
        ));
    }
    fs::write(out_dir.join("polyglot.rs"), consts).expect("cannot write polyglot.rs");
}

/// One language's outcome: its toolchain, and each of its plugins' builds.
type LangResult = (
    Lang,
    Result<Tool, String>,
    Vec<(&'static Plugin, Result<PathBuf, String>)>,
);

struct Ctx {
    root: PathBuf,
    tools_src: PathBuf,
    /// `<target>/cubby-polyglot`: `tools/` and the built components.
    work: PathBuf,
}

/// An installed toolchain: where it lives, and what pins it.
#[derive(Clone)]
struct Tool {
    dir: PathBuf,
    pin: Vec<u8>,
}

impl Ctx {
    /// componentize-py, installed with pip into `tools/py` (a plain
    /// `--target` folder: no virtual environment is needed).
    fn python(&self) -> Result<Tool, String> {
        probe("python3", &["-m", "pip", "--version"])
            .map_err(|e| format!("python3 with pip is not available ({e})"))?;
        let requirements = self.tools_src.join("requirements.txt");
        let pin = fs::read(&requirements).expect("tools/requirements.txt");
        self.install("py", &pin, |dir| {
            let mut pip = Command::new("python3");
            pip.args(["-m", "pip", "install", "--disable-pip-version-check"])
                .args(["--no-input", "--quiet", "--target"])
                .arg(dir)
                .arg("-r")
                .arg(&requirements);
            pip
        })
    }

    /// componentize-js, installed with npm from the lock file into `tools/js`.
    fn javascript(&self) -> Result<Tool, String> {
        probe("node", &["--version"]).map_err(|e| format!("node is not available ({e})"))?;
        probe("npm", &["--version"]).map_err(|e| format!("npm is not available ({e})"))?;
        let manifest = fs::read(self.tools_src.join("package.json")).expect("tools/package.json");
        let lock =
            fs::read(self.tools_src.join("package-lock.json")).expect("tools/package-lock.json");
        let pin = [manifest.as_slice(), lock.as_slice()].concat();
        self.install("js", &pin, |dir| {
            for file in ["package.json", "package-lock.json"] {
                fs::copy(self.tools_src.join(file), dir.join(file))
                    .unwrap_or_else(|e| panic!("cannot copy {file}: {e}"));
            }
            // `npm install` follows the lock file; `npm ci` is not used because
            // npm refuses this lock for the optional packages of other
            // platforms. No package needs its install scripts.
            let mut npm = Command::new("npm");
            npm.args(["install", "--ignore-scripts", "--no-audit", "--no-fund"])
                .arg("--loglevel=error")
                .current_dir(dir);
            npm
        })
    }

    /// Installs into `tools/<name>` unless it holds `pin` already: into a
    /// fresh folder beside it first, renamed into place when complete, so an
    /// interrupted install is never taken for a finished one.
    fn install(
        &self,
        name: &str,
        pin: &[u8],
        command: impl FnOnce(&Path) -> Command,
    ) -> Result<Tool, String> {
        let dir = self.work.join("tools").join(name);
        let marker = dir.join(".cubby-pin");
        let tool = Tool {
            dir: dir.clone(),
            pin: pin.to_vec(),
        };
        if fs::read(&marker).is_ok_and(|installed| installed == pin) {
            return Ok(tool);
        }
        let staging = dir.with_extension("installing");
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", staging.display()));
        let mut cmd = command(&staging);
        let output =
            run(&mut cmd).map_err(|e| format!("installing the pinned tool failed: {e}"))?;
        if !output.status.success() {
            let _ = fs::remove_dir_all(&staging);
            return Err(format!(
                "installing the pinned tool failed ({:?}):\n{}",
                cmd,
                tail(&output)
            ));
        }
        fs::write(staging.join(".cubby-pin"), pin).expect("cannot write the pin marker");
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&staging, &dir)
            .unwrap_or_else(|e| panic!("cannot move {} into place: {e}", staging.display()));
        Ok(tool)
    }

    /// Builds one plugin, or reuses the component built from the same files.
    fn build(&self, plugin: &Plugin, tool: &Tool) -> PathBuf {
        let hash = self.input_hash(plugin, tool);
        let out_dir = self.work.join("out");
        fs::create_dir_all(&out_dir).expect("cannot create the output folder");
        let out = out_dir.join(format!("{}-{}.wasm", plugin.name, &hash[..16]));
        if out.exists() {
            return out;
        }
        let partial = out.with_extension("wasm.partial");
        let source_dir = Path::new(plugin.dir);
        let mut cmd = match plugin.lang {
            Lang::Python => {
                let mut cmd = Command::new("python3");
                cmd.arg(tool.dir.join("bin/componentize-py"))
                    .args([
                        "-d",
                        "wit",
                        "-w",
                        plugin.world,
                        "componentize",
                        plugin.entry,
                    ])
                    .arg("-p")
                    .arg(source_dir)
                    .args(["-p", "guest-sdk/python", "-o"])
                    .arg(&partial)
                    .env("PYTHONPATH", &tool.dir)
                    // Keep `__pycache__` out of the source folders.
                    .env("PYTHONPYCACHEPREFIX", self.work.join("pycache"));
                cmd
            }
            Lang::JavaScript => {
                // Run from the repository root: componentize-js resolves the
                // plugin's relative imports (`../../guest-sdk/js/cubby.js`)
                // inside the working directory.
                let mut cmd = Command::new("node");
                cmd.arg(
                    tool.dir
                        .join("node_modules/@bytecodealliance/componentize-js/src/cli.js"),
                )
                .arg(source_dir.join(plugin.entry))
                .args(["--wit", "wit", "--world-name", plugin.world])
                // Without these two, the component imports wasi:http.
                .args(["-d", "http", "fetch-event", "-o"])
                .arg(&partial)
                .env("XDG_CACHE_HOME", self.work.join("tools/cache"));
                cmd
            }
        };
        cmd.current_dir(&self.root);
        let output = run(&mut cmd).unwrap_or_else(|e| panic!("cannot build {}: {e}", plugin.name));
        if !output.status.success() || !partial.exists() {
            panic!(
                "building {} from {} failed ({:?}):\n{}",
                plugin.what,
                plugin.dir,
                cmd,
                tail(&output)
            );
        }
        fs::rename(&partial, &out).expect("cannot move the component into place");
        // Components built from older sources are of no further use.
        if let Ok(entries) = fs::read_dir(&out_dir) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if file.starts_with(&format!("{}-", plugin.name))
                    && file.len() == plugin.name.len() + 1 + 16 + ".wasm".len()
                    && entry.path() != out
                {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        out
    }

    /// SHA-256 of everything a plugin is built from: the tool's pin, the
    /// world, and every file of `wit/`, the language's helper folder and the
    /// plugin's own folder (path and contents).
    fn input_hash(&self, plugin: &Plugin, tool: &Tool) -> String {
        let helper = match plugin.lang {
            Lang::Python => "guest-sdk/python",
            Lang::JavaScript => "guest-sdk/js",
        };
        let mut hasher = Sha256::new();
        hasher.update(&tool.pin);
        hasher.update(format!("\0{}\0{}\0", plugin.world, plugin.entry));
        for dir in ["wit", helper, plugin.dir] {
            let mut files = Vec::new();
            list_files(&self.root, Path::new(dir), &mut files);
            files.sort();
            for file in files {
                let contents = fs::read(self.root.join(&file))
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
                hasher.update(file.to_string_lossy().as_bytes());
                hasher.update((contents.len() as u64).to_le_bytes());
                hasher.update(&contents);
            }
        }
        hex::encode(hasher.finalize())
    }
}

/// The source files under `root/dir`, as paths relative to `root`; build
/// output (`.wasm`, `__pycache__`, `node_modules`) is left out.
fn list_files(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = dir.join(&*name);
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && name != "__pycache__" && name != "node_modules" {
            list_files(root, &path, files);
        } else if kind.is_file() && !name.ends_with(".wasm") && !name.ends_with(".pyc") {
            files.push(path);
        }
    }
}

/// Runs `program args` and succeeds if it exits with 0.
fn probe(program: &str, args: &[&str]) -> Result<(), String> {
    let output = run(Command::new(program).args(args))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            tail(&output)
        ))
    }
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    cmd.output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))
}

/// The last lines of a command's stdout and stderr, for an error message.
fn tail(output: &Output) -> String {
    let mut text = Vec::new();
    let _ = text.write_all(&output.stdout);
    let _ = text.write_all(&output.stderr);
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
