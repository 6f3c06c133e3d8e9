// A request/response plugin: `cubby call` sends it a request, and the bytes
// it returns are the answer. Its storage is the workspace the host bound it
// to (`-w`): no call can reach another workspace's keys.

import * as cubby from './cubby.js';

export const handler = {
  handle(request) {
    let name;
    try {
      name = new TextDecoder('utf-8', { fatal: true }).decode(request).trim() || 'world';
    } catch {
      throw new cubby.PluginError('the request must be UTF-8 text');
    }
    let greetings;
    try {
      // An atomic counter: concurrent calls never lose a count.
      greetings = new cubby.Counter(`greeted/${name}`).increment();
    } catch (e) {
      // e.kind: 'invalid-key', 'quota-exceeded', ...; anything else traps.
      if (e instanceof cubby.StorageError) {
        throw new cubby.PluginError(`cannot count the greeting: ${e.message}`);
      }
      throw e;
    }
    return new TextEncoder().encode(`Hello, ${name}! (greeting ${greetings})`);
  },
};
