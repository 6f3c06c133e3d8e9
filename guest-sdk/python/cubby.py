"""Cubby storage for Python plugins built with componentize-py.

A thin, typed layer over the generated bindings of `cubby:storage/storage`
(``wit_world.imports.storage``), so a plugin reads like ordinary Python::

    import cubby

    cubby.set_json("settings", {"theme": "dark"})
    settings = cubby.get_json("settings")
    visits = cubby.Counter("visits").increment()
    for key in cubby.keys(prefix="note/"):
        ...

Everything acts on the workspace the host bound the instance to; no argument
can name another one. Module-level functions use the default namespace;
``Namespace("name")`` has the same methods for a named one.

Errors: every storage failure raises a ``StorageError`` subclass named after
the WIT error case (``QuotaExceeded``, ``Conflict``, ...). ``e.kind`` is the
WIT case name (``"quota-exceeded"``) and ``str(e)`` the same message the Rust
SDK gives (``"quota exceeded: ..."``). A failed call changes nothing.

Expiry: ``ttl`` arguments are seconds (``int`` or ``float``, rounded up to
whole milliseconds) or a ``datetime.timedelta``; ``None`` means no expiry.

Files: ``open(key, "wb")`` writes a value of any size as a stream (a file
object; nothing is visible until it is closed, and an exception inside the
``with`` block leaves nothing), ``open(key)`` reads one::

    with cubby.open("report.csv", "wb", compress=True) as f:
        for row in rows:
            f.write(row)
    with cubby.open("report.csv") as f:
        for chunk in f:
            ...

Works in both worlds of ``wit/`` (``plugin`` and ``command``): add this
folder to the build with ``componentize-py ... componentize app -p <this folder>``.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

from componentize_py_types import Err
from wit_world.imports import storage as _wit
from wit_world.imports import streams as _streams

__all__ = [
    "Conflict",
    "Counter",
    "DecodeError",
    "Entry",
    "HostError",
    "InvalidArgument",
    "InvalidCursor",
    "InvalidKey",
    "InvalidNamespace",
    "Namespace",
    "NotACounter",
    "Overflow",
    "QuotaExceeded",
    "StorageError",
    "TooManyOperations",
    "StreamReader",
    "StreamWriter",
    "Usage",
    "ValueInfo",
    "ValueTooLarge",
    "clear",
    "delete",
    "delete_many",
    "entry",
    "exists",
    "expire",
    "get",
    "get_and_renew",
    "get_json",
    "get_many",
    "get_string",
    "increment",
    "keys",
    "info",
    "limits",
    "namespaces",
    "open",
    "set",
    "set_json",
    "set_many",
    "set_string",
    "usage",
]

Ttl = Union[int, float, timedelta, None]
_COUNTER = re.compile(rb"[+-]?[0-9]+")
T = TypeVar("T")


# --- errors -----------------------------------------------------------------


class StorageError(Exception):
    """A storage call failed; nothing was changed by it.

    ``kind`` is the WIT error case (``"invalid-key"``, ``"quota-exceeded"``,
    ...), ``detail`` its payload (a message, a limit, or ``None``).
    """

    kind = "storage"

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.detail = detail


class InvalidKey(StorageError):
    """The key is empty or longer than the host's key limit."""

    kind = "invalid-key"


class InvalidNamespace(StorageError):
    """The namespace name is longer than 128 bytes."""

    kind = "invalid-namespace"


class ValueTooLarge(StorageError):
    """The value is longer than the host's value limit (``detail``, bytes)."""

    kind = "value-too-large"


class QuotaExceeded(StorageError):
    """The write would exceed the workspace's quota; nothing was written."""

    kind = "quota-exceeded"


class InvalidCursor(StorageError):
    """A listing cursor the host did not hand out for this listing."""

    kind = "invalid-cursor"


class NotACounter(StorageError):
    """An increment found a stored value that is not a counter."""

    kind = "not-a-counter"


class Overflow(StorageError):
    """An increment would take the counter outside the signed 64-bit range."""

    kind = "overflow"


class TooManyOperations(StorageError):
    """A batch longer than the host's limit (``detail``)."""

    kind = "too-many-operations"


class Conflict(StorageError):
    """A condition did not hold, so nothing was written.

    ``current`` is the entry stored under the key now (``None`` if absent).
    """

    kind = "conflict"

    def __init__(self, message: str, index: int, current: Optional["Entry"]) -> None:
        super().__init__(message, index)
        self.index = index
        self.current = current


class InvalidArgument(StorageError):
    """An argument the host refused, such as a zero time-to-live."""

    kind = "invalid-argument"


class HostError(StorageError):
    """A failure on the host side (WIT ``internal``), not caused by the plugin."""

    kind = "internal"


class DecodeError(StorageError):
    """A stored value is not what the call asked for (UTF-8 text, JSON)."""

    kind = "decode"


def _error(e: Any) -> StorageError:
    """The exception for one WIT ``error`` value (messages as the Rust SDK's)."""
    if isinstance(e, _wit.Error_InvalidKey):
        return InvalidKey(f"invalid key: {e.value}", e.value)
    if isinstance(e, _wit.Error_InvalidNamespace):
        return InvalidNamespace(f"invalid namespace: {e.value}", e.value)
    if isinstance(e, _wit.Error_ValueTooLarge):
        return ValueTooLarge(f"value too large: the limit is {e.value} bytes", e.value)
    if isinstance(e, _wit.Error_QuotaExceeded):
        return QuotaExceeded(f"quota exceeded: {e.value}", e.value)
    if isinstance(e, _wit.Error_InvalidCursor):
        return InvalidCursor("invalid listing cursor")
    if isinstance(e, _wit.Error_NotACounter):
        return NotACounter("the stored value is not a counter")
    if isinstance(e, _wit.Error_Overflow):
        return Overflow("the counter would overflow")
    if isinstance(e, _wit.Error_TooManyOperations):
        return TooManyOperations(f"too many operations: the limit is {e.value}", e.value)
    if isinstance(e, _wit.Error_Conflict):
        current = _entry(e.value.current)
        return Conflict(
            f"condition of operation {e.value.index} does not hold", e.value.index, current
        )
    if isinstance(e, _wit.Error_InvalidArgument):
        return InvalidArgument(f"invalid argument: {e.value}", e.value)
    if isinstance(e, _wit.Error_Internal):
        return HostError(f"storage failure on the host: {e.value}", e.value)
    return StorageError(f"unknown storage error: {e!r}", e)


def _call(f: Callable[..., T], *args: Any) -> T:
    """Calls one storage import, turning its WIT error into an exception."""
    try:
        return f(*args)
    except Err as e:
        raise _error(e.value) from None


# --- values -----------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A stored value with its metadata."""

    value: bytes
    """The stored bytes."""
    version: int
    """Changes on every write of the value and is never reused."""
    expires_in: Optional[timedelta]
    """Time left before the entry expires; ``None`` if it never does."""


def _entry(e: Optional[_wit.Entry]) -> Optional[Entry]:
    if e is None:
        return None
    left = None if e.expires_in_ms is None else timedelta(milliseconds=e.expires_in_ms)
    return Entry(bytes(e.value), e.version, left)


@dataclass(frozen=True)
class Usage:
    """Live keys and bytes (keys plus values) of a namespace or workspace."""

    keys: int
    bytes: int


def _ttl_ms(ttl: Ttl) -> Optional[int]:
    """Milliseconds of a ``ttl`` argument (rounded up, so a positive ttl is never 0 ms)."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise TypeError(f"ttl must be seconds or a timedelta, not {type(ttl).__name__}")
    if not seconds >= 0 or math.isinf(seconds):
        raise InvalidArgument(f"invalid argument: ttl must be positive and finite, got {ttl!r}")
    # 0 goes to the host, which refuses it as the WIT says.
    return math.ceil(seconds * 1000)


def _bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(
        f"value must be bytes, not {type(value).__name__} (use set_string or set_json)"
    )


def _condition(
    if_absent: bool, if_version: Optional[int], if_value: Optional[bytes]
) -> Optional[Any]:
    given = sum([bool(if_absent), if_version is not None, if_value is not None])
    if given > 1:
        raise TypeError("give at most one of if_absent, if_version and if_value")
    if if_absent:
        return _wit.Condition_Absent()
    if if_version is not None:
        return _wit.Condition_VersionEquals(if_version)
    if if_value is not None:
        return _wit.Condition_ValueEquals(_bytes(if_value))
    return None


def _json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON, byte for byte what serde_json and JSON.stringify write."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _paged(fetch: Callable[[Optional[str]], Any]) -> Iterator[str]:
    """The names of a listing, one page (``fetch(cursor)``) at a time, as they are needed."""
    cursor: Optional[str] = None
    while True:
        page = _call(fetch, cursor)
        yield from page.keys
        cursor = page.cursor
        if cursor is None:
            return


# --- streamed values --------------------------------------------------------

_WRITE_BUFFER = 64 * 1024


@dataclass(frozen=True)
class ValueInfo:
    """What is known of a stored value without reading it."""

    size: int
    """The value's length in bytes."""
    stored_size: int
    """What it takes in storage (what usage and quotas count)."""
    streamed: bool
    """Whether it was written as a stream."""
    compressed: bool
    """Whether it is stored compressed."""
    version: int
    """Its version."""
    expires_in: Optional[timedelta]
    """Time left before it expires; ``None`` if it never does."""


def _info(i: Any) -> ValueInfo:
    left = None if i.expires_in_ms is None else timedelta(milliseconds=i.expires_in_ms)
    return ValueInfo(i.size, i.stored_size, i.streamed, i.compressed, i.version, left)


def _drop(handle: Any) -> None:
    """Lets go of a resource handle at once (a writer's unfinished bytes go with it)."""
    handle.__exit__(None, None, None)


class StreamWriter(io.RawIOBase):
    """A value being written (``open(key, "wb")``): a writable binary file.

    ``close()`` (or leaving the ``with`` block) publishes the whole value
    atomically; an exception inside the ``with`` block, or ``discard()``,
    leaves nothing. ``version`` is the value's version once published."""

    def __init__(self, handle: Any) -> None:
        super().__init__()
        self._handle: Any = handle
        self._buffer = bytearray()
        self.version: Optional[int] = None

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if self._handle is None:
            raise ValueError("write to a closed stream")
        data = bytes(b)
        self._buffer += data
        if len(self._buffer) >= _WRITE_BUFFER:
            self.flush()
        return len(data)

    def flush(self) -> None:
        """Hands the gathered bytes to the host (nothing is visible before ``close``)."""
        if self._handle is not None and self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            _call(self._handle.write, data)

    def close(self) -> None:
        """Publishes the value (once); raises the storage's error if it is refused."""
        if self._handle is None:
            return
        try:
            self.flush()
            self.version = _call(self._handle.finish)
        finally:
            _drop(self._handle)
            self._handle = None
            super().close()

    def discard(self) -> None:
        """Ends the write without publishing anything."""
        if self._handle is not None:
            _drop(self._handle)
            self._handle = None
        super().close()

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


class StreamReader(io.RawIOBase):
    """A stored value being read (``open(key)``): a readable binary file,
    and an iterator over the value's chunks. Reaching the end checks the
    whole value against its checksum."""

    def __init__(self, handle: Any) -> None:
        super().__init__()
        self._handle: Any = handle
        self._chunk = b""
        self._at = 0
        self._done = False
        self.info: ValueInfo = _info(handle.info())

    def readable(self) -> bool:
        return True

    def read_chunk(self) -> bytes:
        """The next bytes of the value (at most the host's chunk size); ``b""`` at the end."""
        if self._at < len(self._chunk):
            rest, self._chunk, self._at = self._chunk[self._at :], b"", 0
            return rest
        if self._done or self._handle is None:
            return b""
        chunk = bytes(_call(self._handle.read, 1 << 62))
        self._done = not chunk
        return chunk

    def readinto(self, b: Any) -> int:
        if self._at == len(self._chunk):
            self._chunk, self._at = self.read_chunk(), 0
        n = min(len(b), len(self._chunk) - self._at)
        b[:n] = self._chunk[self._at : self._at + n]
        self._at += n
        return n

    def __iter__(self) -> Iterator[bytes]:  # type: ignore[override]
        while True:
            chunk = self.read_chunk()
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        if self._handle is not None:
            _drop(self._handle)
            self._handle = None
        super().close()


# --- namespaces ---------------------------------------------------------------


class Namespace:
    """One namespace of the workspace (``""`` is the default space).

    Namespaces need no creating: one exists while it holds a key.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    # reads

    def get(self, key: str) -> Optional[bytes]:
        """The value of ``key``, or ``None`` if it is absent or expired."""
        value = _call(_wit.get, self.name, key)
        return None if value is None else bytes(value)

    def get_string(self, key: str) -> Optional[str]:
        """The value of ``key`` as UTF-8 text; ``DecodeError`` if it is not."""
        value = self.get(key)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(f"value of key {json.dumps(key)} cannot be decoded: {e}", key) from None

    def get_json(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` parsed as JSON, or ``default`` if it is absent."""
        value = self.get(key)
        if value is None:
            return default
        try:
            return json.loads(value)
        except (UnicodeDecodeError, ValueError) as e:
            raise DecodeError(f"value of key {json.dumps(key)} cannot be decoded: {e}", key) from None

    def entry(self, key: str) -> Optional[Entry]:
        """The value of ``key`` with its version and time left."""
        return _entry(_call(_wit.get_entry, self.name, key))

    def get_and_renew(self, key: str, ttl: Ttl) -> Optional[Entry]:
        """Reads ``key`` and, if present, makes it expire ``ttl`` from now (sliding expiry)."""
        if ttl is None:
            raise TypeError("get_and_renew needs a ttl")
        return _entry(_call(_wit.get_and_renew, self.name, key, _ttl_ms(ttl)))

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a live value."""
        return _call(_wit.exists, self.name, key)

    def get_many(self, keys: Sequence[str]) -> List[Optional[bytes]]:
        """The values of several keys, read from one snapshot."""
        values = _call(_wit.get_many, self.name, list(keys))
        return [None if v is None else bytes(v) for v in values]

    # writes

    def set(
        self,
        key: str,
        value: bytes,
        *,
        ttl: Ttl = None,
        if_absent: bool = False,
        if_version: Optional[int] = None,
        if_value: Optional[bytes] = None,
    ) -> int:
        """Stores ``value`` under ``key`` and returns its new version.

        With ``ttl`` the entry expires that long from now. At most one
        condition may be given; if it does not hold, ``Conflict`` is raised
        and nothing is written.
        """
        options = _wit.WriteOptions(_ttl_ms(ttl), _condition(if_absent, if_version, if_value))
        return _call(_wit.set, self.name, key, _bytes(value), options)

    def set_string(self, key: str, value: str, **options: Any) -> int:
        """Stores ``value`` as UTF-8 text; options as for ``set``."""
        if not isinstance(value, str):
            raise TypeError(f"value must be str, not {type(value).__name__}")
        return self.set(key, value.encode("utf-8"), **options)

    def set_json(self, key: str, value: Any, **options: Any) -> int:
        """Stores ``value`` as compact JSON; options as for ``set``."""
        return self.set(key, _json_bytes(value), **options)

    def delete(self, key: str, *, if_version: Optional[int] = None) -> bool:
        """Removes ``key``; ``True`` if it was there. With ``if_version``, only that version."""
        condition = None if if_version is None else _wit.Condition_VersionEquals(if_version)
        return _call(_wit.delete, self.name, key, condition)

    def expire(self, key: str, ttl: Ttl) -> bool:
        """Sets (or with ``None`` removes) the expiry of ``key``; ``False`` if absent."""
        return _call(_wit.expire, self.name, key, _ttl_ms(ttl))

    def increment(self, key: str, delta: int = 1, *, ttl: Ttl = None) -> int:
        """Adds ``delta`` to the counter under ``key`` atomically (a missing one is 0).

        ``ttl`` applies only when the call creates the counter.
        """
        return _call(_wit.increment, self.name, key, delta, _ttl_ms(ttl))

    def counter(self, key: str, *, ttl: Ttl = None) -> "Counter":
        """A ``Counter`` under ``key`` in this namespace."""
        return Counter(key, namespace=self, ttl=ttl)

    def set_many(self, entries: Sequence[Tuple[str, bytes]]) -> None:
        """Stores several entries in one atomic transaction."""
        _call(_wit.set_many, self.name, [(k, _bytes(v)) for k, v in entries])

    def delete_many(self, keys: Sequence[str]) -> int:
        """Removes several keys atomically; the number that were there."""
        return _call(_wit.delete_many, self.name, list(keys))

    def clear(self) -> int:
        """Removes every key of this namespace (in host-sized steps); the number removed."""
        removed = 0
        while True:
            step = _call(_wit.clear, self.name)
            removed += step.deleted
            if step.done:
                return removed

    # listing

    def keys(self, prefix: Optional[str] = None) -> Iterator[str]:
        """Every key (with ``prefix``, those starting with it) in byte order.

        Pages are fetched as the iteration goes, so taking a few keys of a
        large namespace costs one page.
        """
        return _paged(lambda cursor: _wit.list_keys(self.name, prefix, cursor, None))

    def open(
        self,
        key: str,
        mode: str = "rb",
        *,
        compress: bool = False,
        ttl: Ttl = None,
        if_absent: bool = False,
        if_version: Optional[int] = None,
    ) -> Any:
        """A value of any size as a file: ``"rb"`` reads it (``KeyError`` if
        there is none), ``"wb"`` writes it as a stream, published when the
        file is closed. ``compress``, ``ttl`` and the conditions apply to
        writing."""
        if mode == "rb":
            handle = _call(_streams.open_reader, self.name, key)
            if handle is None:
                raise KeyError(key)
            return StreamReader(handle)
        if mode == "wb":
            options = _streams.StreamOptions(
                _ttl_ms(ttl), _condition(if_absent, if_version, None), compress
            )
            return StreamWriter(_call(_streams.open_writer, self.name, key, options))
        raise ValueError(f'mode must be "rb" or "wb", not {mode!r}')

    def info(self, key: str) -> Optional[ValueInfo]:
        """The value's size and metadata without reading it, or ``None``."""
        found = _call(_streams.info, self.name, key)
        return None if found is None else _info(found)

    def usage(self) -> Usage:
        """Live keys and bytes of this namespace."""
        counts = _call(_wit.usage, self.name)
        return Usage(counts.keys, counts.bytes)


class Counter:
    """An atomic 64-bit counter stored under one key.

    ``ttl`` applies only when an operation creates the counter.
    """

    def __init__(self, key: str, *, namespace: Optional[Namespace] = None, ttl: Ttl = None):
        self.key = key
        self.namespace = namespace or _DEFAULT
        self._ttl_ms = _ttl_ms(ttl)

    def add(self, delta: int) -> int:
        """Adds ``delta`` and returns the new value."""
        return _call(_wit.increment, self.namespace.name, self.key, delta, self._ttl_ms)

    def increment(self) -> int:
        """Adds one and returns the new value."""
        return self.add(1)

    def decrement(self) -> int:
        """Subtracts one and returns the new value."""
        return self.add(-1)

    def get(self) -> int:
        """The current value (0 if the counter does not exist)."""
        value = self.namespace.get(self.key)
        if value is None:
            return 0
        # A counter is stored as its value in decimal ASCII (see the WIT).
        if _COUNTER.fullmatch(value):
            number = int(value)
            if -(2**63) <= number < 2**63:
                return number
        raise NotACounter("the stored value is not a counter")

    def reset(self) -> bool:
        """Removes the counter; ``True`` if it existed."""
        return self.namespace.delete(self.key)


# --- the default namespace and the workspace ----------------------------------

_DEFAULT = Namespace("")

get = _DEFAULT.get
get_string = _DEFAULT.get_string
get_json = _DEFAULT.get_json
entry = _DEFAULT.entry
get_and_renew = _DEFAULT.get_and_renew
exists = _DEFAULT.exists
get_many = _DEFAULT.get_many
set = _DEFAULT.set
set_string = _DEFAULT.set_string
set_json = _DEFAULT.set_json
delete = _DEFAULT.delete
expire = _DEFAULT.expire
increment = _DEFAULT.increment
set_many = _DEFAULT.set_many
delete_many = _DEFAULT.delete_many
clear = _DEFAULT.clear
keys = _DEFAULT.keys
open = _DEFAULT.open
info = _DEFAULT.info


def namespaces() -> Iterator[str]:
    """The names of the workspace's named namespaces that hold keys, in byte order."""
    return _paged(lambda cursor: _wit.list_namespaces(cursor, None))


def usage(namespace: Optional[str] = None) -> Usage:
    """Live keys and bytes of the whole workspace, or of one namespace."""
    counts = _call(_wit.usage, namespace)
    return Usage(counts.keys, counts.bytes)


def limits() -> _wit.WorkspaceLimits:
    """The host's limits for this workspace (quota, key, value, batch and page sizes)."""
    return _wit.limits()
