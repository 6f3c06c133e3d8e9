//! What the user types: the command line, parsed by clap.

use std::path::PathBuf;

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};
use cubby_host::Runtime;
use cubby_host::options::{Limits, PostgresOptions};

use crate::scaffold::{Kind, Lang};

pub(crate) const NO_HOME: &str =
    "cannot find the per-user data folder (is HOME set?); pass --db PATH or --in-memory";
const DEFAULT_DB_HELP: &str = "The database: a redb file (one process at a time), or a \
    PostgreSQL URL postgres://USER[:PASSWORD]@HOST[:PORT]/DB that any number of processes share \
    [default: cubby.redb in the per-user data folder: $XDG_DATA_HOME/cubby or ~/.local/share/cubby \
    on Linux, ~/Library/Application Support/cubby on macOS, %APPDATA%\\cubby\\data on Windows]";

/// Cubby: run WebAssembly plugins with durable, workspace-scoped key-value storage.
#[derive(Debug, Parser)]
#[command(name = "cubby", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Print what the command prints as one JSON document (see the README,
    /// "Scripting with --json", for each command's shape).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Database options")]
pub(crate) struct DbArgs {
    #[arg(long, global = true, env = "CUBBY_DB", hide_env_values = true, help = DEFAULT_DB_HELP,
          value_name = "PATH|URL")]
    pub(crate) db: Option<String>,
    /// Use a fresh in-memory database that is gone when the command ends.
    #[arg(long, global = true, conflicts_with = "db")]
    pub(crate) in_memory: bool,
    /// Do not flush every commit to disk: faster, but a crash can lose about
    /// the last second of writes (never corrupting the database). With
    /// PostgreSQL this sets synchronous_commit=off for Cubby's sessions.
    #[arg(long, global = true)]
    pub(crate) relaxed: bool,
    /// Skip checking every page's checksum when opening a redb file (faster
    /// for large files; damage is then not detected up front).
    #[arg(long, global = true)]
    pub(crate) no_verify: bool,
    /// PostgreSQL: most connections this process opens.
    #[arg(long, global = true, value_name = "N",
          default_value_t = PostgresOptions::default().pool_size)]
    pub(crate) pool_size: usize,
    /// PostgreSQL: longest time one statement may run, and longest wait for a
    /// free connection (e.g. 5s).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration,
          default_value_t = PostgresOptions::default().statement_timeout.into())]
    pub(crate) statement_timeout: humantime::Duration,
    /// Longest key, in bytes.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = Limits::default().max_key_bytes)]
    pub(crate) max_key_bytes: usize,
    /// Largest value (e.g. 1MiB, 4096).
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size,
          default_value_t = ByteSize::b(Limits::default().max_value_bytes as u64))]
    pub(crate) max_value_size: ByteSize,
    /// Largest page a plugin may ask for when listing keys.
    #[arg(long, global = true, value_name = "N", default_value_t = Limits::default().max_page_size)]
    pub(crate) max_page_size: u32,
    /// Most operations in one batch or transaction.
    #[arg(long, global = true, value_name = "N", default_value_t = Limits::default().max_batch_ops)]
    pub(crate) max_batch: u32,
    /// Default quota: most bytes (keys plus values) one workspace may hold.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size,
          default_value_t = ByteSize::b(Limits::default().max_bytes_per_workspace))]
    pub(crate) quota_bytes: ByteSize,
    /// Default quota: most keys one workspace may hold.
    #[arg(long, global = true, value_name = "N", default_value_t = Limits::default().max_keys_per_workspace)]
    pub(crate) quota_keys: u64,
    /// The quota of one workspace, replacing the defaults for it:
    /// WORKSPACE=SIZE or WORKSPACE=SIZE,KEYS (e.g. team-a=10MiB,5000).
    /// Repeat for more workspaces.
    #[arg(long = "quota", global = true, value_name = "WORKSPACE=SIZE[,KEYS]", value_parser = parse_quota)]
    pub(crate) quotas: Vec<(String, QuotaArg)>,
}

/// A `--quota` value: bytes, and keys if given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuotaArg {
    pub(crate) bytes: u64,
    pub(crate) keys: Option<u64>,
}

fn parse_quota(arg: &str) -> Result<(String, QuotaArg), String> {
    let (ws, limits) = arg
        .split_once('=')
        .ok_or("expected WORKSPACE=SIZE or WORKSPACE=SIZE,KEYS")?;
    Ok((ws.to_owned(), parse_limits(limits)?))
}

/// `SIZE` or `SIZE,KEYS`.
fn parse_limits(limits: &str) -> Result<QuotaArg, String> {
    let (bytes, keys) = match limits.split_once(',') {
        Some((bytes, keys)) => (bytes, Some(keys)),
        None => (limits, None),
    };
    let bytes = parse_size(bytes)?.as_u64();
    let keys = keys
        .map(|k| {
            k.trim()
                .parse::<u64>()
                .map_err(|e| format!("bad key count {k:?}: {e}"))
        })
        .transpose()?;
    Ok(QuotaArg { bytes, keys })
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Make a new plugin project (Rust, Python or JavaScript) that builds
    /// and runs as it stands.
    ///
    /// A new folder with the plugin's source, its build settings and a
    /// README of the three commands that build it, run or call it, and show
    /// what it stored. Everything comes from this binary; the language's own
    /// tools fetch their packages when the project is built.
    New {
        /// The folder to create (it must not exist); its last part is the
        /// plugin's name unless --name gives one.
        path: PathBuf,
        /// The plugin's name: lowercase ASCII letters, digits, - and _,
        /// starting with a letter.
        #[arg(long)]
        name: Option<String>,
        /// The language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// What kind of plugin.
        #[arg(long, value_enum, default_value = "plugin")]
        kind: Kind,
        /// Rust: take cubby-sdk from this folder (e.g. guest-sdk in a clone
        /// of Cubby) instead of crates.io, through a [patch] in the
        /// project's .cargo/config.toml.
        #[arg(long, value_name = "DIR")]
        sdk_path: Option<PathBuf>,
    },
    /// Run a command-style plugin (one with `fn main`, exporting wasi:cli/run;
    /// it may import cubby:storage and wasi:keyvalue).
    Run {
        /// The plugin: a component built for wasm32-wasip2.
        plugin: PathBuf,
        #[command(flatten)]
        opts: PluginArgs,
        /// Arguments passed to the plugin (after `--`).
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Call a request/response plugin (exporting cubby:storage/handler) and
    /// print its response.
    Call {
        /// The plugin: a component built for wasm32-wasip2.
        plugin: PathBuf,
        #[command(flatten)]
        opts: PluginArgs,
        /// The request: text, or @FILE to read it from a file, or @- for stdin.
        #[arg(long, short, value_name = "TEXT|@FILE", default_value = "")]
        input: String,
    },
    /// Inspect and edit a workspace's keys.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Manage whole workspaces: list, export, import, delete.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Set, show or remove a workspace's quota, stored in the database so
    /// every process on it enforces it.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// The same as `cubby workspace list`.
    #[command(hide = true)]
    Workspaces {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Print a shell completion script: e.g. `cubby completions bash >
    /// ~/.local/share/bash-completion/completions/cubby`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// How `workspace list` sorts.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum SortBy {
    /// By workspace id.
    Name,
    /// Largest (bytes) first.
    Size,
    /// Most keys first.
    Keys,
    /// Highest share of the quota first.
    Used,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Sort by name, size (bytes, largest first), keys or used (share of
    /// the quota).
    #[arg(long, value_enum, default_value = "name")]
    pub(crate) sort: SortBy,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WorkspaceCommand {
    /// List the workspaces that hold data (or have a stored quota): keys,
    /// bytes, quota and the share of it used (tab-separated).
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Write a workspace (or some of its namespaces) to a portable,
    /// checksummed export file, from one consistent snapshot.
    Export {
        /// The workspace.
        #[arg(long, short, value_name = "ID")]
        workspace: String,
        /// Only this namespace ("" is the default space); repeatable.
        #[arg(long = "namespace", short, value_name = "NAME")]
        namespaces: Vec<String>,
        /// The file to write ("-": standard output, the default). A file is
        /// written under a temporary name and renamed when complete.
        #[arg(long, short, value_name = "FILE", default_value = "-")]
        output: PathBuf,
    },
    /// Read an export file into a workspace, all-or-nothing.
    Import {
        /// The workspace (it need not be the one exported).
        #[arg(long, short, value_name = "ID")]
        workspace: String,
        /// The export file ("-": standard input).
        file: PathBuf,
        /// Overwrite the keys the file holds, keep the others (the default).
        #[arg(long, conflicts_with = "replace")]
        merge: bool,
        /// Make the workspace hold exactly what the file holds.
        #[arg(long)]
        replace: bool,
    },
    /// Delete a workspace: every key of every namespace, its usage and its
    /// stored quota.
    Delete {
        /// The workspace.
        #[arg(long, short, value_name = "ID")]
        workspace: String,
        /// Do not ask for confirmation (required when stdin is not a
        /// terminal, as in scripts).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum QuotaCommand {
    /// Store a workspace's quota: SIZE (e.g. 10MiB) or SIZE,KEYS (e.g.
    /// 10MiB,5000; without KEYS, the default key quota). Data already
    /// stored is kept even over a lowered quota; only growth is refused.
    Set {
        /// The workspace.
        #[arg(long, short, value_name = "ID")]
        workspace: String,
        /// SIZE or SIZE,KEYS.
        #[arg(value_name = "SIZE[,KEYS]", value_parser = parse_limits)]
        quota: QuotaArg,
    },
    /// Show a workspace's quota, where it comes from (stored, this command
    /// line's --quota, or the default) and its usage.
    Get {
        /// The workspace.
        #[arg(long, short, value_name = "ID")]
        workspace: String,
    },
    /// Remove a workspace's stored quota (back to the default).
    Unset {
        /// The workspace.
        #[arg(long, short, value_name = "ID")]
        workspace: String,
    },
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Plugin options")]
pub(crate) struct PluginArgs {
    /// The workspace the plugin's storage is bound to.
    #[arg(long, short, value_name = "ID")]
    pub(crate) workspace: String,
    /// Longest time the plugin may run (e.g. 500ms, 10s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          default_value_t = Runtime::DEFAULT_TIMEOUT.into())]
    pub(crate) timeout: humantime::Duration,
    /// Most linear memory the plugin may use (e.g. 64MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size,
          default_value_t = ByteSize::b(Runtime::DEFAULT_MAX_MEMORY_BYTES as u64))]
    pub(crate) max_memory: ByteSize,
    /// Folder for compiled plugins [default: the per-user cache folder, e.g. ~/.cache/cubby].
    #[arg(long, value_name = "DIR", env = "CUBBY_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Compile the plugin every time instead of caching it.
    #[arg(long, conflicts_with = "cache_dir")]
    pub(crate) no_cache: bool,
    /// Pass an environment variable to the plugin: KEY=VALUE, or KEY for
    /// the host's own value. Repeatable; nothing else of the host's
    /// environment is passed.
    #[arg(long = "env", short = 'e', value_name = "KEY[=VALUE]", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,
    /// Let wasi:keyvalue plugins open only this bucket ("" is the default
    /// space); repeatable. Default: every bucket of the workspace.
    #[arg(long = "bucket", value_name = "NAME")]
    pub(crate) buckets: Option<Vec<String>>,
}

fn parse_env(arg: &str) -> Result<(String, String), String> {
    let (key, value) = match arg.split_once('=') {
        Some((key, value)) => (key, value.to_owned()),
        None => (
            arg,
            std::env::var(arg).map_err(|_| {
                format!("{arg} is not set in this environment (use KEY=VALUE to give a value)")
            })?,
        ),
    };
    if key.is_empty() {
        return Err("expected KEY=VALUE with a non-empty KEY".into());
    }
    Ok((key.to_owned(), value))
}

/// Which keys a `kv` command works on.
#[derive(Debug, Args)]
pub(crate) struct KvTarget {
    /// The workspace.
    #[arg(long, short, value_name = "ID")]
    pub(crate) workspace: String,
    /// The namespace inside the workspace (default: the default space).
    #[arg(long, short, value_name = "NAME", default_value = "")]
    pub(crate) namespace: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KvCommand {
    /// Print the value of a key (exits with 1 if it is missing or expired).
    /// A value of any size streams to stdout, a chunk in memory at a time,
    /// with a progress bar on a terminal for a large one.
    Get {
        #[command(flatten)]
        target: KvTarget,
        /// The key.
        key: String,
        /// With --json: give the value in base64 even if it is UTF-8 text
        /// (a value that is not is always given in base64).
        #[arg(long)]
        base64: bool,
    },
    /// Set a key to a value. From a file or stdin, a value larger than the
    /// value limit is written as a stream (up to 256 MiB by default), a
    /// chunk in memory at a time, with a progress bar on a terminal.
    Set {
        #[command(flatten)]
        target: KvTarget,
        /// The key.
        key: String,
        /// The value: text, or @FILE to read it from a file, or @- for stdin.
        value: String,
        /// Expire the key after this long (e.g. 30s, 10m, 1day).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<humantime::Duration>,
        /// Write the value as a stream even if it is small.
        #[arg(long)]
        stream: bool,
        /// Store the value compressed (zstd); written as a stream.
        #[arg(long)]
        compress: bool,
    },
    /// Show a value's size, what it takes in storage, whether it is
    /// streamed or compressed, its version and expiry, without reading it.
    Info {
        #[command(flatten)]
        target: KvTarget,
        /// The key.
        key: String,
    },
    /// Delete a key (exits with 1 if it was missing).
    Delete {
        #[command(flatten)]
        target: KvTarget,
        /// The key.
        key: String,
    },
    /// List keys, one per line, in byte order.
    List {
        #[command(flatten)]
        target: KvTarget,
        /// Only keys that start with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Print at most this many keys.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// With each key its value's size, what it takes stored (as usage
        /// and quotas count it), whether it is streamed and compressed, and
        /// its version (tab-separated, after a header line).
        #[arg(long, short)]
        long: bool,
    },
    /// Show a workspace's usage against its quota, per namespace.
    Usage {
        /// The workspace.
        #[arg(long, short, value_name = "ID")]
        workspace: String,
    },
    /// Delete every key of one namespace, or of the default space (to delete
    /// a whole workspace: cubby workspace delete).
    Clear {
        #[command(flatten)]
        target: KvTarget,
    },
    /// Remove every expired entry now (the host also does it in the
    /// background); prints how many.
    Prune,
}

/// A duration such as `500ms`, `30s`, `10m` or `1day`, with an error that
/// says so (humantime's own only names the position of the problem).
pub(crate) fn parse_duration(s: &str) -> Result<humantime::Duration, String> {
    s.parse::<humantime::Duration>()
        .map_err(|e| format!("{e} (try e.g. 500ms, 30s, 10m or 1day)"))
}

pub(crate) fn parse_size(s: &str) -> Result<ByteSize, String> {
    s.parse::<ByteSize>()
        .map_err(|e| format!("{e} (try a number of bytes or e.g. 64MiB)"))
}
