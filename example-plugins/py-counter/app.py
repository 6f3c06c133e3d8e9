"""counter: a command-style plugin that bumps and prints a counter kept in its
workspace. The Python port of the Rust ``counter`` example (same output, same
stored counter, so the two can take turns): ``cubby run py-counter.wasm -w a``
prints 1, then 2, ... and each workspace counts on its own. An optional
argument names the counter.

Build (from the repository root; see the README's "Plugins in other languages"):

    componentize-py -d wit -w command componentize app \\
        -p example-plugins/py-counter -p guest-sdk/python -o py-counter.wasm
"""

import json
import sys

import cubby
from componentize_py_types import Err
from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        name = sys.argv[1] if len(sys.argv) > 1 else "counter"
        try:
            # Atomic (a missing counter starts at 0), so concurrent runs never
            # lose a count.
            value = cubby.Counter(name).increment()
        except cubby.StorageError as e:
            print(f"counter: cannot bump {json.dumps(name)}: {e}", file=sys.stderr)
            # The command fails (exit status 1).
            raise Err(None)
        print(value)
