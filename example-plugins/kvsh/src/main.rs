//! `kvsh`: a tiny shell over the workspace's keys, to show listing.
//!
//! ```text
//! kvsh put KEY VALUE     store VALUE (text) under KEY
//! kvsh get KEY           print the value (exit 1 if missing)
//! kvsh del KEY           delete KEY
//! kvsh ls [PREFIX]       list keys (all pages), one per line
//! kvsh count [PREFIX]    count keys
//! kvsh fill PREFIX N     store N keys PREFIX00000 … with their number as value
//! kvsh page [PREFIX] [CURSOR] [LIMIT]
//!                        print one page of keys, then `cursor: …` if there is more
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kvsh: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[&str]) -> Result<ExitCode, String> {
    let sdk = |e: cubby_sdk::Error| e.to_string();
    match args {
        ["put", key, value] => cubby_sdk::set_string(key, value).map_err(sdk)?,
        ["get", key] => match cubby_sdk::get_string(key).map_err(sdk)? {
            Some(value) => println!("{value}"),
            None => {
                eprintln!("kvsh: {key:?} not found");
                return Ok(ExitCode::FAILURE);
            }
        },
        ["del", key] => {
            let existed = cubby_sdk::delete(key).map_err(sdk)?;
            println!("{}", if existed { "deleted" } else { "not found" });
        }
        ["ls", rest @ ..] if rest.len() <= 1 => {
            for key in keys(rest.first()) {
                println!("{}", key.map_err(sdk)?);
            }
        }
        ["count", rest @ ..] if rest.len() <= 1 => {
            let mut n = 0u64;
            for key in keys(rest.first()) {
                key.map_err(sdk)?;
                n += 1;
            }
            println!("{n}");
        }
        ["fill", prefix, n] => {
            let n: u32 = n.parse().map_err(|_| format!("not a count: {n:?}"))?;
            for i in 0..n {
                cubby_sdk::set_string(format!("{prefix}{i:05}"), i.to_string()).map_err(sdk)?;
            }
        }
        ["page", rest @ ..] if rest.len() <= 3 => {
            let prefix = rest.first().copied().filter(|p| !p.is_empty());
            let cursor = rest.get(1).copied().filter(|c| !c.is_empty());
            let limit = match rest.get(2) {
                Some(l) => Some(l.parse().map_err(|_| format!("not a limit: {l:?}"))?),
                None => None,
            };
            let page = cubby_sdk::list_keys(prefix, cursor, limit).map_err(sdk)?;
            for key in page.keys {
                println!("{key}");
            }
            if let Some(cursor) = page.cursor {
                println!("cursor: {cursor}");
            }
        }
        _ => {
            return Err(
                "usage: kvsh put KEY VALUE | get KEY | del KEY | ls [PREFIX] | count [PREFIX] \
                 | fill PREFIX N | page [PREFIX] [CURSOR] [LIMIT]"
                    .into(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn keys(prefix: Option<&&str>) -> cubby_sdk::Keys {
    match prefix {
        Some(prefix) => cubby_sdk::keys_with_prefix(*prefix),
        None => cubby_sdk::keys(),
    }
}
