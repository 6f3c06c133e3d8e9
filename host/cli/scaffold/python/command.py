"""A command-style plugin: `cubby run` runs it like a program, with its
arguments (`sys.argv`), standard output and exit code. Its storage is the
workspace the host bound it to (`-w`): no run can reach another workspace's
keys."""

import sys

import cubby
from componentize_py_types import Err
from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        try:
            # An atomic counter: concurrent runs never lose a count.
            runs = cubby.Counter("runs").increment()
        except cubby.StorageError as e:
            print(f"cannot count this run: {e}", file=sys.stderr)
            raise Err(None)  # exit status 1
        print(f"Hello! This is run {runs} in this workspace.")
