//! `files`: a command-style plugin that keeps files of any size in its
//! workspace, streamed through a plugin memory of a few hundred KiB.
//!
//! ```text
//! files put NAME [--compress]   store stdin under NAME (replacing it)
//! files get NAME                write NAME to stdout
//! files info NAME               size, stored size, compressed, version
//! files list                    every NAME with its size
//! files rm NAME                 remove NAME
//! ```

use std::io::{self, Write};
use std::process::ExitCode;

use cubby_sdk::{Namespace, StreamOptions};

/// Where the files are: a namespace of their own, apart from other keys.
const FILES: &str = "files";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let files = Namespace::new(FILES);
    let done = match args.as_slice() {
        ["put", name, rest @ ..] => put(&files, name, rest.contains(&"--compress")),
        ["get", name] => get(&files, name),
        ["info", name] => info(&files, name),
        ["list"] => list(&files),
        ["rm", name] => files
            .delete(name)
            .map_err(|e| e.to_string())
            .and_then(|existed| {
                if existed {
                    Ok(())
                } else {
                    Err(format!("no file {name:?}"))
                }
            }),
        _ => {
            Err("usage: files put NAME [--compress] | get NAME | info NAME | list | rm NAME".into())
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("files: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Stores stdin under `name`: nothing is visible until all of it is in.
fn put(files: &Namespace, name: &str, compress: bool) -> Result<(), String> {
    let options = if compress {
        StreamOptions::new().compress()
    } else {
        StreamOptions::new()
    };
    let mut file = files
        .create_with(name, &options)
        .map_err(|e| e.to_string())?;
    io::copy(&mut io::stdin().lock(), &mut file).map_err(|e| format!("reading stdin: {e}"))?;
    let version = file.finish().map_err(|e| e.to_string())?;
    eprintln!("stored {name} (version {version})");
    Ok(())
}

fn get(files: &Namespace, name: &str) -> Result<(), String> {
    let mut file = files
        .open(name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no file {name:?}"))?;
    let mut out = io::stdout().lock();
    io::copy(&mut file, &mut out).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}

fn info(files: &Namespace, name: &str) -> Result<(), String> {
    let info = files
        .info(name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no file {name:?}"))?;
    println!(
        "{name}: {} bytes, {} stored{}, version {}",
        info.size,
        info.stored_size,
        if info.compressed { " (compressed)" } else { "" },
        info.version
    );
    Ok(())
}

fn list(files: &Namespace) -> Result<(), String> {
    for name in files.keys() {
        let name = name.map_err(|e| e.to_string())?;
        if let Some(info) = files.info(&name).map_err(|e| e.to_string())? {
            println!("{name}\t{}", info.size);
        }
    }
    Ok(())
}
