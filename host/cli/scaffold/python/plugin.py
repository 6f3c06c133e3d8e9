"""A request/response plugin: `cubby call` sends it a request, and the bytes
it returns are the answer. Its storage is the workspace the host bound it to
(`-w`): no call can reach another workspace's keys."""

import cubby
from componentize_py_types import Err
from wit_world import exports


class Handler(exports.Handler):
    def handle(self, request: bytes) -> bytes:
        try:
            name = request.decode().strip() or "world"
        except UnicodeDecodeError:
            raise Err("the request must be UTF-8 text")
        try:
            # An atomic counter: concurrent calls never lose a count.
            greetings = cubby.Counter(f"greeted/{name}").increment()
        except cubby.StorageError as e:  # e.kind: "invalid-key", "quota-exceeded", ...
            raise Err(f"cannot count the greeting: {e}")
        return f"Hello, {name}! (greeting {greetings})".encode()
