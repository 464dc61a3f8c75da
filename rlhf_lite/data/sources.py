"""Where a dataset's raw rows come from: a local file or folder, a mirror under a data root, or the hub.

Local data is read here rather than through `datasets.load_dataset` so that every problem can be
reported with its file and line, and so the cache can fingerprint the exact files it came from.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

DEMO_DIR = Path(__file__).parent / "demo"
BUILTIN_DIRS = {"demo": DEMO_DIR, "rlhf-lite/demo": DEMO_DIR}
DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".arrow")
EVAL_NAMES = ("eval", "test", "validation", "valid", "dev")
_SPLIT_IN_NAME = re.compile(r"^(train|test|validation|valid|dev|eval)(?=$|[-_.])")


@dataclass
class RawSplit:
    rows: Sequence[dict]
    where: Callable[[int], str]  # row index -> "file line N" for messages
    columns: set[str]


@dataclass
class Location:
    """A dataset found but not read yet: enough to fingerprint it for the cache."""

    label: str
    path: Path | None = None  # None: load from the hub
    hub_name: str | None = None
    hub_config: str | None = None
    files: list[Path] = field(default_factory=list)


def locate(name: str, path: str | None = None, data_dir: str | None = None, hub_config: str | None = None) -> Location:
    data_dir = data_dir or os.environ.get("RLHF_LITE_DATA_DIR")
    candidates = [path] if path else []
    if name in BUILTIN_DIRS:
        candidates.append(str(BUILTIN_DIRS[name]))
    candidates.append(name)
    if data_dir:
        candidates.append(os.path.join(data_dir, name))
    for cand in candidates:
        if cand and os.path.exists(cand):
            p = Path(cand)
            return Location(label=str(p), path=p, files=_data_files(p))
    if path:
        raise DataError(f"dataset '{name}': path '{path}' does not exist")
    if name == "local/jsonfile":
        raise DataError(
            "dataset 'local/jsonfile' needs a path: a folder holding train.json and "
            "eval.json (or data/train.json, data/eval.json), or a single file"
        )
    if name.startswith((".", "/", "~")) or name.endswith(DATA_SUFFIXES):
        raise DataError(f"dataset path '{name}' does not exist")
    return Location(label=name, hub_name=name, hub_config=hub_config)


def _data_files(path: Path) -> list[Path]:
    """The data files of a folder: those named for a split (train*, test*, eval*, ...) if any."""
    if path.is_file():
        return [path]
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return sorted(p for p in path.rglob("*") if p.is_file())
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix in DATA_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    named = [f for f in files if _SPLIT_IN_NAME.match(f.name)]
    if not (named or files):
        raise DataError(f"{path}: no data files ({', '.join(DATA_SUFFIXES)}) in this directory")
    return named or files


def read(loc: Location) -> dict[str, RawSplit]:
    """All splits of a located dataset, keyed by split name."""
    if loc.path is None:
        return _read_hub(loc)
    if loc.path.is_dir() and ((loc.path / "dataset_dict.json").exists() or (loc.path / "state.json").exists()):
        return _read_saved(loc.path)
    by_split: dict[str, list[Path]] = {}
    for f in loc.files:
        by_split.setdefault(_split_of(f) if loc.path.is_dir() else "train", []).append(f)
    return {split: _concat([_read_file(f) for f in files]) for split, files in by_split.items()}


def _split_of(f: Path) -> str:
    m = _SPLIT_IN_NAME.match(f.name)
    return m.group(1) if m else "train"


def _concat(parts: list[RawSplit]) -> RawSplit:
    if len(parts) == 1:
        return parts[0]
    rows, owners = [], []
    for part in parts:
        owners += [(part, i) for i in range(len(part.rows))]
        rows += list(part.rows)
    return RawSplit(rows, lambda i: owners[i][0].where(owners[i][1]), set().union(*(p.columns for p in parts)))


def _read_file(f: Path) -> RawSplit:
    if f.suffix in (".json", ".jsonl"):
        return read_json(f)
    try:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(f)
            return RawSplit(table.to_pylist(), lambda i: f"{f} row {i}", set(table.column_names))
        if f.suffix == ".csv":
            rows = list(csv.DictReader(io.StringIO(_decode(f, f.read_bytes()), newline="")))
            # Row i of the data is on line i + 2 (after the header).
            return RawSplit(rows, lambda i: f"{f}:{i + 2}", set(rows[0]) if rows else set())
        if f.suffix == ".arrow":
            from datasets import Dataset

            ds = Dataset.from_file(str(f))
            return RawSplit(ds, lambda i: f"{f} row {i}", set(ds.column_names))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{f}: cannot be read as {f.suffix[1:]}: {e}") from None
    raise DataError(f"{f}: unsupported file type (use one of {', '.join(DATA_SUFFIXES)})")


def read_json(f: Path) -> RawSplit:
    """A JSON list or JSON Lines file; malformed text is reported with its line."""
    text = _decode(f, f.read_bytes())
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{f}:{e.lineno}: malformed JSON: {e.msg} (column {e.colno})") from None
        return RawSplit(rows, lambda i: f"{f} item {i}", _columns(rows))
    rows, lines = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{f}:{n}: malformed JSON line: {e.msg} (column {e.colno})") from None
            lines.append(n)
    return RawSplit(rows, lambda i: f"{f}:{lines[i]}", _columns(rows))


def _decode(f: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"{f}:{line}: not valid UTF-8 (byte {data[e.start]:#04x})") from None


def _columns(rows: list) -> set[str]:
    return set().union(*(r.keys() for r in rows if isinstance(r, dict))) if rows else set()


def _read_saved(path: Path) -> dict[str, RawSplit]:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        saved = load_from_disk(str(path))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot be loaded with datasets.load_from_disk: {e}") from None
    if isinstance(saved, Dataset):
        saved = DatasetDict(train=saved)
    return {s: RawSplit(ds, lambda i, s=s: f"{path}[{s}] row {i}", set(ds.column_names)) for s, ds in saved.items()}


def _read_hub(loc: Location) -> dict[str, RawSplit]:
    from datasets import load_dataset

    try:
        dd = load_dataset(loc.hub_name, loc.hub_config)
    except Exception as e:  # the hub client raises many unrelated types; all mean "not reachable"
        from .adapters import ADAPTERS

        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        known = "" if loc.hub_name in ADAPTERS else (f" Known datasets: {', '.join(sorted(ADAPTERS))}.")
        raise DataError(
            f"dataset '{loc.hub_name}' is not a local path and could not be loaded from the hub "
            f"({reason}).{known} Offline? Mirror it to <data_dir>/{loc.hub_name} and set "
            "data_dir or RLHF_LITE_DATA_DIR."
        ) from None
    loc.files = []
    loc.label = loc.hub_name
    return {
        s: RawSplit(ds, lambda i, s=s: f"{loc.hub_name}[{s}] row {i}", set(ds.column_names)) for s, ds in dd.items()
    }


def hub_fingerprint(splits: dict[str, RawSplit]) -> str:
    """datasets' own content fingerprint of each split (changes with the downloaded files)."""
    return json.dumps({s: getattr(r.rows, "_fingerprint", "") for s, r in sorted(splits.items())})
