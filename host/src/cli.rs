//! The `cubby` command-line tool: argument parsing and output only; every
//! action is a library call.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};

use crate::{
    Durability, Limits, Namespace, Output, PostgresOptions, Quota, Runtime, Storage,
    StorageOptions, WriteOptions,
};

const NO_HOME: &str =
    "cannot find the per-user data folder (is HOME set?); pass --db PATH or --in-memory";
const DEFAULT_DB_HELP: &str = "The database: a redb file (one process at a time), or a \
    PostgreSQL URL postgres://USER[:PASSWORD]@HOST[:PORT]/DB that any number of processes share \
    [default: cubby.redb in the per-user data folder: $XDG_DATA_HOME/cubby or ~/.local/share/cubby \
    on Linux, ~/Library/Application Support/cubby on macOS, %APPDATA%\\cubby\\data on Windows]";

/// Cubby: run WebAssembly plugins with durable, workspace-scoped key-value storage.
#[derive(Debug, Parser)]
#[command(name = "cubby", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Database options")]
struct DbArgs {
    #[arg(long, global = true, env = "CUBBY_DB", hide_env_values = true, help = DEFAULT_DB_HELP,
          value_name = "PATH|URL")]
    db: Option<String>,
    /// Use a fresh in-memory database that is gone when the command ends.
    #[arg(long, global = true, conflicts_with = "db")]
    in_memory: bool,
    /// Do not flush every commit to disk: faster, but a crash can lose about
    /// the last second of writes (never corrupting the database). With
    /// PostgreSQL this sets synchronous_commit=off for Cubby's sessions.
    #[arg(long, global = true)]
    relaxed: bool,
    /// Skip checking every page's checksum when opening a redb file (faster
    /// for large files; damage is then not detected up front).
    #[arg(long, global = true)]
    no_verify: bool,
    /// PostgreSQL: most connections this process opens.
    #[arg(long, global = true, value_name = "N",
          default_value_t = PostgresOptions::default().pool_size)]
    pool_size: usize,
    /// PostgreSQL: longest time one statement may run, and longest wait for a
    /// free connection (e.g. 5s).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration,
          default_value_t = PostgresOptions::default().statement_timeout.into())]
    statement_timeout: humantime::Duration,
    /// Longest key, in bytes.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = Limits::default().max_key_bytes)]
    max_key_bytes: usize,
    /// Largest value (e.g. 1MiB, 4096).
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size,
          default_value_t = ByteSize::b(Limits::default().max_value_bytes as u64))]
    max_value_size: ByteSize,
    /// Largest page a plugin may ask for when listing keys.
    #[arg(long, global = true, value_name = "N", default_value_t = Limits::default().max_page_size)]
    max_page_size: u32,
    /// Most operations in one batch or transaction.
    #[arg(long, global = true, value_name = "N", default_value_t = Limits::default().max_batch_ops)]
    max_batch: u32,
    /// Default quota: most bytes (keys plus values) one workspace may hold.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size,
          default_value_t = ByteSize::b(Limits::default().max_bytes_per_workspace))]
    quota_bytes: ByteSize,
    /// Default quota: most keys one workspace may hold.
    #[arg(long, global = true, value_name = "N", default_value_t = Limits::default().max_keys_per_workspace)]
    quota_keys: u64,
    /// The quota of one workspace, replacing the defaults for it:
    /// WORKSPACE=SIZE or WORKSPACE=SIZE,KEYS (e.g. team-a=10MiB,5000).
    /// Repeat for more workspaces.
    #[arg(long = "quota", global = true, value_name = "WORKSPACE=SIZE[,KEYS]", value_parser = parse_quota)]
    quotas: Vec<(String, QuotaArg)>,
}

/// A `--quota` value: bytes, and keys if given.
#[derive(Debug, Clone, Copy)]
struct QuotaArg {
    bytes: u64,
    keys: Option<u64>,
}

fn parse_quota(arg: &str) -> Result<(String, QuotaArg), String> {
    let (ws, limits) = arg
        .split_once('=')
        .ok_or("expected WORKSPACE=SIZE or WORKSPACE=SIZE,KEYS")?;
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
    Ok((ws.to_owned(), QuotaArg { bytes, keys }))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command-style plugin (one with `fn main`, exporting wasi:cli/run).
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
    /// List the workspaces that hold data, with their usage (tab-separated:
    /// workspace, keys, bytes of keys and values).
    Workspaces,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Plugin options")]
struct PluginArgs {
    /// The workspace the plugin's storage is bound to.
    #[arg(long, short, value_name = "ID")]
    workspace: String,
    /// Longest time the plugin may run (e.g. 500ms, 10s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          default_value_t = Runtime::DEFAULT_TIMEOUT.into())]
    timeout: humantime::Duration,
    /// Most linear memory the plugin may use (e.g. 64MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size,
          default_value_t = ByteSize::b(Runtime::DEFAULT_MAX_MEMORY_BYTES as u64))]
    max_memory: ByteSize,
    /// Folder for compiled plugins [default: the per-user cache folder, e.g. ~/.cache/cubby].
    #[arg(long, value_name = "DIR", env = "CUBBY_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the plugin every time instead of caching it.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

/// Which keys a `kv` command works on.
#[derive(Debug, Args)]
struct KvTarget {
    /// The workspace.
    #[arg(long, short, value_name = "ID")]
    workspace: String,
    /// The namespace inside the workspace (default: the default space).
    #[arg(long, short, value_name = "NAME", default_value = "")]
    namespace: String,
}

impl KvTarget {
    fn open(&self, storage: &Storage) -> Result<Namespace> {
        Ok(storage
            .workspace(&self.workspace)?
            .namespace(&self.namespace)?)
    }

    fn describe(&self) -> String {
        match self.namespace.as_str() {
            "" => format!("workspace {:?}", self.workspace),
            ns => format!("namespace {ns:?} of workspace {:?}", self.workspace),
        }
    }
}

#[derive(Debug, Subcommand)]
enum KvCommand {
    /// Print the value of a key (exits with 1 if it is missing or expired).
    Get {
        #[command(flatten)]
        target: KvTarget,
        /// The key.
        key: String,
    },
    /// Set a key to a value.
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
    },
    /// Show a workspace's usage against its quota, per namespace.
    Usage {
        /// The workspace.
        #[arg(long, short, value_name = "ID")]
        workspace: String,
    },
    /// Delete every key of a namespace (or of the default space).
    Clear {
        #[command(flatten)]
        target: KvTarget,
    },
    /// Remove every expired entry now (the host also does it in the
    /// background); prints how many.
    Prune,
}

/// Runs the tool with the process's arguments; returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CUBBY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the
/// message already holds (some libraries repeat their source in their own
/// message).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn run(cli: Cli) -> Result<ExitCode> {
    let storage = open_storage(&cli.db)?;
    match cli.command {
        Command::Run { plugin, opts, args } => {
            let workspace = storage.workspace(&opts.workspace)?;
            let runtime = runtime(&opts, true)?;
            let name = plugin
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "plugin".into());
            let argv: Vec<String> = std::iter::once(name).chain(args).collect();
            let out = block_on(async {
                let plugin = runtime.load_file(&plugin).await?;
                anyhow::Ok(plugin.run(&workspace, &argv).await?)
            })?;
            Ok(ExitCode::from(u8::try_from(out.exit_code).unwrap_or(1)))
        }
        Command::Call {
            plugin,
            opts,
            input,
        } => {
            let request = read_arg(&input)?;
            let workspace = storage.workspace(&opts.workspace)?;
            let runtime = runtime(&opts, false)?;
            let response = block_on(async {
                let plugin = runtime.load_file(&plugin).await?;
                anyhow::Ok(plugin.call(&workspace, &request).await?)
            })?;
            print_bytes(&response)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Kv(kv) => kv_command(&storage, kv),
        Command::Workspaces => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "workspace\tkeys\tbytes")?;
            for (id, usage) in storage.workspaces()? {
                writeln!(out, "{id}\t{}\t{}", usage.keys, usage.bytes)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn kv_command(storage: &Storage, kv: KvCommand) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match kv {
        KvCommand::Get { target, key } => match target.open(storage)?.get(&key)? {
            Some(value) => print_bytes(&value)?,
            None => bail!("key {key:?} not found in {}", target.describe()),
        },
        KvCommand::Set {
            target,
            key,
            value,
            ttl,
        } => {
            let value = read_arg(&value)?;
            let options = WriteOptions {
                ttl: ttl.map(Into::into),
                ..WriteOptions::default()
            };
            target.open(storage)?.set_with(&key, value, options)?;
        }
        KvCommand::Delete { target, key } => {
            if !target.open(storage)?.delete(&key)? {
                bail!("key {key:?} not found in {}", target.describe());
            }
        }
        KvCommand::List {
            target,
            prefix,
            limit,
        } => {
            let ns = target.open(storage)?;
            for key in ns.keys(prefix.as_deref()).take(limit.unwrap_or(usize::MAX)) {
                writeln!(out, "{}", printable(&key?))?;
            }
        }
        KvCommand::Usage { workspace } => {
            let ws = storage.workspace(&workspace)?;
            let (usage, quota) = (ws.usage()?, ws.quota());
            writeln!(out, "namespace\tkeys\tbytes")?;
            let default = ws.default_space().usage()?;
            if default.keys > 0 {
                writeln!(out, "(default)\t{}\t{}", default.keys, default.bytes)?;
            }
            let mut cursor = None;
            loop {
                let page = ws.namespaces(cursor.as_deref(), None)?;
                for name in page.keys {
                    let u = ws.namespace(&name)?.usage()?;
                    writeln!(out, "{}\t{}\t{}", printable(&name), u.keys, u.bytes)?;
                }
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            writeln!(out, "(total)\t{}\t{}", usage.keys, usage.bytes)?;
            writeln!(out, "(quota)\t{}\t{}", quota.max_keys, quota.max_bytes)?;
        }
        KvCommand::Clear { target } => {
            let removed = target.open(storage)?.clear_all()?;
            writeln!(out, "removed {removed} keys from {}", target.describe())?;
        }
        KvCommand::Prune => {
            let report = storage.prune()?;
            writeln!(out, "removed {} expired entries", report.removed)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn open_storage(args: &DbArgs) -> Result<Storage> {
    let mut options = StorageOptions::default();
    options.limits.max_key_bytes = args.max_key_bytes;
    options.limits.max_value_bytes =
        usize::try_from(args.max_value_size.as_u64()).context("--max-value-size is too large")?;
    options.limits.max_page_size = args.max_page_size;
    options.limits.max_batch_ops = args.max_batch;
    options.limits.max_bytes_per_workspace = args.quota_bytes.as_u64();
    options.limits.max_keys_per_workspace = args.quota_keys;
    for (ws, q) in &args.quotas {
        let quota = Quota {
            max_bytes: q.bytes,
            max_keys: q.keys.unwrap_or(args.quota_keys),
        };
        options.quotas.insert(ws.clone(), quota);
    }
    options.verify_on_open = !args.no_verify;
    options.postgres = PostgresOptions::default()
        .pool_size(args.pool_size)
        .statement_timeout(args.statement_timeout.into());
    if args.relaxed {
        options.durability = Durability::Relaxed;
    }
    if args.in_memory {
        return Ok(Storage::in_memory(options)?);
    }
    match args.db.as_deref() {
        Some(url) if is_postgres_url(url) => Ok(Storage::connect(url, options)?),
        Some(path) => Ok(Storage::open(path, options)?),
        None => Ok(Storage::open(
            Storage::default_path().context(NO_HOME)?,
            options,
        )?),
    }
}

/// Whether `--db` names a PostgreSQL database rather than a redb file.
fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

fn runtime(opts: &PluginArgs, inherit_stdin: bool) -> Result<Runtime> {
    let mut builder = Runtime::builder()
        .timeout(opts.timeout.into())
        .max_memory_bytes(
            usize::try_from(opts.max_memory.as_u64()).context("--max-memory is too large")?,
        )
        .stdout(Output::Inherit)
        .stderr(Output::Inherit)
        .inherit_stdin(inherit_stdin);
    if !opts.no_cache {
        let dir = match &opts.cache_dir {
            // wasmtime wants an absolute path; a relative one is meant
            // relative to the working directory.
            Some(dir) => std::path::absolute(dir)
                .with_context(|| format!("cannot use {} as the cache folder", dir.display()))?,
            None => Runtime::default_cache_dir().context(NO_HOME)?,
        };
        builder = builder.cache_dir(dir);
    }
    Ok(builder.build()?)
}

fn block_on<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

/// `TEXT`, `@FILE` or `@-` (stdin).
fn read_arg(arg: &str) -> Result<Vec<u8>> {
    match arg.strip_prefix('@') {
        Some("-") => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .context("cannot read stdin")?;
            Ok(buf)
        }
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read {path}")),
        None => Ok(arg.as_bytes().to_vec()),
    }
}

/// Writes bytes as they are, with a newline after them on a terminal.
fn print_bytes(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    if out.is_terminal() && !bytes.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// A key as one line: keys with control characters are shown escaped, in quotes.
fn printable(key: &str) -> String {
    if key.chars().any(char::is_control) {
        format!("{key:?}")
    } else {
        key.to_owned()
    }
}

/// A duration such as `500ms`, `30s`, `10m` or `1day`, with an error that
/// says so (humantime's own only names the position of the problem).
fn parse_duration(s: &str) -> Result<humantime::Duration, String> {
    s.parse::<humantime::Duration>()
        .map_err(|e| format!("{e} (try e.g. 500ms, 30s, 10m or 1day)"))
}

fn parse_size(s: &str) -> Result<ByteSize, String> {
    s.parse::<ByteSize>()
        .map_err(|e| format!("{e} (try a number of bytes or e.g. 64MiB)"))
}
