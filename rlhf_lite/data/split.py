"""DeepSpeed-Chat's `data_split` ("2,4,4"): one seeded permutation of a dataset's rows is cut into
consecutive fractions, so the steps never see the same row and a rerun sees the same rows; weighted mixing."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError


def split_indices(n: int, data_split: str, part: int, seed: int) -> np.ndarray:
    """Indices of rows in part `part` (0-based) of a seeded permutation of range(n)."""
    try:
        parts = [float(x) for x in str(data_split).split(",")]
    except ValueError:
        raise ConfigError(f"data_split '{data_split}' must be comma-separated numbers, like '2,4,4'") from None
    if any(p < 0 for p in parts) or sum(parts) <= 0:
        raise ConfigError(f"data_split '{data_split}' needs non-negative parts with a positive sum")
    if not 0 <= part < len(parts):
        raise ConfigError(f"data_split '{data_split}' has {len(parts)} parts; part {part} asked for")
    bounds = np.round(np.cumsum([0.0] + [p / sum(parts) for p in parts]) * n).astype(int)
    bounds[-1] = n
    order = np.random.RandomState(seed).permutation(n)
    return np.sort(order[bounds[part] : bounds[part + 1]])


def take_part(rows: list, data_split: str, part: int, seed: int, label: str) -> list:
    idx = split_indices(len(rows), data_split, part, seed)
    if len(idx) == 0:
        raise DataError(
            f"{label}: data_split '{data_split}' leaves no rows for part {part} (the dataset has {len(rows)} rows)"
        )
    return [rows[i] for i in idx]


def blend(parts: list[tuple[list, float]], seed: int) -> list:
    """Mix datasets by weight: weight w takes round(w * n) rows of a dataset of n rows (w > 1 repeats
    it whole, then samples the rest); the mixture is shuffled with the seed so datasets interleave."""
    rng = np.random.RandomState(seed)
    mixed = []
    for rows, weight in parts:
        if weight < 0:
            raise ConfigError(f"dataset weight must be >= 0, got {weight}")
        copies, rest = divmod(int(round(weight * len(rows))), len(rows)) if rows else (0, 0)
        mixed += list(rows) * copies + [rows[i] for i in np.sort(rng.permutation(len(rows))[:rest])]
    return [mixed[i] for i in rng.permutation(len(mixed))]
