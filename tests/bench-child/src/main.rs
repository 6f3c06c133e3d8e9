//! The benchmark's child process (`cargo bench -p cubby-host`, section
//! `overhead`): measures a whole call and a plugin get as the benchmark
//! does, with cubby-host's instrumentation compiled in (this crate's
//! `metrics` feature; no recorder is installed) or out, and prints the two
//! times in nanoseconds on one line.
//!
//! ```text
//! cubby-bench-child DIR GETTER.wasm PROBE.wasm CACHE_DIR CALLS GETS
//! ```

#![allow(clippy::expect_used)]

#[allow(dead_code)]
#[path = "../../../host/benches/storage/overhead.rs"]
mod overhead;

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, getter, probe, cache, calls, gets] = args.as_slice() else {
        eprintln!("usage: cubby-bench-child DIR GETTER.wasm PROBE.wasm CACHE_DIR CALLS GETS");
        std::process::exit(2);
    };
    let number = |s: &str| s.parse::<u32>().expect("a number");
    let subject = overhead::Subject::new(
        Path::new(dir),
        if cfg!(feature = "metrics") {
            "child-instrumented"
        } else {
            "child-uninstrumented"
        },
        [Path::new(getter), Path::new(probe)],
        Path::new(cache),
    );
    subject.warm();
    let call = subject.whole_call(number(calls));
    let get = subject.plugin_get(number(gets));
    println!("{} {}", call.as_nanos(), get.as_nanos());
}
