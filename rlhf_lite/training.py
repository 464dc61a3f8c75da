"""What the SFT and reward-model recipes share around TRL's trainers.

Loading the step's rows, the LoRA learning-rate split, metrics.jsonl, resuming and the final
export: each a small function so a recipe reads top to bottom.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .args import ModelArguments, ScriptArguments, claim_output_dir, run_record
from .data import load_step_rows
from .metrics import append_metrics
from .models import export_saved



def step_rows(script: ScriptArguments, part: int, seed: int, need_pairs: bool):
    """(train rows, eval rows) for pipeline step `part` (0: SFT, 1: reward model, 2: PPO)."""
    common = dict(seed=seed, need_pairs=need_pairs, data_dir=script.data_dir)
    train, reports = load_step_rows(script.specs(), "train", part=part,
                                    data_split=script.data_split, **common)
    evals, eval_reports = load_step_rows(script.specs(), script.eval_split, **common)
    for report in reports + eval_reports:
        if report.total_dropped:
            print(report.summary(), file=sys.stderr)
    return train, evals


def prepare_run(training, *dataclasses_) -> str | None:
    """Claim the output folder for this run; the checkpoint to resume from, if any.

    Also seeds every RNG: the Trainer seeds only once the model exists, so the weights a
    recipe creates while loading it (a reward head, LoRA adapters) would differ run to run."""
    set_seed(training.seed)
    overwrite = any(getattr(d, "overwrite_output_dir", False) for d in dataclasses_)
    same_run = claim_output_dir(training.output_dir, run_record(*dataclasses_, training), overwrite)
    return get_last_checkpoint(training.output_dir) if same_run and not overwrite else None


def lora_optimizer(model, training, model_args: ModelArguments):
    """AdamW with LoRA weights at `lora_learning_rate` and the rest (e.g. a reward head) at
    `learning_rate`, as DeepSpeed-Chat's `--lora_learning_rate`; None when not asked for."""
    if model_args.lora_learning_rate is None:
        return None
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = model_args.lora_learning_rate if "lora_" in name else training.learning_rate
        decay = 0.0 if p.ndim < 2 else training.weight_decay  # no decay on biases and norms
        groups.setdefault((lr, decay), []).append(p)
    return torch.optim.AdamW(
        [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
        betas=(training.adam_beta1, training.adam_beta2), eps=training.adam_epsilon)


class MetricsFile(TrainerCallback):
    """Appends every logged dict to <output_dir>/metrics.jsonl (main process only)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            append_metrics(args.output_dir, {"step": state.global_step, "epoch": state.epoch, **logs})


def train_and_export(trainer, resume: str | None, tokenizer, model_args: ModelArguments) -> None:
    trainer.train(resume_from_checkpoint=resume)
    state = trainer.state
    evaluated = any("eval_loss" in h and h.get("step") == state.global_step for h in state.log_history)
    if trainer.args.eval_strategy != "no" and not evaluated:  # the last step may have been evaluated
        trainer.log(trainer.evaluate())
    export(trainer, tokenizer, model_args)


def export(trainer, tokenizer, model_args: ModelArguments) -> None:
    """Save the trained model as a standard HF folder in output_dir (LoRA merged by default)."""
    out = Path(trainer.args.output_dir)
    staging = out / ".final"
    trainer.save_model(str(staging))  # every rank takes part: ZeRO-3 gathers the weights here
    if trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        export_saved(staging, model, tokenizer, out, merge_lora=model_args.merge_lora)
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
