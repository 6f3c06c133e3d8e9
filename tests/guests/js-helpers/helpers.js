// js-helpers: a test guest (world `command`) that runs every helper of
// guest-sdk/js/cubby.js once and prints one line per result, the same lines
// as its Python twin (tests/guests/py-helpers); tests/polyglot.rs compares
// both with what the host stores.

import * as cubby from '../../../guest-sdk/js/cubby.js';

const out = (label, value) => console.log(`${label}: ${value}`);
const hex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
const bytes = (text) => new TextEncoder().encode(text);
// Python's repr of a list of strings or None, so both print alike.
const pyList = (items) =>
  `[${items.map((v) => (v === undefined ? 'None' : `'${v}'`)).join(', ')}]`;
const pyBool = (b) => (b ? 'True' : 'False');
const pyBytes = (b) => (b === undefined ? 'None' : `b'${new TextDecoder().decode(b)}'`);

function failure(label, f, message = true) {
  try {
    f();
    out(label, 'no error');
  } catch (e) {
    if (!(e instanceof cubby.StorageError)) throw e;
    out(label, message ? `${e.kind} | ${e.message}` : e.kind);
  }
}

function scenario() {
  cubby.setString('greeting', 'héllo ☃');
  out('string', cubby.getString('greeting'));
  cubby.setJson('cfg', { a: [1, 2], b: 'x' });
  out('json', JSON.stringify(cubby.getJson('cfg')));
  out('json default', cubby.getJson('missing', 'none'));
  out('missing', cubby.get('missing') === undefined ? 'None' : 'present');
  cubby.set('bin', new Uint8Array([0, 255]));
  out('bytes', hex(cubby.get('bin')));
  out('exists', `${pyBool(cubby.exists('bin'))} ${pyBool(cubby.exists('missing'))}`);
  out('get many', pyList(cubby.getMany(['bin', 'missing']).map((v) => (v === undefined ? v : hex(v)))));

  const ns = new cubby.Namespace('ns');
  for (let start = 0; start < 250; start += 100) {
    const batch = [];
    for (let i = start; i < Math.min(start + 100, 250); i++) {
      batch.push([`k/${String(i).padStart(3, '0')}`, bytes(String(i))]);
    }
    ns.setMany(batch);
  }
  const listed = [...ns.keys({ prefix: 'k/' })];
  out('paged keys', `${listed.length} ${listed[0]} ${listed[listed.length - 1]}`);
  out('all keys', [...ns.keys()].length);
  out('namespaces', pyList([...cubby.namespaces()]));
  out('delete many', ns.deleteMany(['k/000', 'k/001', 'nope']));
  out('ns usage', `${ns.usage().keys} ${cubby.usage('ns').keys}`);

  const c = new cubby.Counter('c');
  out('counter', `${c.add(5)} ${c.decrement()} ${c.get()} ${cubby.increment('c', 10)}`);
  out('counter reset', `${pyBool(c.reset())} ${c.get()}`);
  out('ns counter', ns.counter('hits').increment());
  const value = cubby.increment('neg', -3, { ttl: 60_000 });
  out('negative with ttl', `${value} ${pyBool(cubby.entry('neg').expiresInMs !== undefined)} ${pyBool(cubby.delete('neg'))}`);

  cubby.setString('word', 'abc');
  failure('not a counter', () => new cubby.Counter('word').increment());
  cubby.set('cond', bytes('1'), { ifAbsent: true });
  try {
    cubby.set('cond', bytes('2'), { ifAbsent: true });
    out('conflict', 'no error');
  } catch (e) {
    if (!(e instanceof cubby.StorageError)) throw e;
    out('conflict', `${e.kind} | ${e.message} | ${e.index} ${pyBytes(e.current.value)}`);
  }
  const version = cubby.entry('cond').version;
  out('if version', pyBool(cubby.set('cond', bytes('3'), { ifVersion: version }) > version));
  failure('stale delete', () => cubby.delete('cond', { ifVersion: version }));
  const current = cubby.entry('cond').version;
  out('delete if version', `${pyBool(cubby.delete('cond', { ifVersion: current }))} ${pyBytes(cubby.get('cond'))}`);
  failure('invalid key', () => cubby.get(''));
  const limit = cubby.limits().maxValueBytes;
  failure('too large', () => cubby.set('big', new Uint8Array(limit + 1)));
  failure('zero ttl', () => cubby.set('t', bytes('v'), { ttl: 0 }));
  cubby.set('badjson', bytes('{'));
  // The parser's own message differs between languages: the kind only.
  failure('decode', () => cubby.getJson('badjson'), false);

  cubby.set('t', bytes('v'), { ttl: 60_000 });
  const left = cubby.entry('t').expiresInMs / 1000;
  out('ttl', pyBool(left >= 59 && left <= 60));
  const cleared = cubby.expire('t', null);
  const none = cubby.entry('t').expiresInMs === undefined ? 'None' : 'set';
  out('expire none', `${pyBool(cleared)} ${none}`);
  const renewed = cubby.getAndRenew('t', 30_000).expiresInMs / 1000;
  out('renew', pyBool(renewed >= 29 && renewed <= 30));
  out('delete', `${pyBool(cubby.delete('t'))} ${pyBool(cubby.delete('t'))}`);

  const file = cubby.openWriter('file', { compress: true });
  for (let i = 0; i < 300; i++) file.write(String(i).padStart(4, '0').repeat(1000));
  file.finish();
  const info = cubby.info('file');
  out('stream info', `${info.size} ${pyBool(info.streamed)} ${pyBool(info.compressed)} ${pyBool(info.storedSize < 100000)}`);
  const chunks = [...cubby.openReader('file')];
  const total = chunks.reduce((n, c) => n + c.length, 0);
  out('stream read', `${total} ${new TextDecoder().decode(chunks[0].subarray(0, 8))}`);
  const unfinished = cubby.openWriter('unfinished');
  unfinished.write(new Uint8Array(100_000));
  unfinished.abort();
  out('stream abandoned', pyBool(cubby.exists('unfinished')));
  failure('stream get', () => cubby.get('file'));
  out('stream delete', pyBool(cubby.delete('file')));

  out('clear', ns.clear());
  out('after clear', `${ns.usage().keys} ${pyList([...cubby.namespaces()])}`);
  out('keys', pyList([...cubby.keys()]));
}

export const run = {
  run() {
    try {
      scenario();
    } catch (e) {
      if (!(e instanceof cubby.StorageError)) throw e;
      console.error(`unexpected: ${e.kind}: ${e.message}`);
      // An exception with a `payload` is the `err` of `run`: exit status 1.
      throw Object.assign(new Error('failed'), { payload: undefined });
    }
  },
};
