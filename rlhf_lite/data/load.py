"""From dataset names to the unified rows one pipeline step trains or evaluates on."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, DataError
from . import cache, sources
from .adapters import ADAPTERS, Adapter, adapter_for_columns, get_adapter
from .rows import Report, SkipRow, normalize
from .split import blend, split_indices, take_part

EVAL_HOLDOUT = "9,1"  # sources without an eval split keep a seeded 10% of train for it


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


def _adapter_for(spec: DatasetSpec, loc: sources.Location, splits) -> Adapter:
    if spec.adapter:
        return get_adapter(spec.adapter)
    if spec.name in ADAPTERS:
        return ADAPTERS[spec.name]
    # A local mirror such as ".../Dahoas/rm-static" keeps the hub name in its path.
    tail = "/".join(loc.path.resolve().parts[-2:]) if loc.path else ""
    if tail in ADAPTERS:
        return ADAPTERS[tail]
    if loc.path is None:
        get_adapter(spec.name)  # raises the "unknown dataset" error listing the known names
    columns = set().union(*(s.columns for s in splits.values()))
    if not any(len(s.rows) for s in splits.values()):
        raise DataError(f"{loc.label}: holds no rows (its data files are empty)")
    return adapter_for_columns(columns, loc.label)


def _pick_split(splits: dict, adapter: Adapter, split: str, seed: int, label: str):
    """The raw rows of `split`, carving eval out of train when the source has no eval split."""
    if split in splits and split != "train":
        return splits[split], None
    if split not in ("train", "eval"):
        raise DataError(f"{label}: no split '{split}' (has: {', '.join(sorted(splits))})")
    eval_name = (
        adapter.eval_split
        if adapter.eval_split in splits
        else next((s for s in sources.EVAL_NAMES if s in splits), None)
    )
    if split == "eval" and eval_name:
        return splits[eval_name], None
    if "train" not in splits:
        raise DataError(f"{label}: no 'train' split (has: {', '.join(sorted(splits))})")
    if eval_name:
        return splits["train"], None
    n = len(splits["train"].rows)
    return splits["train"], split_indices(n, EVAL_HOLDOUT, 0 if split == "train" else 1, seed)


def load_rows(
    spec,
    split: str = "train",
    *,
    data_dir: str | None = None,
    seed: int = 1234,
    cache_dir: str | None = None,
    use_cache: bool = True,
) -> tuple[list[dict], Report]:
    """Unified, checked rows of one dataset split, plus the report of what was dropped."""
    spec = DatasetSpec.parse(spec)
    loc = sources.locate(
        spec.name, spec.path, data_dir, ADAPTERS[spec.name].hub_config if spec.name in ADAPTERS else None
    )
    splits = None
    if loc.path is None:
        splits = sources.read(loc)  # the hub's fingerprint is only known once loaded
    key = cache.make_key(
        {
            "spec": [spec.name, spec.path, spec.adapter],
            "split": split,
            "seed": seed,
            "files": [(str(f.resolve()), cache.file_digest(f)) for f in loc.files],
            "hub": sources.hub_fingerprint(splits) if splits else None,
            "adapters": sorted((a.name, a.fingerprint, sorted(a.columns)) for a in ADAPTERS.values()),
        }
    )
    if use_cache and (hit := cache.load(key, cache_dir)):
        rows, meta = hit
        return rows, Report.from_json(meta["report"])

    splits = splits or sources.read(loc)
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
            rows.append(normalize(adapter.convert(row), pairs))
        except SkipRow as e:
            report.skip(str(e), raw.where(int(i)))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            report.skip(f"does not fit the {adapter.name} layout ({type(e).__name__}: {e})", raw.where(int(i)))
    report.kept = len(rows)
    if use_cache:
        cache.store(key, rows, {"report": report.to_json()}, cache_dir)
    return rows, report


def load_step_rows(
    specs: list,
    split: str,
    *,
    part: int | None = None,
    data_split: str = "2,4,4",
    seed: int = 1234,
    need_pairs: bool = False,
    data_dir: str | None = None,
    cache_dir: str | None = None,
) -> tuple[list[dict], list[Report]]:
    """The blended rows of several datasets for one step.

    On the train split, `part` picks the step's share of `data_split` (0: SFT, 1: reward model,
    2: PPO). Evaluation uses the whole eval split of every dataset.
    """
    parts, reports = [], []
    for spec in map(DatasetSpec.parse, specs):
        rows, report = load_rows(spec, split, data_dir=data_dir, seed=seed, cache_dir=cache_dir)
        reports.append(report)
        if not rows:
            raise DataError(f"{report.source}: no usable rows left.\n{report.summary()}")
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
