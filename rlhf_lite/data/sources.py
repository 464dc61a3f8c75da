"""Where a dataset's raw splits come from: a local file or folder, a `save_to_disk` folder or the hub."""

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
from .adapters import ADAPTERS

BUILTIN_DIRS = dict.fromkeys(("demo", "rlhf-lite/demo"), Path(__file__).parent / "demo")
DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".arrow")
EVAL_NAMES = ("eval", "test", "validation", "valid", "dev")  # in the order an eval split is looked for
_SPLIT_IN_NAME = re.compile(rf"^(train|{'|'.join(EVAL_NAMES)})(?=$|[-_.])")


@dataclass
class RawSplit:
    rows: Sequence[dict]
    where: Callable[[int], str]  # row index -> "file line N" for messages
    columns: set[str]


@dataclass
class Location:
    label: str
    path: Path | None = None  # None: load `label` from the hub
    files: list[Path] = field(default_factory=list)


def locate(name: str, path: str | None = None, data_dir: str | None = None) -> Location:
    data_dir = data_dir or os.environ.get("RLHF_LITE_DATA_DIR")
    for cand in filter(None, [path, BUILTIN_DIRS.get(name), name, data_dir and os.path.join(data_dir, name)]):
        if os.path.exists(cand):
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
    return Location(label=name)


def _saved(path: Path) -> bool:  # written by datasets' save_to_disk
    return (path / "dataset_dict.json").exists() or (path / "state.json").exists()


def _data_files(path: Path) -> list[Path]:
    """The data files of a folder: those named for a split (train*, test*, eval*, ...) if any."""
    if path.is_file():
        return [path]
    if _saved(path):
        return sorted(p for p in path.rglob("*") if p.is_file())
    hidden = lambda p: any(part.startswith(".") for part in p.relative_to(path).parts)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES and not hidden(p))
    named = [f for f in files if _SPLIT_IN_NAME.match(f.name)]
    if not files:
        raise DataError(f"{path}: no data files ({', '.join(DATA_SUFFIXES)}) in this directory")
    return named or files


def read(loc: Location) -> dict[str, RawSplit]:
    if loc.path is None:
        from datasets import load_dataset

        try:
            dd = load_dataset(loc.label, ADAPTERS[loc.label].hub_config if loc.label in ADAPTERS else None)
        except Exception as e:  # the hub client raises many unrelated types; all mean "not reachable"
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            known = "" if loc.label in ADAPTERS else f" Known datasets: {', '.join(sorted(ADAPTERS))}."
            raise DataError(
                f"dataset '{loc.label}' is not a local path and could not be loaded from the hub "
                f"({reason}).{known} Offline? Mirror it to <data_dir>/{loc.label} and set "
                "data_dir or RLHF_LITE_DATA_DIR."
            ) from None
        return _splits(dd, loc.label)
    if _saved(loc.path):
        from datasets import Dataset, DatasetDict, load_from_disk

        try:
            saved = load_from_disk(str(loc.path))
        except (OSError, ValueError) as e:
            raise DataError(f"{loc.path}: cannot be loaded with datasets.load_from_disk: {e}") from None
        return _splits(DatasetDict(train=saved) if isinstance(saved, Dataset) else saved, str(loc.path))
    by_split: dict[str, list[Path]] = {}
    for f in loc.files:
        m = _SPLIT_IN_NAME.match(f.name) if loc.path.is_dir() else None
        by_split.setdefault(m.group(1) if m else "train", []).append(f)
    return {split: _concat([_read_file(f) for f in files]) for split, files in by_split.items()}


def _splits(dd, label: str) -> dict[str, RawSplit]:
    return {s: RawSplit(ds, lambda i, s=s: f"{label}[{s}] row {i}", set(ds.column_names)) for s, ds in dd.items()}


def _concat(parts: list[RawSplit]) -> RawSplit:
    if len(parts) == 1:
        return parts[0]
    rows = [row for part in parts for row in part.rows]
    owners = [(part, i) for part in parts for i in range(len(part.rows))]
    return RawSplit(rows, lambda i: owners[i][0].where(owners[i][1]), set().union(*(p.columns for p in parts)))


def _read_file(f: Path) -> RawSplit:
    if f.suffix in (".json", ".jsonl"):
        return _read_json(f)
    try:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(f)
            return RawSplit(table.to_pylist(), lambda i: f"{f} row {i}", set(table.column_names))
        if f.suffix == ".csv":
            rows = list(csv.DictReader(io.StringIO(_decode(f), newline="")))
            return RawSplit(rows, lambda i: f"{f}:{i + 2}", set(rows[0]) if rows else set())  # line 1: the header
        if f.suffix == ".arrow":
            from datasets import Dataset

            ds = Dataset.from_file(str(f))
            return RawSplit(ds, lambda i: f"{f} row {i}", set(ds.column_names))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{f}: cannot be read as {f.suffix[1:]}: {e}") from None
    raise DataError(f"{f}: unsupported file type (use one of {', '.join(DATA_SUFFIXES)})")


def _read_json(f: Path) -> RawSplit:
    text = _decode(f)
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{f}:{e.lineno}: malformed JSON: {e.msg} (column {e.colno})") from None
        where = lambda i: f"{f} item {i}"
    else:  # JSON Lines
        rows, lines = [], []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{f}:{n}: malformed JSON line: {e.msg} (column {e.colno})") from None
                lines.append(n)
        where = lambda i: f"{f}:{lines[i]}"
    return RawSplit(rows, where, set().union(*(r.keys() for r in rows if isinstance(r, dict))))


def _decode(f: Path) -> str:
    data = f.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"{f}:{line}: not valid UTF-8 (byte {data[e.start]:#04x})") from None
