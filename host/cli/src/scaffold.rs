//! `cubby new`: a plugin project that builds and runs as it stands, in Rust,
//! Python or JavaScript, request/response or command-style.
//!
//! Every file a project gets is compiled into the binary from `scaffold/`
//! (the WIT and the Python and JavaScript helpers are links there to the one
//! copy in the repository), so `cubby new` needs no network; the language's
//! own tools fetch their packages when the project is built.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    /// Rust, with the cubby-sdk crate.
    Rust,
    /// Python, built with componentize-py, with the cubby.py helper.
    #[value(alias = "py")]
    Python,
    /// JavaScript, built with componentize-js, with the cubby.js helper.
    #[value(alias = "javascript")]
    Js,
}

/// What kind of plugin: which world of Cubby's WIT it targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Request/response: `cubby call` sends it a request and prints its
    /// answer (world `plugin`).
    Plugin,
    /// A program: `cubby run` runs it with arguments, standard output and
    /// an exit code (world `command`).
    Command,
}

impl Lang {
    fn id(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

impl Kind {
    fn id(self) -> &'static str {
        match self {
            Kind::Plugin => "plugin",
            Kind::Command => "command",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Plugin => "request/response plugin",
            Kind::Command => "command-style plugin",
        }
    }
}

/// A project to create: its name, language and kind, and where its Rust
/// SDK comes from.
#[derive(Debug)]
pub(crate) struct Project {
    name: String,
    lang: Lang,
    kind: Kind,
    /// A local cubby-sdk (a checkout) to use instead of crates.io's.
    sdk_path: Option<PathBuf>,
}

/// The commands that take a new project from its source to a stored value,
/// as its README gives them (run in the project's folder).
#[derive(Debug)]
pub(crate) struct Steps {
    /// Installs the language's build tool (once per machine or project).
    pub(crate) once: &'static str,
    /// Builds the component.
    pub(crate) build: String,
    /// Calls or runs it with `cubby`.
    pub(crate) run: String,
    /// Shows what it stored, with `cubby kv`.
    pub(crate) inspect: &'static str,
}

/// Names Cargo, rustc, npm or Windows will not take for a package or a
/// folder, each with the reason.
const RESERVED: &[(&[&str], &str)] = &[
    (
        &[
            "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
            "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match",
            "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super",
            "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become",
            "box", "do", "final", "macro", "override", "priv", "try", "typeof", "unsized",
            "virtual", "yield",
        ],
        "it is a Rust keyword",
    ),
    (
        &["test", "core", "std", "alloc", "proc_macro"],
        "it is the name of one of Rust's own crates",
    ),
    (
        &["build", "deps", "examples", "incremental"],
        "Cargo keeps it for a folder of its own",
    ),
    (
        &["node_modules", "favicon.ico"],
        "npm does not take it as a package name",
    ),
    (
        &[
            "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7",
            "com8", "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
        ],
        "Windows keeps it for a device",
    ),
    (&["cubby_sdk"], "it is the SDK's own name"),
];

/// Longest name: a package name npm, PyPI and crates.io all take.
const MAX_NAME: usize = 64;

/// Checks that `name` can name the plugin's package, crate and folder in
/// every language: lowercase ASCII letters, digits, `-` and `_`, starting
/// with a letter, and not a reserved word.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !well_formed || name.len() > MAX_NAME {
        bail!(
            "invalid plugin name {name:?}: use lowercase ASCII letters, digits, - and _, \
             starting with a letter, at most {MAX_NAME} characters (e.g. hello-world)"
        );
    }
    let normalized = name.replace('-', "_");
    for (names, why) in RESERVED {
        if names.contains(&normalized.as_str()) {
            bail!("invalid plugin name {name:?}: {why}; choose another (e.g. my-{name})");
        }
    }
    Ok(())
}

/// A file a project gets from a template in `scaffold/`.
struct Template {
    /// The languages whose projects get it.
    langs: &'static [Lang],
    /// The kind of plugin that gets it, or `None`: both.
    kind: Option<Kind>,
    /// Where it goes in the project.
    path: &'static str,
    /// Its text, `@NAME@`, `@WORLD@`, `@SDK_VERSION@` and `@LIB@` to be
    /// filled in.
    text: &'static str,
}

/// Every project file but the README and `.cargo/config.toml`, which are
/// made from the project's settings.
const TEMPLATES: &[Template] = {
    use Kind::{Command, Plugin};
    use Lang::{Js, Python, Rust};
    const fn t(
        langs: &'static [Lang],
        kind: Option<Kind>,
        path: &'static str,
        text: &'static str,
    ) -> Template {
        Template {
            langs,
            kind,
            path,
            text,
        }
    }
    &[
        t(
            &[Rust],
            None,
            "Cargo.toml",
            include_str!("../scaffold/rust/Cargo.toml.in"),
        ),
        t(
            &[Rust],
            Some(Plugin),
            "src/lib.rs",
            include_str!("../scaffold/rust/plugin.rs"),
        ),
        t(
            &[Rust],
            Some(Command),
            "src/main.rs",
            include_str!("../scaffold/rust/command.rs"),
        ),
        t(
            &[Rust],
            None,
            ".gitignore",
            include_str!("../scaffold/rust/gitignore"),
        ),
        t(
            &[Python],
            Some(Plugin),
            "app.py",
            include_str!("../scaffold/python/plugin.py"),
        ),
        t(
            &[Python],
            Some(Command),
            "app.py",
            include_str!("../scaffold/python/command.py"),
        ),
        t(
            &[Python],
            None,
            "cubby.py",
            include_str!("../scaffold/python/cubby.py"),
        ),
        t(
            &[Python],
            None,
            "requirements.txt",
            include_str!("../scaffold/python/requirements.txt"),
        ),
        t(
            &[Python],
            None,
            ".gitignore",
            include_str!("../scaffold/python/gitignore"),
        ),
        t(
            &[Js],
            Some(Plugin),
            "app.js",
            include_str!("../scaffold/js/plugin.js"),
        ),
        t(
            &[Js],
            Some(Command),
            "app.js",
            include_str!("../scaffold/js/command.js"),
        ),
        t(
            &[Js],
            None,
            "cubby.js",
            include_str!("../scaffold/js/cubby.js"),
        ),
        t(
            &[Js],
            None,
            "package.json",
            include_str!("../scaffold/js/package.json"),
        ),
        t(
            &[Js],
            None,
            ".gitignore",
            include_str!("../scaffold/js/gitignore"),
        ),
        // The SDK crate carries the WIT for Rust; the other languages'
        // build tools read it from the project.
        t(
            &[Python, Js],
            None,
            "wit/storage.wit",
            include_str!("../scaffold/wit/storage.wit"),
        ),
        t(
            &[Python, Js],
            None,
            "wit/deps/cli-0.2.12/run.wit",
            include_str!("../scaffold/wit/deps/cli-0.2.12/run.wit"),
        ),
    ]
};

impl Project {
    /// A project, after checking its name and, if given, that `sdk_path`
    /// holds the cubby-sdk crate.
    pub(crate) fn new(
        name: &str,
        lang: Lang,
        kind: Kind,
        sdk_path: Option<&Path>,
    ) -> Result<Project> {
        check_name(name)?;
        let sdk_path = match sdk_path {
            None => None,
            Some(_) if lang != Lang::Rust => {
                bail!(
                    "--sdk-path is for Rust plugins (Python and JavaScript get their helper module)"
                )
            }
            Some(dir) => Some(sdk_crate(dir)?),
        };
        Ok(Project {
            name: name.to_owned(),
            lang,
            kind,
            sdk_path,
        })
    }

    /// The built component, relative to the project's folder.
    fn wasm(&self) -> String {
        match (self.lang, self.kind) {
            // Cargo names a library's file after its crate (`-` becomes `_`)
            // and a binary's after the package.
            (Lang::Rust, Kind::Plugin) => format!(
                "target/wasm32-wasip2/release/{}.wasm",
                self.name.replace('-', "_")
            ),
            (Lang::Rust, Kind::Command) => {
                format!("target/wasm32-wasip2/release/{}.wasm", self.name)
            }
            (Lang::Python | Lang::Js, _) => format!("{}.wasm", self.name),
        }
    }

    /// The commands of the project's README.
    pub(crate) fn steps(&self) -> Steps {
        let (once, build) = match self.lang {
            Lang::Rust => (
                "rustup target add wasm32-wasip2",
                "cargo build --release".into(),
            ),
            Lang::Python => (
                "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt",
                format!(
                    ".venv/bin/componentize-py -d wit -w {} componentize app -o {}",
                    self.kind.id(),
                    self.wasm()
                ),
            ),
            Lang::Js => ("npm install", "npm run build".into()),
        };
        let (run, inspect) = match self.kind {
            Kind::Plugin => (
                format!("cubby call {} -w demo --input world", self.wasm()),
                "cubby kv get -w demo greeted/world",
            ),
            Kind::Command => (
                format!("cubby run {} -w demo", self.wasm()),
                "cubby kv get -w demo runs",
            ),
        };
        Steps {
            once,
            build,
            run,
            inspect,
        }
    }

    /// Every file of the project: its path in the project's folder and its
    /// contents.
    pub(crate) fn files(&self) -> Vec<(&'static str, String)> {
        let lib = match self.kind {
            Kind::Plugin => {
                "\n# A component that exports a handler is built as a library.\n\
                 [lib]\ncrate-type = [\"cdylib\"]\n"
            }
            Kind::Command => "",
        };
        let mut files = vec![("README.md", self.readme())];
        if self.lang == Lang::Rust {
            files.push((".cargo/config.toml", self.cargo_config()));
        }
        files.extend(
            TEMPLATES
                .iter()
                .filter(|t| t.langs.contains(&self.lang) && t.kind.is_none_or(|k| k == self.kind))
                .map(|t| (t.path, self.fill(t.text).replace("@LIB@", lib))),
        );
        files
    }

    /// The template with the project's name, world and SDK version filled in.
    fn fill(&self, template: &str) -> String {
        template
            .replace("@NAME@", &self.name)
            .replace("@WORLD@", self.kind.id())
            .replace("@SDK_VERSION@", env!("CARGO_PKG_VERSION"))
    }

    fn cargo_config(&self) -> String {
        let mut config = include_str!("../scaffold/rust/config.toml").to_owned();
        if let Some(sdk) = &self.sdk_path {
            // A JSON string is a TOML basic string (the same escapes).
            let path = serde_json::Value::from(sdk.to_string_lossy()).to_string();
            config.push_str(&format!(
                "\n# cubby-sdk from a local folder (`cubby new --sdk-path`) instead of\n\
                 # crates.io; remove these two lines to use the published crate.\n\
                 [patch.crates-io]\ncubby-sdk = {{ path = {path} }}\n"
            ));
        }
        config
    }

    fn readme(&self) -> String {
        let steps = self.steps();
        let (what, again) = match self.kind {
            Kind::Plugin => (
                "`cubby call` sends it a name; it answers `Hello, world! (greeting 1)` and counts \
                 the greetings of each name in its workspace, under the key `greeted/NAME` (an \
                 empty request greets `world`).",
                "Call it again and the count goes up; another `--input` counts another name, and \
                 another workspace (`-w`) counts on its own.",
            ),
            Kind::Command => (
                "`cubby run` runs it like a program: it prints `Hello! This is run 1 in this \
                 workspace.` and keeps the count in its workspace, under the key `runs`.",
                "Run it again and the count goes up; another workspace (`-w`) counts on its own.",
            ),
        };
        let (source, sdk) = match (self.lang, self.kind) {
            (Lang::Rust, kind) => (
                if kind == Kind::Plugin {
                    "src/lib.rs"
                } else {
                    "src/main.rs"
                },
                "The `cubby-sdk` crate (`cargo doc --open`) has bytes, strings, JSON, counters, \
                 expiry, namespaces, transactions and streams. `.cargo/config.toml` builds for \
                 `wasm32-wasip2` with a 64 KiB stack; raise it there if the plugin recurses \
                 deeply.",
            ),
            (Lang::Python, _) => (
                "app.py",
                "`cubby.py` is the storage helper (bytes, strings, JSON, counters, expiry, \
                 compare-and-swap, namespaces, streams; its docstrings describe every call). \
                 `wit/` is Cubby's interface, which componentize-py (pinned in \
                 `requirements.txt`) reads.",
            ),
            (Lang::Js, _) => (
                "app.js",
                "`cubby.js` is the storage helper (bytes, strings, JSON, counters, expiry, \
                 compare-and-swap, namespaces, streams; its comments describe every call). \
                 `wit/` is Cubby's interface, which componentize-js (pinned in `package.json`) \
                 reads.",
            ),
        };
        let commands = commented(&[
            (steps.build.as_str(), "build"),
            (
                steps.run.as_str(),
                match self.kind {
                    Kind::Plugin => "prints Hello, world! (greeting 1)",
                    Kind::Command => "prints Hello! This is run 1 in this workspace.",
                },
            ),
            (steps.inspect, "what it stored: 1"),
        ]);
        let once = commented(&[(
            steps.once,
            match self.lang {
                Lang::Rust => "the WebAssembly component target",
                Lang::Python => "componentize-py, in a virtual environment",
                Lang::Js => "componentize-js, into node_modules",
            },
        )]);
        let intro = format!(
            "A Cubby {} in {}, made by `cubby new`. {what}",
            self.kind.title(),
            self.lang.title()
        );
        let again = format!(
            "{again} Every value is stored in workspace `demo` of the default database \
             (`cubby.redb` in the per-user data folder; `--db PATH|URL` or `CUBBY_DB` picks \
             another, such as a PostgreSQL server)."
        );
        let next = [
            format!("Edit `{source}`. {sdk}"),
            "`cubby kv list -w demo` lists the workspace's keys; `cubby --help` has the rest."
                .to_owned(),
        ]
        .map(|item| wrap(&item, "- ", "  "))
        .join("\n");
        let once_note = match self.lang {
            Lang::Rust => {
                "cubby-sdk needs Rust 1.95 or later (`rustup update`); the target is for the \
                 toolchain this folder builds with."
            }
            Lang::Python => {
                "The virtual environment keeps componentize-py to this project; on Debian and \
                 Ubuntu, `venv` is the `python3-venv` package."
            }
            Lang::Js => {
                "It needs Node.js with npm; `package.json` pins componentize-js, and \
                 `npm run build` runs it."
            }
        };
        self.fill(include_str!("../scaffold/README.md"))
            .replace("@INTRO@", &wrap(&intro, "", ""))
            .replace("@ONCE@", &once)
            .replace("@ONCE_NOTE@", &wrap(once_note, "", ""))
            .replace("@COMMANDS@", &commands)
            .replace("@AGAIN@", &wrap(&again, "", ""))
            .replace("@NEXT@", &next)
    }
}

/// `text` in lines of at most 100 characters (a word longer than that has
/// a line of its own), the first line after `first`, the others after
/// `rest`.
fn wrap(text: &str, first: &str, rest: &str) -> String {
    const WIDTH: usize = 100;
    let mut out = String::from(first);
    let mut line_len = first.len();
    let mut line_empty = true;
    for word in text.split_whitespace() {
        if !line_empty && line_len + 1 + word.len() > WIDTH {
            out.push('\n');
            out.push_str(rest);
            line_len = rest.len();
            line_empty = true;
        }
        if !line_empty {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
        line_empty = false;
    }
    out
}

/// Commands with their comments aligned after them.
fn commented(lines: &[(&str, &str)]) -> String {
    let width = lines.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    lines
        .iter()
        .map(|(command, comment)| format!("{command:width$}   # {comment}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The absolute path of `dir`, after checking that it holds cubby-sdk.
fn sdk_crate(dir: &Path) -> Result<PathBuf> {
    // A folder without a readable Cargo.toml is not the SDK either.
    let text = fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    if !text.lines().any(|l| l.trim() == r#"name = "cubby-sdk""#) {
        bail!(
            "--sdk-path: {} is not the cubby-sdk crate (give the folder of its Cargo.toml, \
             guest-sdk in a clone of Cubby)",
            dir.display()
        );
    }
    let dir = dir
        .canonicalize()
        .with_context(|| format!("--sdk-path: cannot resolve {}", dir.display()))?;
    if dir.to_str().is_none() {
        bail!("--sdk-path: {} is not valid UTF-8", dir.display());
    }
    Ok(dir)
}

/// Creates `dir` with the project's files, all or nothing: they are written
/// into a new folder beside it, which is then renamed to `dir`. A `dir` that
/// exists already is an error, and nothing is written.
pub(crate) fn create(dir: &Path, project: &Project) -> Result<Vec<&'static str>> {
    if dir.symlink_metadata().is_ok() {
        bail!(
            "{} already exists: cubby new makes a new folder, so pick another path (or remove \
             that one)",
            dir.display()
        );
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".cubby-new-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a folder in {}", parent.display()))?;
    let files = project.files();
    for (path, contents) in &files {
        let path = staging.path().join(path);
        if let Some(folder) = path.parent() {
            fs::create_dir_all(folder)
                .with_context(|| format!("cannot create {}", folder.display()))?;
        }
        fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    }
    // Dropping `staging` on an error above removes it; after the rename
    // there is nothing left to remove.
    fs::rename(staging.path(), dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = staging.keep();
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

impl Project {
    /// Its name, language and kind, for a message.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} (a {} {})",
            self.name,
            self.lang.title(),
            self.kind.title()
        )
    }

    /// Its name, language and kind, for `--json`.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "lang": self.lang.id(),
            "kind": self.kind.id(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_that_every_language_takes_pass() {
        for name in ["hello", "hello-world", "my_plugin2", "a", "greeter-v2"] {
            check_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        for (name, why) in [
            ("", "use lowercase"),
            ("Hello", "use lowercase"),
            ("2fast", "starting with a letter"),
            ("hello world", "use lowercase"),
            ("héllo", "use lowercase"),
            ("-x", "use lowercase"),
            ("fn", "Rust keyword"),
            ("test", "Rust's own crates"),
            ("build", "Cargo keeps it"),
            ("node_modules", "npm"),
            ("con", "Windows"),
            ("cubby-sdk", "the SDK's own name"),
        ] {
            let e = check_name(name).expect_err(name).to_string();
            assert!(e.contains(why), "{name:?}: {e}");
        }
        assert!(check_name(&"a".repeat(MAX_NAME)).is_ok());
        assert!(check_name(&"a".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn a_rust_plugin_is_a_library_and_a_command_a_binary() {
        let plugin = Project::new("hello-world", Lang::Rust, Kind::Plugin, None).unwrap();
        let files = plugin.files();
        let manifest = &files.iter().find(|(p, _)| *p == "Cargo.toml").unwrap().1;
        assert!(manifest.contains("name = \"hello-world\""));
        assert!(manifest.contains("crate-type = [\"cdylib\"]"));
        assert!(manifest.contains(&format!("cubby-sdk = \"{}\"", env!("CARGO_PKG_VERSION"))));
        assert!(files.iter().any(|(p, _)| *p == "src/lib.rs"));
        assert!(!files.iter().any(|(p, _)| p.starts_with("wit/")));
        assert!(plugin.steps().run.contains("release/hello_world.wasm"));

        let command = Project::new("hello-world", Lang::Rust, Kind::Command, None).unwrap();
        let files = command.files();
        let manifest = &files.iter().find(|(p, _)| *p == "Cargo.toml").unwrap().1;
        assert!(!manifest.contains("[lib]"));
        assert!(files.iter().any(|(p, _)| *p == "src/main.rs"));
        assert!(command.steps().run.contains("release/hello-world.wasm"));
    }

    #[test]
    fn no_placeholder_is_left_in_any_file() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for kind in [Kind::Plugin, Kind::Command] {
                let project = Project::new("hello", lang, kind, None).unwrap();
                for (path, contents) in project.files() {
                    assert!(!has_placeholder(&contents), "{path}");
                }
            }
        }
    }

    /// `@WORD@` in upper case, as the templates' placeholders are written.
    fn has_placeholder(text: &str) -> bool {
        let parts: Vec<&str> = text.split('@').collect();
        parts.len() > 2
            && parts[1..parts.len() - 1]
                .iter()
                .any(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    }

    #[test]
    fn text_is_wrapped_at_100_characters() {
        let text = "word ".repeat(60);
        let wrapped = wrap(&text, "- ", "  ");
        assert!(wrapped.starts_with("- word"));
        for line in wrapped.lines() {
            assert!(line.len() <= 100, "{line:?}");
        }
        assert!(wrapped.lines().skip(1).all(|l| l.starts_with("  word")));
        assert_eq!(
            wrapped.split_whitespace().filter(|w| *w == "word").count(),
            60
        );
    }

    #[test]
    fn the_placeholder_check_finds_one() {
        assert!(has_placeholder("name = \"@NAME@\""));
        assert!(!has_placeholder(
            "import 'cubby:storage/storage@0.2.0'; // @param x"
        ));
    }

    #[test]
    fn sdk_path_must_hold_the_sdk_and_is_for_rust_only() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk");
        let project = Project::new("hello", Lang::Rust, Kind::Plugin, Some(&sdk)).unwrap();
        let config = project.cargo_config();
        assert!(config.contains("[patch.crates-io]"), "{config}");
        assert!(config.contains("guest-sdk"), "{config}");

        let e = Project::new("hello", Lang::Python, Kind::Plugin, Some(&sdk)).unwrap_err();
        assert!(e.to_string().contains("for Rust plugins"), "{e}");
        let not_sdk = Path::new(env!("CARGO_MANIFEST_DIR"));
        let e = Project::new("hello", Lang::Rust, Kind::Plugin, Some(not_sdk)).unwrap_err();
        assert!(e.to_string().contains("is not the cubby-sdk crate"), "{e}");
    }
}
