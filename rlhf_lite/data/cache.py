"""A cache of adapted rows, keyed by everything that changes them.

DeepSpeed-Chat keys its cache by dataset name only, so an edited data file is silently ignored.
Here the key holds the content hash of every source file, the adapters' code, the split and the
seed. Entries are plain JSON (never pickle) and are written to a temporary folder then renamed,
so a crash leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..atomic import staged_dir
from ..cache_dir import cache_root

_CODE = [Path(__file__).with_name(n) for n in ("rows.py", "adapters.py", "sources.py")]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_key(parts: dict) -> str:
    parts = dict(parts, code=[file_digest(p) for p in _CODE])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def load(key: str, cache_dir: str | None = None) -> tuple[list[dict], dict] | None:
    entry = cache_root(cache_dir) / "data" / key
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        with open(entry / "rows.jsonl", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
    except (OSError, ValueError):
        return None
    return (rows, meta) if len(rows) == meta.get("n_rows") else None


def store(key: str, rows: list[dict], meta: dict, cache_dir: str | None = None) -> None:
    try:
        with staged_dir(cache_root(cache_dir) / "data" / key) as tmp:
            with open(tmp / "rows.jsonl", "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            (tmp / "meta.json").write_text(
                json.dumps(dict(meta, n_rows=len(rows)), ensure_ascii=False), encoding="utf-8"
            )
    except (OSError, ValueError):  # ValueError: text JSON cannot encode
        pass  # a cache we cannot write is only slower, not wrong
