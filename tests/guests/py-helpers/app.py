"""py-helpers: a test guest (world `command`) that runs every helper of
guest-sdk/python/cubby.py once and prints one line per result. The JavaScript
twin (tests/guests/js-helpers) prints the same lines; tests/polyglot.rs
compares both with what the host stores."""

import json
import sys

import cubby
from componentize_py_types import Err
from wit_world import exports


def out(label, value):
    print(f"{label}: {value}")


def failure(label, f, message=True):
    try:
        f()
    except cubby.StorageError as e:
        out(label, f"{e.kind} | {e}" if message else e.kind)
    else:
        out(label, "no error")


class Run(exports.Run):
    def run(self) -> None:
        try:
            scenario()
        except cubby.StorageError as e:
            print(f"unexpected: {e.kind}: {e}", file=sys.stderr)
            raise Err(None)


def scenario():
    cubby.set_string("greeting", "héllo ☃")
    out("string", cubby.get_string("greeting"))
    cubby.set_json("cfg", {"a": [1, 2], "b": "x"})
    out("json", json.dumps(cubby.get_json("cfg"), separators=(",", ":")))
    out("json default", cubby.get_json("missing", "none"))
    out("missing", cubby.get("missing"))
    cubby.set("bin", bytes([0, 255]))
    out("bytes", cubby.get("bin").hex())
    out("exists", f"{cubby.exists('bin')} {cubby.exists('missing')}")
    out("get many", [None if v is None else v.hex() for v in cubby.get_many(["bin", "missing"])])

    ns = cubby.Namespace("ns")
    for start in range(0, 250, 100):
        ns.set_many([(f"k/{i:03}", str(i).encode()) for i in range(start, min(start + 100, 250))])
    listed = list(ns.keys(prefix="k/"))
    out("paged keys", f"{len(listed)} {listed[0]} {listed[-1]}")
    out("all keys", len(list(ns.keys())))
    out("namespaces", list(cubby.namespaces()))
    out("delete many", ns.delete_many(["k/000", "k/001", "nope"]))
    out("ns usage", f"{ns.usage().keys} {cubby.usage('ns').keys}")

    c = cubby.Counter("c")
    out("counter", f"{c.add(5)} {c.decrement()} {c.get()} {cubby.increment('c', 10)}")
    out("counter reset", f"{c.reset()} {c.get()}")
    out("ns counter", ns.counter("hits").increment())
    value = cubby.increment("neg", -3, ttl=60)
    out("negative with ttl", f"{value} {cubby.entry('neg').expires_in is not None} {cubby.delete('neg')}")

    cubby.set_string("word", "abc")
    failure("not a counter", lambda: cubby.Counter("word").increment())
    cubby.set("cond", b"1", if_absent=True)
    try:
        cubby.set("cond", b"2", if_absent=True)
        out("conflict", "no error")
    except cubby.Conflict as e:
        out("conflict", f"{e.kind} | {e} | {e.index} {e.current.value!r}")
    version = cubby.entry("cond").version
    out("if version", cubby.set("cond", b"3", if_version=version) > version)
    failure("stale delete", lambda: cubby.delete("cond", if_version=version))
    current = cubby.entry("cond").version
    out("delete if version", f"{cubby.delete('cond', if_version=current)} {cubby.get('cond')!r}")
    failure("invalid key", lambda: cubby.get(""))
    limit = cubby.limits().max_value_bytes
    failure("too large", lambda: cubby.set("big", b"x" * (limit + 1)))
    failure("zero ttl", lambda: cubby.set("t", b"v", ttl=0))
    cubby.set("badjson", b"{")
    # The parser's own message differs between languages: the kind only.
    failure("decode", lambda: cubby.get_json("badjson"), message=False)

    cubby.set("t", b"v", ttl=60)
    left = cubby.entry("t").expires_in.total_seconds()
    out("ttl", 59 <= left <= 60)
    out("expire none", f"{cubby.expire('t', None)} {cubby.entry('t').expires_in}")
    renewed = cubby.get_and_renew("t", 30).expires_in.total_seconds()
    out("renew", 29 <= renewed <= 30)
    out("delete", f"{cubby.delete('t')} {cubby.delete('t')}")

    with cubby.open("file", "wb", compress=True) as f:
        for i in range(300):
            f.write(b"%04d" % i * 1000)
    info = cubby.info("file")
    out("stream info", f"{info.size} {info.streamed} {info.compressed} {info.stored_size < 100000}")
    with cubby.open("file") as f:
        chunks = list(f)
    out("stream read", f"{sum(len(c) for c in chunks)} {chunks[0][:8].decode()}")
    try:
        with cubby.open("unfinished", "wb") as f:
            f.write(b"x" * 100_000)
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    out("stream abandoned", cubby.exists("unfinished"))
    failure("stream get", lambda: cubby.get("file"))
    out("stream delete", cubby.delete("file"))

    out("clear", ns.clear())
    out("after clear", f"{ns.usage().keys} {list(cubby.namespaces())}")
    out("keys", list(cubby.keys()))
