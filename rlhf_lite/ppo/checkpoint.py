"""Step 3's checkpoints, `checkpoint-<batches done>/` (accelerate's state, trainer_state.json, EMA
weights; renamed from a temporary name once complete), and final models (actor/, critic/, actor_ema/)."""

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


def save_checkpoint(trainer: PPOTrainer, out_dir: str | Path, batches_done: int, extra: dict, keep: int) -> Path:
    acc, out = trainer.accelerator, Path(out_dir)
    final, tmp = out / f"checkpoint-{batches_done}", out / f".tmp-checkpoint-{batches_done}"
    if acc.is_main_process:  # what an earlier crash while saving left behind
        for stale in [*out.glob(".tmp-checkpoint-*"), *out.glob(".old-checkpoint-*")]:
            shutil.rmtree(stale, ignore_errors=True)
    acc.wait_for_everyone()
    # every process: DeepSpeed writes its own shards. accelerate warns that it left out the tied
    # LM head, which the model ties again on loading
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
    """Restore what `save_checkpoint` wrote; returns its trainer_state.json (metrics.jsonl loses later rows)."""
    path = Path(path)
    trainer.accelerator.load_state(str(path))
    state = json.loads((path / STATE_FILE).read_text())
    if trainer.accelerator.is_main_process:
        rewind_metrics(path.parent, state["batches_done"])
    trainer.load_state_dict(state["trainer"])
    if trainer.ema is not None and (path / EMA_FILE).exists():
        ema = load_file(path / EMA_FILE)
        for i, t in enumerate(trainer.ema):
            t.copy_(ema[f"ema.{i}"])
    return state


def export_models(engine: RLHFEngine, trainer: PPOTrainer, out_dir: str | Path, merge_lora: bool = True) -> None:
    """actor/ and critic/ (and actor_ema/) as standard Hugging Face folders."""
    acc = engine.accelerator
    for folder in ["actor", "critic"] + (["actor_ema"] if trainer.ema is not None else []):
        role = folder.removesuffix("_ema")
        if folder == "actor_ema":
            trainer.swap_ema()
        state = acc.get_state_dict(engine.model)  # every process: ZeRO-3 gathers the shards here
        if acc.is_main_process:
            weights = {k[len(role) + 1 :]: v for k, v in state.items() if k.startswith(f"{role}.")}
            save_model(getattr(engine, role), engine.tokenizer, Path(out_dir) / folder, merge_lora, state_dict=weights)
        if folder == "actor_ema":
            trainer.swap_ema()
        acc.wait_for_everyone()


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    found = checkpoints(out_dir, saved)
    return found[-1] if found else None
