"""notes: a request/response plugin that keeps notes as JSON in its workspace.

The Python port of the Rust ``notes`` example, with the same requests,
responses and stored data (so either can read the other's notes):

- ``{"op":"add","text":"buy milk"}`` -> the new note, ``{"id":1,"text":"buy milk"}``
- ``{"op":"list"}`` -> every note in order of id
- ``{"op":"remove","id":1}`` -> ``{"removed":true}`` (or ``false`` if there was none)

Each note is stored under ``note/<id>`` (the id zero-padded, so that key order
is id order). Ids come from an atomic counter under ``last-id``, so concurrent
``add``s never hand out the same id.

Build (from the repository root; see the README's "Plugins in other languages"):

    componentize-py -d wit -w plugin componentize app \\
        -p example-plugins/py-notes -p guest-sdk/python -o py-notes.wasm
"""

import json

import cubby
from componentize_py_types import Err
from wit_world import exports

LAST_ID = "last-id"
PREFIX = "note/"
EXPECTED = '{"op":"add","text":…}, {"op":"list"} or {"op":"remove","id":…}'


def note_key(id: int) -> str:
    return f"{PREFIX}{id:020}"


def add(text: str) -> dict:
    id = cubby.Counter(LAST_ID).increment()
    note = {"id": id, "text": text}
    # The id is new, so the key must be free; if it is not, fail rather than
    # overwrite a note.
    cubby.set_json(note_key(id), note, if_absent=True)
    return note


def list_notes() -> list:
    notes = []
    for key in cubby.keys(prefix=PREFIX):
        # A note deleted between listing and reading is simply skipped.
        note = cubby.get_json(key)
        if note is not None:
            notes.append(note)
    return notes


def parse(request: bytes) -> dict:
    """The request, checked as strictly as the Rust plugin's serde types."""
    try:
        req = json.loads(request)
    except ValueError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(req, dict):
        raise ValueError("not a JSON object")
    op = req.get("op")
    if op == "add" and isinstance(req.get("text"), str):
        return req
    if op == "list":
        return req
    id = req.get("id")
    if op == "remove" and isinstance(id, int) and not isinstance(id, bool) and 0 <= id < 2**64:
        return req
    raise ValueError(f"unknown or incomplete op {op!r}")


class Handler(exports.Handler):
    def handle(self, request: bytes) -> bytes:
        try:
            req = parse(request)
        except ValueError as e:
            raise Err(f"bad request ({e}); expected {EXPECTED}")
        try:
            if req["op"] == "add":
                response = add(req["text"])
            elif req["op"] == "list":
                response = list_notes()
            else:
                response = {"removed": cubby.delete(note_key(req["id"]))}
        except cubby.StorageError as e:
            raise Err(f"notes: {e}")
        return json.dumps(response, separators=(",", ":"), ensure_ascii=False).encode()
