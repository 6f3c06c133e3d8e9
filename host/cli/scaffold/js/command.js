// A command-style plugin: `cubby run` runs it like a program, with its
// standard output and exit code. Its storage is the workspace the host bound
// it to (`-w`): no run can reach another workspace's keys.

import * as cubby from './cubby.js';

export const run = {
  run() {
    let runs;
    try {
      // An atomic counter: concurrent runs never lose a count.
      runs = new cubby.Counter('runs').increment();
    } catch (e) {
      if (!(e instanceof cubby.StorageError)) throw e;
      console.error(`cannot count this run: ${e.message}`);
      // An exception with a `payload` ends the run with exit status 1.
      throw Object.assign(new Error('failed'), { payload: undefined });
    }
    console.log(`Hello! This is run ${runs} in this workspace.`);
  },
};
