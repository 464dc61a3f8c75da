"""Library messages that tell our users nothing, silenced only where they arise (each use says why)."""

from __future__ import annotations

import contextlib
import logging
import warnings


@contextlib.contextmanager
def logger_silenced(name: str, when: bool = True, level: int = logging.ERROR):
    """Within the block, the library logger `name` passes only records of `level` and above."""
    log = logging.getLogger(name)
    before = log.level
    if when:
        log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)


@contextlib.contextmanager
def warning_silenced(message: str, category: type[Warning] = Warning):
    """Within the block, warnings whose text matches the regular expression `message` are dropped."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=message, category=category)
        yield
