"""A benchmark's results file keeps the latest result of every case: a run of some cases leaves the others'."""

from __future__ import annotations

import json
from pathlib import Path


def with_unrun_cases(path: Path, device: str, cases, fresh: dict) -> dict:
    """`fresh` plus the `cases` it lacks from the file at `path`, if that was measured on `device`."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:  # a file cut short: nothing to keep
        saved = {}
    if saved.get("device") != device:
        return fresh
    return {**{c: saved[c] for c in cases if c in saved and c not in fresh}, **fresh}
