//! Exporting and importing a large workspace keeps memory flat: the heap
//! grows by a bound that does not depend on the workspace's size (measured
//! with a counting allocator, not timed). Its own test binary, so nothing
//! else allocates meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cubby_host::transfer::ImportMode;
use cubby_host::{Storage, StorageOptions};
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const ENTRIES: usize = 200_000;
const VALUE_BYTES: usize = 200;
/// redb's page cache, set small so that what is measured is the export's and
/// import's own memory, not how much of the file redb caches.
const CACHE: usize = 4 << 20;
/// The most the heap may grow during an export or an import: a small
/// fraction of the ~42 MB the workspace holds.
const BOUND: usize = 16 << 20;

fn open(path: &std::path::Path) -> Storage {
    let mut options = StorageOptions::default();
    options.cache_size = Some(CACHE);
    options.sweep_interval = None;
    Storage::open(path, options).unwrap()
}

/// Runs `f` and returns how far the heap grew above where it started.
fn peak_growth(f: impl FnOnce()) -> usize {
    let start = HEAP.current_usage();
    HEAP.reset_peak_usage();
    f();
    HEAP.peak_usage().saturating_sub(start)
}

#[test]
fn a_200k_entry_workspace_exports_and_imports_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let source = open(&dir.path().join("source.redb"));
    let a = source.workspace("a").unwrap();
    for chunk in 0..ENTRIES / 1000 {
        a.set_many((0..1000).map(|i| {
            let n = chunk * 1000 + i;
            (format!("key/{n:07}"), vec![(n % 251) as u8; VALUE_BYTES])
        }))
        .unwrap();
    }
    let usage = a.usage().unwrap();
    assert_eq!(usage.keys, ENTRIES as u64);
    assert!(usage.bytes > 40_000_000);

    let file = dir.path().join("a.cubby");
    let exported = peak_growth(|| {
        let out = std::fs::File::create(&file).unwrap();
        let summary = a.export(out).unwrap();
        assert_eq!(summary.usage, usage);
    });
    let file_len = std::fs::metadata(&file).unwrap().len();
    assert!(file_len > usage.bytes, "{file_len}");

    let target = open(&dir.path().join("target.redb"));
    let b = target.workspace("b").unwrap();
    let imported = peak_growth(|| {
        let input = std::fs::File::open(&file).unwrap();
        let summary = b.import(input, ImportMode::Replace).unwrap();
        assert_eq!(summary.imported, ENTRIES as u64);
    });
    eprintln!(
        "{ENTRIES} entries, {} bytes stored, export file {file_len} bytes: heap grew by {} KiB \
         exporting and {} KiB importing (bound {} KiB, redb cache {} KiB)",
        usage.bytes,
        exported / 1024,
        imported / 1024,
        BOUND / 1024,
        CACHE / 1024
    );
    assert!(exported < BOUND, "export grew the heap by {exported} bytes");
    assert!(imported < BOUND, "import grew the heap by {imported} bytes");

    assert_eq!(b.usage().unwrap(), usage);
    let probe = ["key/0000000", "key/0123456", "key/0199999"];
    assert_eq!(
        b.get_many(&probe).unwrap(),
        a.get_many(&probe).unwrap(),
        "values survive the round trip"
    );
    assert_eq!(target.workspaces().unwrap(), vec![("b".to_owned(), usage)]);
}
