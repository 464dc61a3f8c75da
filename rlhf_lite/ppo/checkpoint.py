"""Step 3's checkpoints (resume) and final models (actor/, critic/, actor_ema/).

A checkpoint is `checkpoint-<batches done>/`: accelerate's state of the actor-critic module,
optimizer, scheduler and every process's RNG, plus `trainer_state.json` (optimizer steps, KL
controller, reward EMA) and the EMA weights. It is written under a temporary name and renamed
when complete, so a crash while saving leaves the previous checkpoint as the latest (and what it
left half-written is removed by the next save).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..atomic import replace_dir
from ..models import save_model
from ..quiet import logger_silenced
from ..resume import checkpoints, rewind_metrics
from .engine import RLHFEngine
from .trainer import PPOTrainer

STATE_FILE = "trainer_state.json"
EMA_FILE = "actor_ema.safetensors"


def saved(checkpoint: Path) -> bool:  # a checkpoint gets its name only once complete
    return (checkpoint / STATE_FILE).exists()


def save_checkpoint(trainer: PPOTrainer, out_dir: str | Path, batches_done: int, extra: dict, keep: int = 1) -> Path:
    acc, out = trainer.accelerator, Path(out_dir)
    final = out / f"checkpoint-{batches_done}"
    tmp = out / f".tmp-checkpoint-{batches_done}"
    if acc.is_main_process:  # what an earlier crash while saving left behind
        for stale in [*out.glob(".tmp-checkpoint-*"), *out.glob(".old-checkpoint-*")]:
            shutil.rmtree(stale, ignore_errors=True)
    acc.wait_for_everyone()
    # every process: DeepSpeed writes its own shards. accelerate warns that it left out the tied
    # copy of the LM head (as from_pretrained expects: the model ties it again on loading)
    with logger_silenced("accelerate.utils.other"):
        acc.save_state(str(tmp))
    acc.wait_for_everyone()  # ... and its RNG state, which must be in before `tmp` is renamed
    if acc.is_main_process:
        if trainer.ema is not None:
            save_file({f"ema.{i}": t.detach().cpu().contiguous() for i, t in enumerate(trainer.ema)}, tmp / EMA_FILE)
        # `extra` last would let a resumed run's stale batches_done/trainer entries win
        state = {**extra, "batches_done": batches_done, "trainer": trainer.state_dict()}
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))  # last: marks it complete
        replace_dir(tmp, final)  # (saved again at the same step: the old one is deleted only after)
        for old in checkpoints(out, saved)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def load_checkpoint(trainer: PPOTrainer, path: str | Path) -> dict:
    """Restore everything `save_checkpoint` wrote; returns its trainer_state.json. The run's
    metrics.jsonl loses the rows logged after the checkpoint: the resumed run logs them again."""
    path = Path(path)
    trainer.accelerator.load_state(str(path))
    state = json.loads((path / STATE_FILE).read_text())
    if trainer.accelerator.is_main_process:
        rewind_metrics(path.parent, state["batches_done"])
    trainer.load_state_dict(state["trainer"])
    if trainer.ema is not None and (path / EMA_FILE).exists():
        saved = load_file(path / EMA_FILE)
        for i, t in enumerate(trainer.ema):
            t.copy_(saved[f"ema.{i}"])
    return state


def export_models(engine: RLHFEngine, trainer: PPOTrainer, out_dir: str | Path, merge_lora: bool = True) -> None:
    """actor/ and critic/ (and actor_ema/) as standard Hugging Face folders."""
    acc, out = engine.accelerator, Path(out_dir)
    roles = [("actor", "actor"), ("critic", "critic")]
    if trainer.ema is not None:
        roles.append(("actor_ema", "actor"))
    for folder, role in roles:
        if folder == "actor_ema":
            trainer.swap_ema()
        state = acc.get_state_dict(engine.model)  # every process: ZeRO-3 gathers the shards here
        if acc.is_main_process:
            prefix = f"{role}."
            weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            save_model(getattr(engine, role), engine.tokenizer, out / folder, merge_lora, state_dict=weights)
        if folder == "actor_ema":
            trainer.swap_ema()
        acc.wait_for_everyone()


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    found = checkpoints(out_dir, saved)
    return found[-1] if found else None
