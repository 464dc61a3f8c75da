"""Resuming a run: which checkpoint-N folders are complete, and tidying what a crash left."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from accelerate import PartialState

from . import atomic
from .metrics import METRICS_FILE

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"  # the Trainer writes it last into checkpoint-N


def step_of(path: Path) -> int:
    return int(CHECKPOINT.match(path.name).group(1))


def _trainer_saved(checkpoint: Path) -> bool:
    # trainer_state.json comes after the weights, optimizer, scheduler and RNG states; a process
    # killed while writing it leaves JSON that does not parse.
    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("global_step") == step_of(checkpoint)


def checkpoints(output_dir: str | Path, complete: Callable[[Path], bool] = _trainer_saved) -> list[Path]:
    """The checkpoint-N folders in `output_dir` whose save finished (`complete`), oldest first."""
    out = Path(output_dir)
    found = [p for p in out.iterdir() if CHECKPOINT.match(p.name) and complete(p)] if out.is_dir() else []
    return sorted(found, key=step_of)


def resume_point(output_dir: str | Path) -> str | None:
    """The last complete checkpoint (None: start afresh). The main process removes what a crash left:
    checkpoints cut short (the Trainer would pick the newest) and metrics rows logged after it."""
    out = Path(output_dir)
    complete = checkpoints(out)
    last = complete[-1] if complete else None
    if PartialState().is_main_process:
        for partial in checkpoints(out, lambda p: p not in complete):
            print(f"removing {partial}: its save did not finish (no readable {TRAINER_STATE})", file=sys.stderr)
            shutil.rmtree(partial, ignore_errors=True)
        rewind_metrics(out, step_of(last) if last else 0)
    return str(last) if last else None


def rewind_metrics(output_dir: str | Path, step: int) -> None:
    """Drop the metrics.jsonl rows logged after optimizer step `step` (atomically)."""
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:  # a line cut short by the crash
            continue
        if isinstance(row, dict) and row.get("step", 0) <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        atomic.write_text(path, "".join(kept))
