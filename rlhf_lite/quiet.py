"""Library messages that tell our users nothing, silenced only where they arise (each use says why)."""

from __future__ import annotations

import contextlib
import logging


@contextlib.contextmanager
def logger_silenced(name: str, when: bool = True):
    """Within the block, the library logger `name` passes only errors."""
    log = logging.getLogger(name)
    before = log.level
    if when:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(before)
