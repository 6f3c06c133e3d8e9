// notes: a request/response plugin that keeps notes as JSON in its workspace.
//
// The JavaScript port of the Rust `notes` example, with the same requests,
// responses and stored data (so either can read the other's notes):
//
// - {"op":"add","text":"buy milk"} -> the new note, {"id":1,"text":"buy milk"}
// - {"op":"list"} -> every note in order of id
// - {"op":"remove","id":1} -> {"removed":true} (or false if there was none)
//
// Each note is stored under `note/<id>` (the id zero-padded, so that key order
// is id order). Ids come from an atomic counter under `last-id`, so concurrent
// adds never hand out the same id.
//
// Build (from the repository root; see the README's "Plugins in other languages"):
//
//     componentize-js example-plugins/js-notes/notes.js --wit wit \
//         --world-name plugin -d http fetch-event -o js-notes.wasm

import * as cubby from '../../guest-sdk/js/cubby.js';

const LAST_ID = 'last-id';
const PREFIX = 'note/';
const EXPECTED = '{"op":"add","text":…}, {"op":"list"} or {"op":"remove","id":…}';

const noteKey = (id) => PREFIX + String(id).padStart(20, '0');

function add(text) {
  const id = new cubby.Counter(LAST_ID).increment();
  const note = { id, text };
  // The id is new, so the key must be free; if it is not, fail rather than
  // overwrite a note.
  cubby.setJson(noteKey(id), note, { ifAbsent: true });
  return note;
}

function list() {
  const notes = [];
  for (const key of cubby.keys({ prefix: PREFIX })) {
    // A note deleted between listing and reading is simply skipped.
    const note = cubby.getJson(key);
    if (note !== undefined) notes.push(note);
  }
  return notes;
}

/** The request, checked as strictly as the Rust plugin's serde types. */
function parse(request) {
  let req;
  try {
    req = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(request));
  } catch (e) {
    throw new Error(`not JSON: ${e.message}`);
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    throw new Error('not a JSON object');
  }
  if (req.op === 'add' && typeof req.text === 'string') return req;
  if (req.op === 'list') return req;
  if (req.op === 'remove' && Number.isSafeInteger(req.id) && req.id >= 0) return req;
  throw new Error(`unknown or incomplete op ${JSON.stringify(req.op)}`);
}

export const handler = {
  handle(request) {
    let req;
    try {
      req = parse(request);
    } catch (e) {
      throw new cubby.PluginError(`bad request (${e.message}); expected ${EXPECTED}`);
    }
    let response;
    try {
      if (req.op === 'add') response = add(req.text);
      else if (req.op === 'list') response = list();
      else response = { removed: cubby.delete(noteKey(req.id)) };
    } catch (e) {
      if (e instanceof cubby.StorageError) throw new cubby.PluginError(`notes: ${e.message}`);
      throw e;
    }
    return new TextEncoder().encode(JSON.stringify(response));
  },
};
