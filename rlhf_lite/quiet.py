"""Library messages that tell our users nothing, silenced only where they arise (each use says why)."""

from __future__ import annotations

import contextlib
import logging
import warnings


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


@contextlib.contextmanager
def peft_probe_silenced():
    """PEFT probes transformers 5's deprecated `is_gradient_checkpointing` on every model it wraps;
    the FutureWarning is about PEFT's code, not the user's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        yield
