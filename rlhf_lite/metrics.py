"""`metrics.jsonl`, the one-JSON-object-per-log-line file every step writes next to its
TensorBoard logs (and `rlhf_lite.plot` reads). Kept free of heavy imports for the plot CLI."""

from __future__ import annotations

import json
from pathlib import Path

METRICS_FILE = "metrics.jsonl"


def append_metrics(output_dir: str | Path, row: dict) -> None:
    with open(Path(output_dir) / METRICS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
