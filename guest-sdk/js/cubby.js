// Cubby storage for JavaScript plugins built with componentize-js.
//
// A thin layer over the imported `cubby:storage/storage` interface, so that a
// plugin reads like ordinary JavaScript:
//
//     import * as cubby from './cubby.js';
//
//     cubby.setJson('settings', { theme: 'dark' });
//     const settings = cubby.getJson('settings');
//     const visits = new cubby.Counter('visits').increment();
//     for (const key of cubby.keys({ prefix: 'note/' })) { ... }
//
// Everything acts on the workspace the host bound the instance to; no argument
// can name another one. Module-level functions use the default namespace;
// `new Namespace('name')` has the same methods for a named one.
//
// Errors: a failed storage call throws a `StorageError` whose `kind` is the WIT
// error case (`'quota-exceeded'`, ...) and whose `message` is the one the Rust
// SDK gives (`'quota exceeded: ...'`). A failed call changes nothing.
// `PluginError` is what a handler throws to return an error to the caller.
//
// Files: `openWriter(key)` writes a value of any size as a stream (`write`
// pieces, then `finish()`: nothing is visible before, everything after;
// `abort()` or an unfinished writer leaves nothing), `openReader(key)` reads
// one a chunk at a time (`for (const chunk of reader) { ... }`).
//
// Numbers: counters are JavaScript numbers (a result outside the safe integer
// range throws a RangeError rather than lose precision); versions are BigInts,
// as the WIT's u64. Expiry: `ttl` options are milliseconds, `null`/`undefined`
// meaning none.

import * as wit from 'cubby:storage/storage@0.2.0';
import * as streams from 'cubby:storage/streams@0.2.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * The error thrown by a failed storage call; nothing was changed by it.
 *
 * `kind` is the WIT error case (`'invalid-key'`, `'quota-exceeded'`, ...,
 * `'internal'` for a failure on the host, `'decode'` for a stored value that
 * is not the text or JSON asked for); `detail` is its payload. A conflict
 * also has `index` and `current` (the entry stored now, or `undefined`).
 *
 * Thrown out of a handler unchanged, it becomes the call's error message
 * (its `payload` is the message).
 */
export class StorageError extends Error {
  constructor(kind, message, detail) {
    super(message);
    this.name = 'StorageError';
    this.kind = kind;
    this.detail = detail;
    // componentize-js returns an exception's own `payload` as the export's
    // error value (`result<_, string>`); any other Error would trap.
    Object.defineProperty(this, 'payload', { value: message, enumerable: false });
  }
}

/**
 * What a request/response handler throws to answer with an error: the caller
 * gets `message` as the plugin's error.
 */
export class PluginError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PluginError';
    Object.defineProperty(this, 'payload', { value: message, enumerable: false });
  }
}

function entryOf(e) {
  if (e === undefined || e === null) return undefined;
  return {
    value: e.value,
    version: e.version,
    expiresInMs: e.expiresInMs === undefined ? undefined : Number(e.expiresInMs),
  };
}

/** The StorageError for one WIT `error` value (messages as the Rust SDK's). */
function storageError(e) {
  const v = e.val;
  switch (e.tag) {
    case 'invalid-key':
      return new StorageError(e.tag, `invalid key: ${v}`, v);
    case 'invalid-namespace':
      return new StorageError(e.tag, `invalid namespace: ${v}`, v);
    case 'value-too-large':
      return new StorageError(e.tag, `value too large: the limit is ${v} bytes`, v);
    case 'quota-exceeded':
      return new StorageError(e.tag, `quota exceeded: ${v}`, v);
    case 'invalid-cursor':
      return new StorageError(e.tag, 'invalid listing cursor');
    case 'not-a-counter':
      return new StorageError(e.tag, 'the stored value is not a counter');
    case 'overflow':
      return new StorageError(e.tag, 'the counter would overflow');
    case 'too-many-operations':
      return new StorageError(e.tag, `too many operations: the limit is ${v}`, v);
    case 'conflict': {
      const err = new StorageError(e.tag, `condition of operation ${v.index} does not hold`, v);
      err.index = v.index;
      err.current = entryOf(v.current);
      return err;
    }
    case 'invalid-argument':
      return new StorageError(e.tag, `invalid argument: ${v}`, v);
    case 'internal':
      return new StorageError(e.tag, `storage failure on the host: ${v}`, v);
    default:
      return new StorageError(String(e.tag), `unknown storage error: ${e.tag}`, v);
  }
}

/** Calls one storage import, turning its WIT error into a StorageError. */
function call(f, ...args) {
  try {
    return f(...args);
  } catch (e) {
    // The bindings throw the `err` case as an Error with a `payload`.
    if (e && typeof e === 'object' && e.payload && typeof e.payload.tag === 'string') {
      throw storageError(e.payload);
    }
    throw e;
  }
}

function ttlMs(ttl) {
  if (ttl === undefined || ttl === null) return undefined;
  const ms = typeof ttl === 'bigint' ? ttl : Math.ceil(Number(ttl));
  // 0 goes to the host, which refuses it as the WIT says.
  if (!(ms >= 0) || ms === Infinity) {
    throw new StorageError('invalid-argument', `invalid argument: ttl must be positive and finite, got ${ttl}`, ttl);
  }
  return BigInt(ms);
}

function bytesOf(value) {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError('value must be a Uint8Array (use setString or setJson for text and JSON)');
}

function conditionOf({ ifAbsent, ifVersion, ifValue } = {}) {
  const given = [ifAbsent ? 1 : 0, ifVersion !== undefined ? 1 : 0, ifValue !== undefined ? 1 : 0];
  if (given.reduce((a, b) => a + b) > 1) {
    throw new TypeError('give at most one of ifAbsent, ifVersion and ifValue');
  }
  if (ifAbsent) return { tag: 'absent' };
  if (ifVersion !== undefined) return { tag: 'version-equals', val: BigInt(ifVersion) };
  if (ifValue !== undefined) return { tag: 'value-equals', val: bytesOf(ifValue) };
  return undefined;
}

/**
 * `increment` of the WIT. componentize-js 0.23 traps when it passes a
 * negative `s64` argument to an import (ComponentizeJS issue #343), so a
 * negative delta goes through a one-operation transaction instead, whose
 * `s64` travels through memory. With a `ttl`, an increment by 0 first
 * creates a missing counter with that expiry.
 */
function incrementBy(namespace, key, delta, ttl) {
  const d = BigInt(delta);
  if (d >= 0n) return call(wit.increment, namespace, key, d, ttl);
  if (ttl !== undefined) call(wit.increment, namespace, key, 0n, ttl);
  const action = { tag: 'increment', val: d };
  const [outcome] = call(wit.transaction, [{ namespace, key, condition: undefined, action }]);
  return outcome.val;
}

/** The names of a listing, one page (`fetch(cursor)`) at a time, as they are needed. */
function* paged(fetch) {
  let cursor;
  do {
    const page = call(fetch, cursor);
    yield* page.keys;
    cursor = page.cursor;
  } while (cursor !== undefined && cursor !== null);
}

function counterValue(n) {
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`counter value ${n} is outside JavaScript's safe integer range`);
  }
  return Number(n);
}

/**
 * One namespace of the workspace (`''` is the default space). Namespaces
 * need no creating: one exists while it holds a key.
 */
export class Namespace {
  constructor(name = '') {
    this.name = name;
  }

  /** The value of `key` (a Uint8Array), or `undefined` if absent or expired. */
  get(key) {
    return call(wit.get, this.name, key) ?? undefined;
  }

  /** The value of `key` as UTF-8 text, or `undefined`. */
  getString(key) {
    const value = this.get(key);
    if (value === undefined) return undefined;
    try {
      return decoder.decode(value);
    } catch (e) {
      throw new StorageError('decode', `value of key ${JSON.stringify(key)} cannot be decoded: ${e.message}`, key);
    }
  }

  /** The value of `key` parsed as JSON, or `fallback` if it is absent. */
  getJson(key, fallback = undefined) {
    const text = this.getString(key);
    if (text === undefined) return fallback;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new StorageError('decode', `value of key ${JSON.stringify(key)} cannot be decoded: ${e.message}`, key);
    }
  }

  /** `{ value, version, expiresInMs }` of `key`, or `undefined`. */
  entry(key) {
    return entryOf(call(wit.getEntry, this.name, key));
  }

  /** Reads `key` and, if present, makes it expire `ttl` ms from now (sliding expiry). */
  getAndRenew(key, ttl) {
    if (ttl === undefined || ttl === null) throw new TypeError('getAndRenew needs a ttl');
    return entryOf(call(wit.getAndRenew, this.name, key, ttlMs(ttl)));
  }

  /** Whether `key` holds a live value. */
  exists(key) {
    return call(wit.exists, this.name, key);
  }

  /** The values of several keys (each a Uint8Array or `undefined`), from one snapshot. */
  getMany(keys) {
    return call(wit.getMany, this.name, [...keys]).map((v) => v ?? undefined);
  }

  /**
   * Stores `value` (a Uint8Array) under `key`; returns the new version.
   * Options: `ttl` (ms), and at most one condition of `ifAbsent: true`,
   * `ifVersion`, `ifValue` (a failed one throws a `'conflict'` StorageError
   * and writes nothing).
   */
  set(key, value, options = {}) {
    const opts = { ttlMs: ttlMs(options.ttl), condition: conditionOf(options) };
    return call(wit.set, this.name, key, bytesOf(value), opts);
  }

  /** Stores `value` as UTF-8 text; options as for `set`. */
  setString(key, value, options = {}) {
    if (typeof value !== 'string') throw new TypeError('value must be a string');
    return this.set(key, encoder.encode(value), options);
  }

  /** Stores `value` as JSON (JSON.stringify); options as for `set`. */
  setJson(key, value, options = {}) {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError('value cannot be encoded as JSON');
    return this.set(key, encoder.encode(text), options);
  }

  /** Removes `key`; `true` if it was there. `{ ifVersion }` removes only that version. */
  delete(key, { ifVersion } = {}) {
    const condition = ifVersion === undefined ? undefined : { tag: 'version-equals', val: BigInt(ifVersion) };
    return call(wit.delete, this.name, key, condition);
  }

  /** Sets (or with `null` removes) the expiry of `key`, in ms; `false` if absent. */
  expire(key, ttl) {
    return call(wit.expire, this.name, key, ttlMs(ttl));
  }

  /** Adds `delta` to the counter under `key` atomically (a missing one is 0). */
  increment(key, delta = 1, { ttl } = {}) {
    return counterValue(incrementBy(this.name, key, delta, ttlMs(ttl)));
  }

  /** A Counter under `key` in this namespace. */
  counter(key, options = {}) {
    return new Counter(key, { ...options, namespace: this });
  }

  /** Stores several `[key, Uint8Array]` entries in one atomic transaction. */
  setMany(entries) {
    call(wit.setMany, this.name, [...entries].map(([k, v]) => [k, bytesOf(v)]));
  }

  /** Removes several keys atomically; the number that were there. */
  deleteMany(keys) {
    return call(wit.deleteMany, this.name, [...keys]);
  }

  /** Removes every key of this namespace (in host-sized steps); the number removed. */
  clear() {
    let removed = 0;
    for (;;) {
      const step = call(wit.clear, this.name);
      removed += step.deleted;
      if (step.done) return removed;
    }
  }

  /**
   * Every key (with `{ prefix }`, those starting with it) in byte order. Pages
   * are fetched as the iteration goes, so taking a few keys of a large
   * namespace costs one page.
   */
  keys({ prefix } = {}) {
    return paged((cursor) => wit.listKeys(this.name, prefix, cursor, undefined));
  }

  /**
   * Starts writing a value of any size under `key` as a stream; options:
   * `{ ttl, compress, ifAbsent, ifVersion }`.
   */
  openWriter(key, { ttl, compress = false, ...condition } = {}) {
    const options = { ttlMs: ttlMs(ttl), condition: conditionOf(condition), compress };
    return new StreamWriter(call(streams.openWriter, this.name, key, options));
  }

  /** Opens the value under `key` for reading as a stream, or `undefined`. */
  openReader(key) {
    const handle = call(streams.openReader, this.name, key);
    return handle === undefined ? undefined : new StreamReader(handle);
  }

  /**
   * The value's `{ size, storedSize, streamed, compressed, version,
   * expiresInMs }` without reading it, or `undefined`.
   */
  info(key) {
    const i = call(streams.info, this.name, key);
    return i === undefined ? undefined : infoOf(i);
  }

  /** `{ keys, bytes }` (numbers) of this namespace. */
  usage() {
    const u = call(wit.usage, this.name);
    return { keys: Number(u.keys), bytes: Number(u.bytes) };
  }
}

/** Bytes a StreamWriter gathers before it hands them to the host. */
const WRITE_BUFFER = 64 * 1024;

function infoOf(i) {
  return {
    size: Number(i.size),
    storedSize: Number(i.storedSize),
    streamed: i.streamed,
    compressed: i.compressed,
    version: i.version,
    expiresInMs: i.expiresInMs === undefined ? undefined : Number(i.expiresInMs),
  };
}

/** Lets go of a resource handle now, where the runtime offers it. */
function release(handle) {
  const dispose = handle && handle[Symbol.dispose];
  if (typeof dispose === 'function') dispose.call(handle);
}

/**
 * A value being written as a stream (`openWriter`): `write` pieces
 * (Uint8Array or string), then `finish()`, which publishes the whole value
 * atomically and returns its version (a BigInt). Nothing is visible before;
 * `abort()`, or a writer left unfinished, leaves nothing.
 */
export class StreamWriter {
  constructor(handle) {
    this.handle = handle;
    this.buffered = [];
    this.size = 0;
  }

  write(piece) {
    if (!this.handle) throw new StorageError('invalid-argument', 'invalid argument: the writer is finished');
    const bytes = typeof piece === 'string' ? encoder.encode(piece) : bytesOf(piece);
    this.buffered.push(bytes);
    this.size += bytes.length;
    if (this.size >= WRITE_BUFFER) this.flush();
  }

  /** Hands the gathered bytes to the host (nothing is visible before `finish`). */
  flush() {
    if (!this.handle || this.size === 0) return;
    const all = new Uint8Array(this.size);
    let at = 0;
    for (const b of this.buffered) {
      all.set(b, at);
      at += b.length;
    }
    this.buffered = [];
    this.size = 0;
    call(() => this.handle.write(all));
  }

  finish() {
    this.flush();
    const handle = this.handle;
    this.handle = undefined;
    try {
      return call(() => handle.finish());
    } finally {
      release(handle);
    }
  }

  abort() {
    const handle = this.handle;
    this.handle = undefined;
    this.buffered = [];
    this.size = 0;
    release(handle);
  }
}

/**
 * A stored value being read (`openReader`), a chunk at a time: `read()`
 * returns the next Uint8Array (empty at the end), and the reader iterates
 * over its chunks. Reaching the end checks the value against its checksum.
 */
export class StreamReader {
  constructor(handle) {
    this.handle = handle;
    this.info = infoOf(handle.info());
    this.done = false;
  }

  read() {
    if (this.done) return new Uint8Array(0);
    const chunk = call(() => this.handle.read(1n << 62n));
    if (chunk.length === 0) {
      this.done = true;
      release(this.handle);
    }
    return chunk;
  }

  /** The whole value (only for values that fit in memory). */
  readAll() {
    const chunks = [...this];
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return all;
  }

  *[Symbol.iterator]() {
    for (;;) {
      const chunk = this.read();
      if (chunk.length === 0) return;
      yield chunk;
    }
  }
}

/**
 * An atomic 64-bit counter stored under one key. `ttl` (ms) applies only
 * when an operation creates the counter.
 */
export class Counter {
  constructor(key, { namespace = defaultNamespace, ttl } = {}) {
    this.key = key;
    this.namespace = namespace;
    this.ttlMs = ttlMs(ttl);
  }

  /** Adds `delta` and returns the new value. */
  add(delta) {
    return counterValue(incrementBy(this.namespace.name, this.key, delta, this.ttlMs));
  }

  /** Adds one and returns the new value. */
  increment() {
    return this.add(1);
  }

  /** Subtracts one and returns the new value. */
  decrement() {
    return this.add(-1);
  }

  /** The current value (0 if the counter does not exist). */
  get() {
    const value = this.namespace.get(this.key);
    if (value === undefined) return 0;
    // A counter is stored as its value in decimal ASCII (see the WIT); a
    // long value is not one, and is not spread into arguments.
    const text = value.length <= 64 ? String.fromCharCode(...value) : '';
    if (!/^[+-]?[0-9]+$/.test(text)) throw storageError({ tag: 'not-a-counter' });
    const n = BigInt(text);
    if (n >= 2n ** 63n || n < -(2n ** 63n)) throw storageError({ tag: 'not-a-counter' });
    return counterValue(n);
  }

  /** Removes the counter; `true` if it existed. */
  reset() {
    return this.namespace.delete(this.key);
  }
}

const defaultNamespace = new Namespace('');

/** The value of `key` in the default namespace. */
export const get = (key) => defaultNamespace.get(key);
/** The value of `key` as UTF-8 text. */
export const getString = (key) => defaultNamespace.getString(key);
/** The value of `key` parsed as JSON, or `fallback`. */
export const getJson = (key, fallback) => defaultNamespace.getJson(key, fallback);
/** The entry of `key` with its version and time left. */
export const entry = (key) => defaultNamespace.entry(key);
/** Reads `key` and renews its expiry to `ttl` ms. */
export const getAndRenew = (key, ttl) => defaultNamespace.getAndRenew(key, ttl);
/** Whether `key` holds a live value. */
export const exists = (key) => defaultNamespace.exists(key);
/** The values of several keys from one snapshot. */
export const getMany = (keys) => defaultNamespace.getMany(keys);
/** Stores bytes under `key`; see `Namespace#set`. */
export const set = (key, value, options) => defaultNamespace.set(key, value, options);
/** Stores text under `key`. */
export const setString = (key, value, options) => defaultNamespace.setString(key, value, options);
/** Stores JSON under `key`. */
export const setJson = (key, value, options) => defaultNamespace.setJson(key, value, options);
/** Removes `key`; `true` if it was there (`cubby.delete(key)`). */
const deleteKey = (key, options) => defaultNamespace.delete(key, options);
export { deleteKey as delete };
/** Sets or removes the expiry of `key`. */
export const expire = (key, ttl) => defaultNamespace.expire(key, ttl);
/** Adds `delta` to the counter under `key`. */
export const increment = (key, delta, options) => defaultNamespace.increment(key, delta, options);
/** Stores several entries atomically. */
export const setMany = (entries) => defaultNamespace.setMany(entries);
/** Removes several keys atomically. */
export const deleteMany = (keys) => defaultNamespace.deleteMany(keys);
/** Removes every key of the default namespace. */
export const clear = () => defaultNamespace.clear();
/** The keys of the default namespace, lazily paged. */
export const keys = (options) => defaultNamespace.keys(options);
/** `Namespace.openWriter` of the default namespace. */
export const openWriter = (key, options) => defaultNamespace.openWriter(key, options);
/** `Namespace.openReader` of the default namespace. */
export const openReader = (key) => defaultNamespace.openReader(key);
/** `Namespace.info` of the default namespace. */
export const info = (key) => defaultNamespace.info(key);

/** The names of the workspace's named namespaces that hold keys, lazily paged. */
export function namespaces() {
  return paged((cursor) => wit.listNamespaces(cursor, undefined));
}

/** `{ keys, bytes }` of the whole workspace, or of one namespace. */
export function usage(namespace) {
  const u = call(wit.usage, namespace);
  return { keys: Number(u.keys), bytes: Number(u.bytes) };
}

/** The host's limits for this workspace (quota, key, value, batch and page sizes). */
export function limits() {
  return wit.limits();
}
