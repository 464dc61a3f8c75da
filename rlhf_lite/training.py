"""What the SFT and reward-model recipes share around TRL's trainers: a run resumes from its last
complete `checkpoint-N`; Ctrl-C saves a checkpoint after the step under way and exits with status
130; a NaN/inf training loss stops the run before its update is applied."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

import datasets
import torch
import torch.distributed as dist
from accelerate.utils import is_peft_model
from transformers import TrainerCallback, set_seed
from transformers.trainer_callback import ProgressCallback

from .args import RUN_FILE, ModelArguments, ScriptArguments, claim_output_dir, run_record
from .data import load_step_rows
from .embedded import is_embedded
from .errors import ConfigError, RLHFLiteError
from .metrics import append_metrics
from .models import ModelSettings, check_model_dir, export_saved, load_tokenizer, resolve_model_path
from .optim import param_groups
from .progress import Progress
from .resume import checkpoints, resume_point


class NonFiniteLossError(RLHFLiteError):
    """The training loss became NaN or infinite; the update it would have made was not applied."""


def step_rows(script: ScriptArguments, part: int, need_pairs=False, need_answers=True, model: str | None = None):
    """(train rows, eval rows) for pipeline step `part` (0: SFT, 1: reward model, 2: PPO); with
    `chat_template`, conversations rendered by the chat template of `model`'s tokenizer."""
    template = None
    if script.chat_template and model:
        template = load_tokenizer(model)
        if not template.chat_template:
            raise ConfigError(f"chat_template is on, but the tokenizer of '{model}' has no chat template")
    # Not the step's own seed: a judge trains with another seed on step 3's share, which must
    # still be the share step 2 did not see.
    common = dict(seed=script.data_split_seed, need_pairs=need_pairs, need_answers=need_answers)
    common |= dict(data_dir=script.data_dir, template=template)
    train, reports = load_step_rows(script.specs(), "train", part=part, data_split=script.data_split, **common)
    evals, eval_reports = load_step_rows(script.specs(), script.eval_split, **common)
    for report in reports + eval_reports:
        if report.total_dropped:
            print(report.summary(), file=sys.stderr)
    return train, evals


def prepare_run(training, *dataclasses_) -> str | None:
    """Claim the output folder for this run; the checkpoint to resume from, if any."""
    # The Trainer seeds only once the model exists, so the weights a recipe creates while loading
    # it (a reward head, LoRA adapters) would differ run to run.
    set_seed(training.seed)
    # TRL prepares a dataset in five `map` passes, each drawing a bar over a fraction of a second.
    datasets.disable_progress_bars()
    if not (Path(training.output_dir) / RUN_FILE).exists():  # a mistyped path must not claim a new folder
        for name in {getattr(d, "model_name_or_path", None) for d in dataclasses_} - {None}:
            if not is_embedded(name):
                check_model_dir(resolve_model_path(name))
    overwrite = any(getattr(d, "overwrite_output_dir", False) for d in dataclasses_)
    same_run = claim_output_dir(training.output_dir, run_record(*dataclasses_, training), overwrite)
    return resume_point(training.output_dir) if same_run and not overwrite else None


def policy_settings(model_args: ModelArguments, training) -> ModelSettings:
    """The settings of the model DPO, GRPO or RLOO trains. With TRL's `disable_dropout` the config's
    dropout probabilities are zeroed too: TRL resets the nn.Dropout modules only, not the attention
    dropout that many models apply functionally, and the policy must score as its reference does."""
    settings = model_args.settings(training.activation_checkpointing, training.trust_remote_code)
    return replace(settings, dropout=0.0) if training.disable_dropout else settings


def lora_optimizer(model, training, model_args: ModelArguments):
    """AdamW with LoRA weights at `lora_learning_rate`, the rest at `learning_rate` (None if unset)."""
    if model_args.lora_learning_rate is None:
        return None
    groups = param_groups(model, training.learning_rate, model_args.lora_learning_rate, training.weight_decay)
    return torch.optim.AdamW(groups, betas=(training.adam_beta1, training.adam_beta2), eps=training.adam_epsilon)


class MetricsFile(TrainerCallback):
    """Appends every logged dict to <output_dir>/metrics.jsonl (main process only)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            append_metrics(args.output_dir, {"step": state.global_step, "epoch": state.epoch, **logs})


class ProgressBar(TrainerCallback):
    """The training bar with live metrics, in place of ProgressCallback (which prints every logged dict)."""

    SHOWN = {"loss": "loss", "accuracy": "accuracy", "mean_token_accuracy": "token_acc"}
    SHOWN |= {"rewards/margins": "margin", "reward": "reward", "kl": "kl"}  # DPO's; GRPO's and RLOO's

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = Progress(state.max_steps, self.desc, initial=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        shown = {name: logs[key] for key, name in self.SHOWN.items() if key in (logs or {})}
        if self.bar is not None and shown:
            self.bar.update(0, **shown)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class DeferredInterrupt:
    """Inside the block a first Ctrl-C only sets `requested` (the loop saves at its next step), a
    second raises KeyboardInterrupt. Outside the main thread, or where SIGINT is ignored, a no-op."""

    def __init__(self):
        self.requested = False
        self._previous = None  # the handler to put back while ours is installed

    def __enter__(self) -> DeferredInterrupt:
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._handle) or signal.SIG_DFL
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            self.restore()
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\ninterrupted: saving a checkpoint after this step (Ctrl-C again stops at once)",
            file=sys.stderr,
            flush=True,
        )

    def on_any_process(self, device=None) -> bool:
        """`requested` in any process (every process must stop at the same step: a collective)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.requested
        flag = torch.tensor([float(self.requested)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


class SaveOnInterrupt(DeferredInterrupt, TrainerCallback):
    """Ctrl-C saves a checkpoint after the step under way and stops; `stopped_at` is that step."""

    stopped_at: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        if self.on_any_process(args.device):
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped_at is not None:  # saved at the step already: no second save or evaluation
            control.should_save = control.should_evaluate = False


class AdapterOffReference:
    """Mixin for TRL's DPO, GRPO and RLOO trainers: given a model with a LoRA adapter, TRL copies the
    adapter as a frozen "ref" adapter (for adapters trained before); ours is freshly initialised on the
    SFT model, so the model with its adapter switched off is that reference, without the copy."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if is_peft_model(self.model) and "ref" in self.model.peft_config:
            self.model.delete_adapter("ref")


class StopOnNonFiniteLoss:
    """Trainer mixin: a NaN/inf loss raises before the optimizer step (the Trainer would apply it)."""

    def training_step(self, model, inputs, *args, **kwargs):
        try:
            loss = super().training_step(model, inputs, *args, **kwargs)
        except RuntimeError as err:  # GRPO and RLOO sample first: a policy gone non-finite fails there
            if "probability tensor contains" not in str(err):
                raise
            loss = torch.tensor(float("nan"), device=self.accelerator.device)
        value = torch.as_tensor(loss).detach()
        bad = torch.tensor([0.0 if torch.isfinite(value).all() else 1.0], device=value.device)
        if self.accelerator.gather(bad).any():  # every process must stop, not wait for the others
            found = checkpoints(self.args.output_dir)
            kept = f"the last checkpoint is {found[-1]}" if found else "no checkpoint was saved"
            raise NonFiniteLossError(
                f"the training loss is NaN or infinite at optimizer step {self.state.global_step + 1} "
                f"(epoch {self.state.epoch or 0:.2f}); the update was not applied and no model was exported "
                f"({kept}). Lower learning_rate, check the data, or train in fp32."
            )
        return loss


def train_and_export(trainer, resume: str | None, tokenizer, model_args: ModelArguments) -> None:
    """Train, then save the model as a standard HF folder in output_dir (LoRA merged by default)."""
    interrupt = SaveOnInterrupt()
    trainer.remove_callback(ProgressCallback)
    out = Path(trainer.args.output_dir)
    for callback in (interrupt, MetricsFile(), ProgressBar(out.name)):
        trainer.add_callback(callback)
    try:
        trainer.train(resume_from_checkpoint=resume)
    finally:
        interrupt.restore()
    state = trainer.state
    if interrupt.stopped_at is not None and state.global_step < state.max_steps:
        if trainer.is_world_process_zero():
            print(
                f"interrupted: the state after optimizer step {state.global_step} is in "
                f"{out / f'checkpoint-{state.global_step}'}; run the same command again to resume",
                file=sys.stderr,
            )
        raise SystemExit(130)
    evaluated = any("eval_loss" in h and h.get("step") == state.global_step for h in state.log_history)
    if trainer.args.eval_strategy != "no" and not evaluated:  # the last step may have been evaluated
        trainer.log(trainer.evaluate())
    staging = out / ".final"
    trainer.save_model(str(staging))  # every rank takes part: ZeRO-3 gathers the weights here
    if trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        export_saved(staging, model, tokenizer, out, merge_lora=model_args.merge_lora)
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
