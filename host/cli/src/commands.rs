//! Carrying out a command: every action is a call of the cubby-host library.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cubby_host::ops::{StreamOptions, ValueInfo, WriteOptions};
use cubby_host::options::{Durability, Output, Quota};
use cubby_host::{Namespace, Runtime, Storage, StorageError, StorageOptions};
use serde_json::json;

use crate::args::{
    Cli, Command, DbArgs, KvCommand, KvTarget, NO_HOME, PluginArgs, WorkspaceCommand,
};
use crate::output::{self, keys, print_bytes, print_json, printable, quota_json};
use crate::scaffold::{self, Kind, Lang, Project};
use crate::{defaults, operate};

impl KvTarget {
    fn open(&self, storage: &Storage) -> Result<Namespace> {
        Ok(storage
            .workspace(&self.workspace)?
            .namespace(&self.namespace)?)
    }

    fn describe(&self) -> String {
        match self.namespace.as_str() {
            "" => format!("the default space of workspace {:?}", self.workspace),
            ns => format!("namespace {ns:?} of workspace {:?}", self.workspace),
        }
    }
}

/// Runs a parsed command line; returns the exit code.
pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    let Cli { db, json, command } = cli;
    // Every command but `completions` and `new` works on the database.
    let storage = || open_storage(&db);
    match command {
        Command::New {
            path,
            name,
            lang,
            kind,
            sdk_path,
        } => new_project(&path, name, lang, kind, sdk_path.as_deref(), json),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "cubby", &mut script);
            print_bytes(&script)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { plugin, opts, args } => {
            let workspace = storage()?.workspace(&opts.workspace)?;
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
            let request = read_whole(&input)?;
            let workspace = storage()?.workspace(&opts.workspace)?;
            let runtime = runtime(&opts, false)?;
            let response = block_on(async {
                let plugin = runtime.load_file(&plugin).await?;
                anyhow::Ok(plugin.call(&workspace, &request).await?)
            })?;
            print_bytes(&response)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Kv(kv) => kv_command(&storage()?, kv, json),
        Command::Workspace(WorkspaceCommand::Delete { workspace, yes }) => {
            let storage = storage()?;
            let ws = storage.workspace(&workspace)?;
            if !yes {
                confirm(&format!(
                    "delete workspace {workspace:?} (every key of every namespace, and its \
                     stored quota) from {}?",
                    storage.location()
                ))?;
            }
            let removed = ws.clear_all()?;
            storage.store_quota(&workspace, None)?;
            if json {
                print_json(&json!({ "workspace": workspace, "removed": removed }))?;
            } else {
                println!(
                    "removed workspace {workspace:?}: {} in all its namespaces",
                    keys(removed)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Workspace(WorkspaceCommand::List { list }) | Command::Workspaces { list } => {
            operate::list(&storage()?, list.sort, json)
        }
        Command::Workspace(WorkspaceCommand::Export {
            workspace,
            namespaces,
            output,
        }) => operate::export(&storage()?, &workspace, namespaces, &output, json),
        Command::Workspace(WorkspaceCommand::Import {
            workspace,
            file,
            merge: _,
            replace,
        }) => operate::import(&storage()?, &workspace, &file, replace, json),
        Command::Quota(q) => operate::quota(&storage()?, &db, q, json),
    }
}

/// `cubby new`: creates the project and prints the commands to go on with.
fn new_project(
    path: &Path,
    name: Option<String>,
    lang: Lang,
    kind: Kind,
    sdk_path: Option<&Path>,
    json: bool,
) -> Result<ExitCode> {
    let name = match name {
        Some(name) => name,
        None => path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| *n != "..")
            .map(str::to_owned)
            .with_context(|| {
                format!(
                    "cannot take a plugin name from {}; pass --name",
                    path.display()
                )
            })?,
    };
    let project = Project::new(&name, lang, kind, sdk_path)?;
    let files = scaffold::create(path, &project)?;
    let steps = project.steps();
    let cd = format!("cd {}", shell_word(&path.to_string_lossy()));
    if json {
        let mut doc = project.json();
        doc["path"] = path.to_string_lossy().into();
        doc["files"] = files.into();
        doc["steps"] = json!({
            "cd": cd,
            "once": steps.once,
            "build": steps.build,
            "run": steps.run,
            "inspect": steps.inspect,
        });
        print_json(&doc)?;
    } else {
        println!(
            "Created {} in {}; its README.md says more. Next:\n\n  {cd}\n  {}   # once\n  \
             {}\n  {}\n  {}",
            project.describe(),
            path.display(),
            steps.once,
            steps.build,
            steps.run,
            steps.inspect,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `word` as one word for a POSIX shell: as it is when it holds nothing the
/// shell would read specially, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn kv_command(storage: &Storage, kv: KvCommand, json: bool) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match kv {
        KvCommand::Get {
            target,
            key,
            base64: _,
        } if !json => {
            let Some(reader) = target.open(storage)?.read_stream(&key)? else {
                bail!("key {key:?} not found in {}", target.describe());
            };
            output::stream_to_stdout(reader)?;
        }
        KvCommand::Get {
            target,
            key,
            base64,
        } => match target.open(storage)?.entry(&key).map_err(|e| match e {
            e @ StorageError::TooLargeToRead { .. } => {
                anyhow::Error::new(e).context("--json shows values up to the value limit; without --json the value streams to stdout")
            }
            e => e.into(),
        })? {
            Some(entry) if json => {
                let (encoding, value) = match std::str::from_utf8(&entry.value) {
                    Ok(text) if !base64 => ("utf8", text.to_owned()),
                    _ => ("base64", output::base64(&entry.value)),
                };
                print_json(&json!({
                    "workspace": target.workspace,
                    "namespace": target.namespace,
                    "key": key,
                    "value": value,
                    "encoding": encoding,
                    "version": entry.version,
                    "expires_in_ms": entry.expires_in.map(|d| d.as_millis() as u64),
                }))?;
            }
            Some(entry) => print_bytes(&entry.value)?,
            None => bail!("key {key:?} not found in {}", target.describe()),
        },
        KvCommand::Set {
            target,
            key,
            value,
            ttl,
            stream,
            compress,
        } => {
            let ns = target.open(storage)?;
            let ttl = ttl.map(Into::into);
            let limit = storage.limits().max_value_bytes;
            let (mut head, rest) = read_arg(&value, limit)?;
            let mut write = WriteOptions::default();
            write.ttl = ttl;
            match rest {
                None if !stream && !compress => {
                    ns.set_with(&key, head, write)?;
                }
                rest => {
                    let largest = storage.limits().max_stream_bytes;
                    if let Some((_, Some(size))) = &rest
                        && *size > largest
                    {
                        bail!(
                            "{} is {size} bytes, larger than the largest streamed value \
                             ({largest} bytes); nothing was written",
                            &value[1..]
                        );
                    }
                    let mut options = StreamOptions::from(write);
                    options.compress = compress;
                    let mut writer = ns.write_stream(&key, options)?;
                    writer.write_bytes(&head)?;
                    head.clear();
                    if let Some((source, size)) = rest {
                        output::copy_with_progress(source, &mut writer, size)?;
                    }
                    writer.finish()?;
                }
            }
        }
        KvCommand::Info { target, key } => {
            let Some(info) = target.open(storage)?.info(&key)? else {
                bail!("key {key:?} not found in {}", target.describe());
            };
            let expires_in_ms = info.expires_in.map(|d| d.as_millis() as u64);
            if json {
                let mut doc = info_json(&key, &info);
                doc["workspace"] = json!(target.workspace);
                doc["namespace"] = json!(target.namespace);
                print_json(&doc)?;
            } else {
                writeln!(out, "size\t{}", info.size)?;
                writeln!(out, "stored\t{}", info.stored_size)?;
                writeln!(out, "streamed\t{}", info.streamed)?;
                writeln!(out, "compressed\t{}", info.compressed)?;
                writeln!(out, "version\t{}", info.version)?;
                match expires_in_ms {
                    Some(ms) => writeln!(out, "expires_in_ms\t{ms}")?,
                    None => writeln!(out, "expires_in_ms\tnever")?,
                }
            }
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
            long: true,
        } => {
            let ns = target.open(storage)?;
            let listed = ns.keys(prefix.as_deref()).take(limit.unwrap_or(usize::MAX));
            let mut entries = Vec::new();
            if !json {
                writeln!(out, "size\tstored\tstreamed\tcompressed\tversion\tkey")?;
            }
            for key in listed {
                let key = key?;
                // A key removed since the page was read is left out.
                let Some(info) = ns.info(&key)? else {
                    continue;
                };
                if json {
                    entries.push(info_json(&key, &info));
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        info.size,
                        info.stored_size,
                        info.streamed,
                        info.compressed,
                        info.version,
                        printable(&key)
                    )?;
                }
            }
            if json {
                print_json(&json!({
                    "workspace": target.workspace,
                    "namespace": target.namespace,
                    "entries": entries,
                }))?;
            }
        }
        KvCommand::List {
            target,
            prefix,
            limit,
            long: false,
        } => {
            let ns = target.open(storage)?;
            let listed = ns.keys(prefix.as_deref()).take(limit.unwrap_or(usize::MAX));
            if json {
                let keys = listed.collect::<Result<Vec<_>, _>>()?;
                print_json(&json!({
                    "workspace": target.workspace,
                    "namespace": target.namespace,
                    "keys": keys,
                }))?;
            } else {
                for key in listed {
                    writeln!(out, "{}", printable(&key?))?;
                }
            }
        }
        KvCommand::Usage { workspace } => {
            let ws = storage.workspace(&workspace)?;
            let usage = ws.usage()?;
            let (quota, source) = storage.quota_with_source(&workspace)?;
            let mut spaces = Vec::new();
            let default = ws.default_space().usage()?;
            if default.keys > 0 {
                spaces.push((String::new(), default));
            }
            let mut cursor = None;
            loop {
                let page = ws.namespaces(cursor.as_deref(), None)?;
                for name in page.keys {
                    let u = ws.namespace(&name)?.usage()?;
                    spaces.push((name, u));
                }
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            if json {
                let namespaces: Vec<_> = spaces
                    .iter()
                    .map(|(ns, u)| json!({ "namespace": ns, "keys": u.keys, "bytes": u.bytes }))
                    .collect();
                print_json(&json!({
                    "workspace": workspace,
                    "keys": usage.keys,
                    "bytes": usage.bytes,
                    "quota": quota_json(quota, source),
                    "namespaces": namespaces,
                }))?;
            } else {
                writeln!(out, "namespace\tkeys\tbytes")?;
                for (ns, u) in &spaces {
                    let name = if ns.is_empty() {
                        "(default)".to_owned()
                    } else {
                        printable(ns)
                    };
                    writeln!(out, "{name}\t{}\t{}", u.keys, u.bytes)?;
                }
                writeln!(out, "(total)\t{}\t{}", usage.keys, usage.bytes)?;
                writeln!(out, "(quota)\t{}\t{}", quota.max_keys, quota.max_bytes)?;
            }
        }
        KvCommand::Clear { target } => {
            let removed = target.open(storage)?.clear_all()?;
            if json {
                print_json(&json!({
                    "workspace": target.workspace,
                    "namespace": target.namespace,
                    "removed": removed,
                }))?;
            } else {
                writeln!(out, "removed {} from {}", keys(removed), target.describe())?;
            }
        }
        KvCommand::Prune => {
            let removed = storage.prune()?;
            if json {
                print_json(&json!({ "removed": removed }))?;
            } else {
                writeln!(out, "removed {removed} expired entries")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `kv info` and `kv list --long` print of a value, as JSON.
fn info_json(key: &str, info: &ValueInfo) -> serde_json::Value {
    json!({
        "key": key,
        "size": info.size,
        "stored_size": info.stored_size,
        "streamed": info.streamed,
        "compressed": info.compressed,
        "version": info.version,
        "expires_in_ms": info.expires_in.map(|d| d.as_millis() as u64),
    })
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
        options.quota_overrides.insert(ws.clone(), quota);
    }
    options.verify_on_open = !args.no_verify;
    options.postgres.pool_size = args.pool_size;
    options.postgres.statement_timeout = args.statement_timeout.into();
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
            defaults::database_path().context(NO_HOME)?,
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
    for (key, value) in &opts.env {
        builder = builder.env(key, value);
    }
    if let Some(buckets) = &opts.buckets {
        builder = builder.allow_buckets(buckets);
    }
    if !opts.no_cache {
        let dir = match &opts.cache_dir {
            // wasmtime wants an absolute path; a relative one is meant
            // relative to the working directory.
            Some(dir) => std::path::absolute(dir)
                .with_context(|| format!("cannot use {} as the cache folder", dir.display()))?,
            None => defaults::cache_dir().context(NO_HOME)?,
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

/// A source to stream the rest of a value from, and its size if known.
type Rest = Option<(Box<dyn std::io::Read>, Option<u64>)>;

/// A value argument (text, `@FILE`, `@-`): its first bytes, up to `limit`,
/// and, when there are more, the source to stream the rest from.
fn read_arg(arg: &str, limit: usize) -> Result<(Vec<u8>, Rest)> {
    let (source, size, name): (Box<dyn std::io::Read>, Option<u64>, &str) = match arg
        .strip_prefix('@')
    {
        Some("-") => (Box::new(std::io::stdin()), None, "stdin"),
        Some(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("cannot read {path}"))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size, path)
        }
        None => return Ok((arg.as_bytes().to_vec(), None)),
    };
    let mut head = Vec::new();
    let mut source = std::io::Read::take(source, limit as u64 + 1);
    std::io::Read::read_to_end(&mut source, &mut head)
        .with_context(|| format!("cannot read {name}"))?;
    if head.len() <= limit {
        return Ok((head, None));
    }
    Ok((head, Some((source.into_inner(), size))))
}

/// A request argument (text, `@FILE`, `@-`), whole.
fn read_whole(arg: &str) -> Result<Vec<u8>> {
    let (mut head, rest) = read_arg(arg, usize::MAX - 1)?;
    if let Some((mut source, _)) = rest {
        std::io::Read::read_to_end(&mut source, &mut head).context("cannot read the request")?;
    }
    Ok(head)
}

/// Asks a yes/no question on the terminal; an error unless the answer is
/// yes. Without a terminal, as in a script, it refuses: pass `--yes`.
pub(crate) fn confirm(question: &str) -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("not confirmed: {question} Pass --yes to confirm (stdin is not a terminal)");
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    stdin
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    match answer.trim() {
        "y" | "Y" | "yes" => Ok(()),
        _ => bail!("cancelled; nothing was deleted"),
    }
}
