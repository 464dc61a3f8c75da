"""The line protocol of the benchmark workers (stdlib only: it also runs in the TRL 1.12 virtualenv).

Importing it moves stdout: the protocol keeps the real stdout, and anything printed by TRL,
transformers or accelerate (the Trainer's PrinterCallback prints every log dict) goes to stderr.
"""

import json
import os
import sys

_PROTOCOL = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr


class Quit(Exception):
    """The parent said "quit" (or closed stdin) while TRL's train() was waiting for it."""


def send(obj: dict) -> None:
    _PROTOCOL.write(json.dumps(obj) + "\n")
    _PROTOCOL.flush()


def wait_for_run() -> None:
    line = sys.stdin.readline().strip()
    if line != "run":
        raise Quit(line)
