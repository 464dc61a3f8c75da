"""From dataset names to the unified rows a pipeline step uses. Local data is read here, not by
`datasets.load_dataset`, so that every problem names its file and line; rows are cached as JSON under
the hash of every source file and of the adapters' code (DeepSpeed-Chat's key, a name, goes stale)."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

from ..atomic import staged_dir
from ..cache_dir import cache_root
from ..errors import ConfigError, DataError
from .adapters import ADAPTERS, Adapter
from .conversations import flatten, is_conversation
from .rows import Report, SkipRow, normalize
from .sources import EVAL_NAMES, Location, locate, read
from .split import blend, split_indices, take_part

EVAL_HOLDOUT = "9,1"  # sources without an eval split keep a seeded 10% of train for it
_CODE = [Path(__file__).with_name(n) for n in ("rows.py", "adapters.py", "conversations.py", "sources.py", "load.py")]


@dataclass
class DatasetSpec:
    """One dataset in a config: a hub name, a registered name or a local path, with a weight."""

    name: str
    weight: float = 1.0
    path: str | None = None  # local/jsonfile folder or file(s) for a registered layout
    adapter: str | None = None  # force a layout when neither name nor columns tell it

    @classmethod
    def parse(cls, value) -> DatasetSpec:
        if isinstance(value, DatasetSpec):
            return value
        if isinstance(value, str):
            return cls(name=value)
        if isinstance(value, dict):
            unknown = set(value) - {"name", "weight", "path", "adapter"}
            if unknown or "name" not in value:
                raise ConfigError(
                    f"dataset entry {value}: needs 'name' and may have weight, path, "
                    f"adapter (unknown: {sorted(unknown)})"
                )
            return cls(**value)
        raise ConfigError(f"dataset entry {value!r} must be a name or a mapping with 'name'")


def _adapter_for(spec: DatasetSpec, loc: Location, splits) -> Adapter:
    # A local mirror such as ".../Dahoas/rm-static" keeps the hub name in its path.
    tail = "/".join(loc.path.resolve().parts[-2:]) if loc.path else ""
    name = spec.adapter or next((n for n in (spec.name, tail) if n in ADAPTERS), None)
    if name or loc.path is None:
        name = name or spec.name
        if name not in ADAPTERS:
            raise DataError(
                f"unknown dataset '{name}'. Known datasets: {', '.join(sorted(ADAPTERS))}; "
                "or give a local file/directory, or register an adapter (see README)."
            )
        return ADAPTERS[name]
    if not any(len(s.rows) for s in splits.values()):
        raise DataError(f"{loc.label}: holds no rows (its data files are empty)")
    # The adapter whose identifying columns fit best (most specific match wins).
    columns = set().union(*(s.columns for s in splits.values()))
    fits = [a for a in ADAPTERS.values() if a.columns <= columns]
    if not fits:
        layouts = sorted({", ".join(sorted(a.columns)) for a in ADAPTERS.values()})
        raise DataError(
            f"{loc.label}: columns {sorted(columns)} match no known layout. Known layouts: {' | '.join(layouts)}"
        )
    return max(fits, key=lambda a: len(a.columns))


def _pick_split(splits: dict, adapter: Adapter, split: str, seed: int, label: str):
    """The raw rows of `split`, carving eval out of train when the source has no eval split."""
    if split in splits and split != "train":
        return splits[split], None
    if split not in ("train", "eval"):
        raise DataError(f"{label}: no split '{split}' (has: {', '.join(sorted(splits))})")
    eval_name = next((s for s in (adapter.eval_split, *EVAL_NAMES) if s in splits), None)
    if split == "eval" and eval_name:
        return splits[eval_name], None
    if "train" not in splits:
        raise DataError(f"{label}: no 'train' split (has: {', '.join(sorted(splits))})")
    keep = None if eval_name else split_indices(len(splits["train"].rows), EVAL_HOLDOUT, int(split == "eval"), seed)
    return splits["train"], keep


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:  # in chunks: a dataset's files may not fit in memory
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_rows(spec, split="train", *, data_dir=None, seed=1234, cache_dir=None, template=None) -> tuple[list, Report]:
    """Unified, checked rows of one dataset split, plus the report of what was dropped. With a
    `template` (a tokenizer), conversations are rendered by its chat template, not as Human/Assistant."""
    spec = DatasetSpec.parse(spec)
    loc = locate(spec.name, spec.path, data_dir)
    splits = None if loc.path else read(loc)  # the hub's fingerprint is only known once loaded
    key = {
        "rows": [spec.name, spec.path, spec.adapter, split, seed],
        # the data files and the code that reads them
        "files": [(str(f.resolve()), _digest(f)) for f in [*loc.files, *_CODE]],
        # datasets' own content fingerprint of each hub split (changes with the downloaded files)
        "hub": {s: getattr(r.rows, "_fingerprint", "") for s, r in splits.items()} if splits else None,
        # a plugin's adapter code may change too
        "adapters": sorted((a.name, inspect.getsource(a.convert), sorted(a.columns)) for a in ADAPTERS.values()),
        "template": template and [template.chat_template, template.eos_token],
    }
    entry = (
        cache_root(cache_dir)
        / "data"
        / hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    )
    with contextlib.suppress(OSError, ValueError):  # a missing or damaged entry is rebuilt
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        with open(entry / "rows.jsonl", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        if len(rows) == meta.get("n_rows"):
            return rows, Report(**meta["report"])

    splits = splits or read(loc)
    adapter = _adapter_for(spec, loc, splits)
    raw, keep = _pick_split(splits, adapter, split, seed, loc.label)
    pairs = adapter.pairs if adapter.pairs is not None else "rejected" in raw.columns
    report = Report(f"{loc.label} [{split}] via {adapter.name}")
    rows = []
    for i in range(len(raw.rows)) if keep is None else keep:
        row = raw.rows[int(i)]
        try:
            if not isinstance(row, dict):
                raise SkipRow(f"row is {type(row).__name__}, not an object")
            templated = template is not None and any(map(is_conversation, row.values()))
            rows.append(normalize(flatten(adapter.convert(row), template), pairs, adapter.answers, not templated))
        except SkipRow as e:
            report.skip(str(e), raw.where(int(i)))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            report.skip(f"does not fit the {adapter.name} layout ({type(e).__name__}: {e})", raw.where(int(i)))
    report.kept = len(rows)
    with contextlib.suppress(OSError, ValueError), staged_dir(entry) as tmp:  # unwritable or unencodable: only slower
        with open(tmp / "rows.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (tmp / "meta.json").write_text(json.dumps({"report": vars(report), "n_rows": len(rows)}))
    return rows, report


def load_step_rows(
    specs,
    split,
    *,
    part=None,
    data_split="2,4,4",
    seed=1234,
    need_pairs=False,
    need_answers=True,
    data_dir=None,
    cache_dir=None,
    template=None,
) -> tuple[list, list[Report]]:
    """The blended rows of several datasets for one step: on the train split, `part` picks the
    step's share of `data_split` (0: SFT, 1: reward model, 2: PPO); eval takes every eval row."""
    parts, reports = [], []
    for spec in map(DatasetSpec.parse, specs):
        rows, report = load_rows(spec, split, data_dir=data_dir, seed=seed, cache_dir=cache_dir, template=template)
        reports.append(report)
        if not rows:
            raise DataError(f"{report.source}: no usable rows left.\n{report.summary()}")
        if (need_answers or need_pairs) and "chosen" not in rows[0]:
            raise DataError(f"{report.source}: holds prompts only, so it cannot train or evaluate answers")
        if need_pairs and "rejected" not in rows[0]:
            raise DataError(
                f"{report.source}: has no rejected answers, so it cannot train or "
                "evaluate a reward model (it is an SFT-only dataset)"
            )
        if part is not None and split == "train":
            rows = take_part(rows, data_split, part, seed, report.source)
        parts.append((rows, spec.weight))
    if not parts:
        raise ConfigError("no datasets given")
    return blend(parts, seed), reports
