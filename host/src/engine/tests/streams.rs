//! Streamed values, on every backend: written and read a chunk at a time,
//! published atomically, counted against quotas while written, let go of
//! by every way an entry goes, collected by the sweeper, exported and
//! imported.

use std::io::{Read, Write};

use super::*;
use crate::StorageError;
use crate::engine::blob::{CHUNK_BYTES, REPLACED_GRACE, STREAM_IDLE};
use crate::ops::{Condition, StreamOptions, Usage, WriteOptions};
use crate::options::Quota;
use crate::testing::{assert_usage_is_exact, audit};
use crate::transfer::ImportMode;

/// `len` bytes that compress (runs of one byte, changing every 1000).
fn compressible(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i / 1000) as u8))
        .collect()
}

/// `len` bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Asserts that a writer's `io::Write` call failed with the storage's
/// [`StorageError::QuotaExceeded`].
#[track_caller]
fn assert_quota_refusal(result: std::io::Result<()>) {
    let refused = result.unwrap_err();
    let inner = refused
        .get_ref()
        .and_then(|e| e.downcast_ref::<StorageError>());
    assert!(
        matches!(inner, Some(StorageError::QuotaExceeded(_))),
        "{refused:?}"
    );
}

/// Writes `value` as a stream, in pieces of 100 KB.
fn write(ns: &Namespace, key: &str, value: &[u8], options: StreamOptions) -> u64 {
    let mut writer = ns.write_stream(key, options).unwrap();
    for piece in value.chunks(100_000) {
        writer.write_all(piece).unwrap();
    }
    writer.finish().unwrap()
}

/// The whole value under `key`, read as a stream.
fn read(ns: &Namespace, key: &str) -> Option<Vec<u8>> {
    let mut reader = ns.read_stream(key).unwrap()?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    Some(out)
}

fn a_streamed_value_round_trips_and_is_an_entry_like_any_other(place: &Place) {
    let storage = open(place);
    let ns = storage.workspace("w").unwrap().namespace("files").unwrap();
    let plain = noise(3 * CHUNK_BYTES + 12_345, 1);
    let packed = compressible(900_000, 7);
    let v1 = write(&ns, "plain", &plain, StreamOptions::default());
    let v2 = write(&ns, "packed", &packed, StreamOptions::default().compress());
    assert!(v2 > v1);
    assert_eq!(read(&ns, "plain").unwrap(), plain);
    assert_eq!(read(&ns, "packed").unwrap(), packed);
    let info = ns.info("plain").unwrap().unwrap();
    assert_eq!(
        (info.size, info.stored_size, info.streamed, info.compressed),
        (plain.len() as u64, plain.len() as u64, true, false)
    );
    assert_eq!(info.version, v1);
    let info = ns.info("packed").unwrap().unwrap();
    assert_eq!(info.size, packed.len() as u64);
    assert!(info.compressed && info.stored_size < 50_000, "{info:?}");
    // Plain reads of values within the value limit work.
    assert_eq!(ns.get("packed").unwrap().unwrap(), packed);
    assert_eq!(ns.entry("packed").unwrap().unwrap().version, v2);
    assert_eq!(
        ns.get_many(&["packed", "none"]).unwrap()[0].as_ref(),
        Some(&packed)
    );
    assert!(ns.exists("plain").unwrap());
    assert_eq!(all_keys(ns.keys(None)), ["packed", "plain"]);
    // Usage counts what the values take in storage.
    let stored = info.stored_size + "packed".len() as u64;
    assert_eq!(
        ns.usage().unwrap(),
        Usage {
            keys: 2,
            bytes: stored + plain.len() as u64 + "plain".len() as u64,
        }
    );
    assert_usage_is_exact(&storage, "w");
    // Any entry reads as a stream, and an empty stream is a value too.
    ns.set("small", b"tiny".to_vec()).unwrap();
    assert_eq!(read(&ns, "small").unwrap(), b"tiny");
    assert!(!ns.info("small").unwrap().unwrap().streamed);
    write(&ns, "empty", b"", StreamOptions::default());
    assert_eq!(ns.get("empty").unwrap().unwrap(), b"");
    assert_eq!(read(&ns, "none"), None);
    // A streamed value is never a counter; an expiry change keeps it.
    assert!(matches!(
        ns.increment("plain", 1, None),
        Err(StorageError::NotACounter)
    ));
    assert!(ns.expire("plain", Some(SEC * 3600)).unwrap());
    assert_eq!(read(&ns, "plain").unwrap(), plain);
    let renewed = ns.get_and_renew("packed", SEC * 60).unwrap().unwrap();
    assert_eq!(renewed.value, packed);
    assert_eq!(audit(&storage, "w").loose_blobs, 0);
}

fn a_streamed_value_larger_than_the_value_limit_is_read_only_as_a_stream(place: &Place) {
    let storage = with_limits(place, |l| l.max_value_bytes = 100_000);
    let ws = storage.workspace("w").unwrap();
    let value = noise(300_000, 2);
    write(ws.default_space(), "big", &value, StreamOptions::default());
    for refused in [
        ws.get("big").map(drop),
        ws.entry("big").map(drop),
        ws.get_many(&["big"]).map(drop),
        ws.get_and_renew("big", SEC).map(drop),
    ] {
        assert!(
            matches!(
                refused,
                Err(StorageError::TooLargeToRead {
                    size: 300_000,
                    limit: 100_000
                })
            ),
            "{refused:?}"
        );
    }
    assert_eq!(read(ws.default_space(), "big").unwrap(), value);
}

fn nothing_is_visible_before_finish_and_an_unfinished_write_leaves_nothing(place: &Place) {
    let storage = open(place);
    let ws = storage.workspace("w").unwrap();
    let ns = ws.default_space();
    ns.set("doc", b"old".to_vec()).unwrap();
    let before = ws.usage().unwrap();
    let mut writer = ns.write_stream("doc", StreamOptions::default()).unwrap();
    writer.write_all(&noise(2 * CHUNK_BYTES + 5, 3)).unwrap();
    writer.flush().unwrap();
    assert_eq!(ns.get("doc").unwrap().unwrap(), b"old");
    assert_eq!(ws.usage().unwrap(), before);
    assert!(audit(&storage, "w").chunk_rows >= 2);
    drop(writer);
    assert_eq!(ns.get("doc").unwrap().unwrap(), b"old");
    let a = audit(&storage, "w");
    assert_eq!((a.chunk_rows, a.loose_blobs), (0, 0), "{a:?}");
    // After a finish, the new value whole.
    let value = noise(CHUNK_BYTES + 1, 4);
    write(ns, "doc", &value, StreamOptions::default());
    assert_eq!(read(ns, "doc").unwrap(), value);
    // A finished writer takes nothing more.
    let mut writer = ns.write_stream("other", StreamOptions::default()).unwrap();
    writer.write_bytes(b"x").unwrap();
    writer.finish().unwrap();
    assert_usage_is_exact(&storage, "w");
}

fn a_reader_keeps_the_value_it_opened_and_replaced_chunks_are_collected_later(place: &Place) {
    let clock = ManualClock::new(1_000_000);
    let storage = manual(place, &clock, |_| {});
    let ns = storage.workspace("w").unwrap().default_space().clone();
    let first = noise(3 * CHUNK_BYTES, 5);
    let second = noise(2 * CHUNK_BYTES, 6);
    write(&ns, "f", &first, StreamOptions::default());
    let mut reader = ns.read_stream("f").unwrap().unwrap();
    let mut head = vec![0u8; 1000];
    reader.read_exact(&mut head).unwrap();
    write(&ns, "f", &second, StreamOptions::default());
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    head.extend(rest);
    assert!(head == first, "the reader saw a mix");
    assert_eq!(read(&ns, "f").unwrap(), second);
    // The first value's chunks wait out the grace, then go.
    assert_eq!(audit(&storage, "w").chunk_rows, 5);
    storage.prune().unwrap();
    assert_eq!(audit(&storage, "w").chunk_rows, 5);
    clock.advance(REPLACED_GRACE + SEC);
    storage.prune().unwrap();
    let a = audit(&storage, "w");
    assert_eq!((a.chunk_rows, a.loose_blobs), (2, 0), "{a:?}");
    // Delete, clear and expiry let go of streamed values the same way.
    write(&ns, "g", &first, StreamOptions::default().ttl(SEC));
    let other = storage.workspace("w").unwrap().namespace("n").unwrap();
    write(&other, "h", &first, StreamOptions::default());
    ns.delete("f").unwrap();
    other.clear_all().unwrap();
    clock.advance(SEC * 2);
    assert_eq!(ns.get("g").unwrap(), None);
    storage.prune().unwrap();
    clock.advance(REPLACED_GRACE + SEC);
    storage.prune().unwrap();
    let a = audit(&storage, "w");
    assert_eq!((a.chunk_rows, a.loose_blobs, a.rows), (0, 0, 0), "{a:?}");
    assert_usage_is_exact(&storage, "w");
}

fn an_abandoned_write_is_collected_once_idle_and_cannot_be_finished(place: &Place) {
    let clock = ManualClock::new(1_000_000);
    let storage = manual(place, &clock, |_| {});
    let ns = storage.workspace("w").unwrap().default_space().clone();
    let mut writer = ns.write_stream("f", StreamOptions::default()).unwrap();
    writer.write_all(&noise(2 * CHUNK_BYTES, 7)).unwrap();
    writer.flush().unwrap();
    storage.prune().unwrap();
    assert_eq!(audit(&storage, "w").chunk_rows, 2);
    clock.advance(STREAM_IDLE + SEC);
    storage.prune().unwrap();
    let a = audit(&storage, "w");
    assert_eq!((a.chunk_rows, a.loose_blobs), (0, 0), "{a:?}");
    writer.write_all(&[1u8; 10]).unwrap();
    let refused = writer.finish().unwrap_err();
    assert!(
        matches!(refused, StorageError::InvalidArgument(_)),
        "{refused:?}"
    );
    assert_eq!(ns.get("f").unwrap(), None);
    // A process that dies mid-write leaves what the sweeper takes the same
    // way (a writer forgotten stands for it).
    let mut lost = ns.write_stream("g", StreamOptions::default()).unwrap();
    lost.write_all(&noise(CHUNK_BYTES, 8)).unwrap();
    lost.flush().unwrap();
    std::mem::forget(lost);
    clock.advance(STREAM_IDLE + SEC);
    storage.prune().unwrap();
    let a = audit(&storage, "w");
    assert_eq!((a.chunk_rows, a.loose_blobs), (0, 0), "{a:?}");
    // A removed workspace takes its writes in progress with it.
    let mut writer = ns.write_stream("h", StreamOptions::default()).unwrap();
    writer.write_all(&noise(CHUNK_BYTES + 1, 9)).unwrap();
    ns.set("x", b"1".to_vec()).unwrap();
    storage.workspace("w").unwrap().clear_all().unwrap();
    assert!(writer.finish().is_err());
    storage.prune().unwrap();
    let a = audit(&storage, "w");
    assert_eq!((a.chunk_rows, a.loose_blobs, a.rows), (0, 0, 0), "{a:?}");
}

fn streams_count_against_the_quota_while_written_and_a_refusal_leaves_nothing(place: &Place) {
    let storage = open(place);
    storage
        .override_quota(
            "w",
            Some(Quota {
                max_keys: 100,
                max_bytes: 3 * CHUNK_BYTES as u64,
            }),
        )
        .unwrap();
    let ns = storage.workspace("w").unwrap().default_space().clone();
    let mut writer = ns.write_stream("big", StreamOptions::default()).unwrap();
    // Chunks are stored while the writer takes the next ones: the refusal
    // comes from a later write, or from `flush`, which waits for them.
    let refused = writer
        .write_all(&noise(4 * CHUNK_BYTES, 10))
        .and_then(|()| writer.flush());
    assert_quota_refusal(refused);
    assert!(writer.finish().is_err());
    let a = audit(&storage, "w");
    assert_eq!((a.chunk_rows, a.loose_blobs, a.rows), (0, 0, 0), "{a:?}");
    // Two writes at once: the bytes of the one in progress count for the
    // other.
    let mut one = ns.write_stream("one", StreamOptions::default()).unwrap();
    one.write_all(&noise(2 * CHUNK_BYTES, 11)).unwrap();
    one.flush().unwrap();
    let mut two = ns.write_stream("two", StreamOptions::default()).unwrap();
    let refused = two
        .write_all(&noise(2 * CHUNK_BYTES, 12))
        .and_then(|()| two.flush());
    assert!(refused.is_err());
    one.finish().unwrap();
    assert!(matches!(
        ns.set("more", vec![0u8; CHUNK_BYTES + 10]),
        Err(StorageError::QuotaExceeded(_))
    ));
    assert_usage_is_exact(&storage, "w");
    assert!(ns.usage().unwrap().bytes <= 3 * CHUNK_BYTES as u64);
}

fn stream_limits_are_typed_errors(place: &Place) {
    let storage = with_limits(place, |l| {
        l.max_stream_bytes = 500_000;
        l.max_open_streams = 2;
    });
    let ns = storage.workspace("w").unwrap().default_space().clone();
    let mut writer = ns.write_stream("big", StreamOptions::default()).unwrap();
    let refused = writer.write_bytes(&noise(600_000, 13)).unwrap_err();
    assert!(
        matches!(refused, StorageError::ValueTooLarge { limit: 500_000, .. }),
        "{refused:?}"
    );
    drop(writer);
    let _a = ns.write_stream("a", StreamOptions::default()).unwrap();
    let _b = ns.write_stream("b", StreamOptions::default()).unwrap();
    let refused = ns.write_stream("c", StreamOptions::default()).unwrap_err();
    assert!(
        matches!(refused, StorageError::InvalidArgument(_)),
        "{refused:?}"
    );
    assert!(matches!(
        ns.write_stream("", StreamOptions::default()),
        Err(StorageError::InvalidKey(_))
    ));
}

fn conditions_guard_the_publish(place: &Place) {
    let storage = open(place);
    let ns = storage.workspace("w").unwrap().default_space().clone();
    let value = noise(CHUNK_BYTES + 100, 14);
    let v1 = write(&ns, "f", &value, StreamOptions::default().if_absent());
    let mut writer = ns
        .write_stream("f", StreamOptions::default().if_absent())
        .unwrap();
    writer.write_all(&noise(CHUNK_BYTES * 2, 15)).unwrap();
    match writer.finish() {
        Err(StorageError::Conflict {
            current: Some(entry),
            ..
        }) => assert_eq!(entry.version, v1),
        other => panic!("{other:?}"),
    }
    let a = audit(&storage, "w");
    assert_eq!((a.chunk_rows, a.loose_blobs), (2, 0), "{a:?}");
    let v2 = write(&ns, "f", &value, StreamOptions::default().if_version(v1));
    assert!(v2 > v1);
    // `value-equals` compares a streamed value by size and checksum.
    let held = WriteOptions {
        condition: Some(Condition::ValueEquals(value.clone())),
        ..WriteOptions::default()
    };
    ns.set_with("f", b"replaced".to_vec(), held.clone())
        .unwrap();
    assert!(matches!(
        ns.set_with("f", b"again".to_vec(), held),
        Err(StorageError::Conflict { .. })
    ));
}

fn streamed_values_export_and_import_byte_for_byte(place: &Place) {
    let storage = open(place);
    let a = storage.workspace("a").unwrap();
    let plain = noise(2 * CHUNK_BYTES + 77, 16);
    let packed = compressible(3 * CHUNK_BYTES, 17);
    write(a.default_space(), "plain", &plain, StreamOptions::default());
    let files = a.namespace("files").unwrap();
    write(
        &files,
        "packed",
        &packed,
        StreamOptions::default().compress(),
    );
    a.set("small", b"inline".to_vec()).unwrap();
    let mut file = Vec::new();
    a.export(&mut file).unwrap();
    assert!(String::from_utf8_lossy(&file).contains("\"stream\":{\"size\":"));
    let b = storage.workspace("b").unwrap();
    b.set("plain", b"overwritten".to_vec()).unwrap();
    write(b.default_space(), "gone", &plain, StreamOptions::default());
    let summary = b.import(file.as_slice(), ImportMode::Replace).unwrap();
    assert_eq!(summary.imported, 3);
    assert_eq!(read(b.default_space(), "plain").unwrap(), plain);
    let b_files = b.namespace("files").unwrap();
    assert_eq!(read(&b_files, "packed").unwrap(), packed);
    assert!(b_files.info("packed").unwrap().unwrap().compressed);
    assert_eq!(b.get("small").unwrap().unwrap(), b"inline");
    assert_eq!(b.get("gone").unwrap(), None);
    assert_eq!(b.usage().unwrap(), a.usage().unwrap());
    assert_usage_is_exact(&storage, "b");
    // No staging area, and no chunk of it, is left.
    assert_eq!(workspace_ids(&storage), ["a", "b"]);
    // A damaged chunk line is refused, and nothing is written.
    let text = String::from_utf8(file).unwrap();
    let at = text.find("{\"chunk\":\"").unwrap() + 20;
    let mut damaged = text.clone().into_bytes();
    damaged[at] = if damaged[at] == b'A' { b'B' } else { b'A' };
    let c = storage.workspace("c").unwrap();
    assert!(c.import(damaged.as_slice(), ImportMode::Merge).is_err());
    assert_eq!(c.usage().unwrap(), Usage::default());
}

fn a_reader_never_sees_a_mix_of_two_values(place: &Place) {
    let storage = open(place);
    let ns = storage.workspace("w").unwrap().default_space().clone();
    let size = 2 * CHUNK_BYTES + 3;
    write(&ns, "f", &vec![0u8; size], StreamOptions::default());
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 1..=8u8 {
                write(&ns, "f", &vec![round; size], StreamOptions::default());
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        for _ in 0..2 {
            s.spawn(|| {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) || reads == 0 {
                    let value = read(&ns, "f").unwrap();
                    assert_eq!(value.len(), size);
                    assert!(value.iter().all(|b| *b == value[0]), "a mix");
                    reads += 1;
                }
            });
        }
    });
}

/// Replaced streamed values kept for their readers count against the quota
/// of stream writes until the sweeper takes them, so what a workspace keeps
/// on disk stays within its quota however fast it rewrites a value.
fn replaced_values_kept_for_readers_count_against_stream_writes(place: &Place) {
    let clock = ManualClock::new(1_000_000);
    let storage = manual(place, &clock, |_| {});
    storage
        .override_quota(
            "w",
            Some(Quota {
                max_keys: 100,
                max_bytes: 3 * CHUNK_BYTES as u64 + 1_000,
            }),
        )
        .unwrap();
    let ns = storage.workspace("w").unwrap().default_space().clone();
    let value = noise(CHUNK_BYTES, 21);
    // Live 1 chunk, then live 1 and kept 1, then live 1 and kept 2.
    write(&ns, "f", &value, StreamOptions::default());
    write(&ns, "f", &value, StreamOptions::default());
    write(&ns, "f", &value, StreamOptions::default());
    let mut writer = ns.write_stream("f", StreamOptions::default()).unwrap();
    assert_quota_refusal(writer.write_all(&value).and_then(|()| writer.flush()));
    assert_eq!(read(&ns, "f").unwrap(), value);
    // Once the sweeper has taken the replaced values, there is room again.
    clock.advance(REPLACED_GRACE + SEC);
    storage.prune().unwrap();
    write(&ns, "f", &value, StreamOptions::default());
    assert_eq!(read(&ns, "f").unwrap(), value);
    assert_usage_is_exact(&storage, "w");
}

crate::conformance_tests!(
    a_streamed_value_round_trips_and_is_an_entry_like_any_other,
    a_streamed_value_larger_than_the_value_limit_is_read_only_as_a_stream,
    nothing_is_visible_before_finish_and_an_unfinished_write_leaves_nothing,
    a_reader_keeps_the_value_it_opened_and_replaced_chunks_are_collected_later,
    an_abandoned_write_is_collected_once_idle_and_cannot_be_finished,
    streams_count_against_the_quota_while_written_and_a_refusal_leaves_nothing,
    stream_limits_are_typed_errors,
    conditions_guard_the_publish,
    streamed_values_export_and_import_byte_for_byte,
    a_reader_never_sees_a_mix_of_two_values,
    replaced_values_kept_for_readers_count_against_stream_writes,
);
