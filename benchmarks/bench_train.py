"""Training speed of steps 1 and 2: the recipes' trainers vs a hand-written PyTorch loop.

    python benchmarks/bench_train.py                  # SFT and RM, demo presets, this CPU (~4 min on 2 idle cores)
    python benchmarks/bench_train.py --kinds sft --repeats 14 --threads 1
    python benchmarks/bench_train.py --set max_length=64 --set per_device_train_batch_size=2   # smaller steps
    python benchmarks/bench_train.py --device cuda    # on a GPU: the same comparison there (see below)

ours: the recipe itself -- recipes/sft.py and recipes/rm.py `main()` on recipes/configs/demo/{sft,rm}.yaml
      with `--max_steps <warmup + repeats x steps> --report_to none --save_strategy no` and a temporary
      output_dir (plus any --set field=value), so parsing, data, model loading, TRL's SFTTrainer / our
      PairwiseRewardTrainer, their callbacks (metrics.jsonl), the NaN/inf and Ctrl-C guards and the
      logging every `logging_steps` are all the recipe's own. The recipe's `train_and_export` is wrapped
      (nothing else is patched) to add one timing callback and to record the micro-batches the Trainer
      feeds to `training_step`. A step's time is the interval between consecutive `on_step_end` calls:
      fetching and collating the batch, forward, backward, gradient clipping, optimizer and scheduler
      step, callbacks and the previous step's logging.
loop: the same model loaded by the same loader and settings (rlhf_lite.models, `trainable_layers`,
      dtype, dropout -- TRL's `disable_dropout` mirrored), with the Trainer's initial weights copied in;
      `torch.optim.AdamW` with the Trainer's settings (lr, betas, eps, weight decay on all but biases and
      norms, `fused` as `optim: adamw_torch_fused`), the same LR scheduler, and per step: forward, the
      loss written out by hand (SFT: cross-entropy of the shifted labels, i.e. the answer tokens,
      -100 elsewhere, summed / their count, as TRL's completion-only loss; RM: `last_token` =
      -logsigmoid(r_chosen - r_rejected) on each sequence's last non-pad score, `divergence` =
      DeepSpeed-Chat's loss averaged over the span where chosen and rejected differ, as
      rlhf_lite/rm.py), backward, `clip_grad_norm_(max_grad_norm)`, optimizer step, scheduler step,
      `zero_grad(set_to_none=True)`. It replays exactly the batches the Trainer fed (same token ids,
      padding and order), so both sides see the same tokens and their losses match step by step
      (reported as a check).

The two alternate inside one run and one process: the Trainer runs `--warmup` steps, then the loop
runs the same batches (both uncounted), then `--repeats` rounds of `--steps` Trainer steps followed
by the loop on those same batches (by default a round is one step, so each Trainer step is paired
with the loop's step on the same batch a few seconds later). Tokens of a step = the non-padding
tokens of its batch (the attention mask's sum; an RM batch is its chosen and rejected rows). A
round's tokens/s is its tokens over its seconds; ours and loop tokens/s are medians over the rounds
and ratio_vs_torch = median ours tokens/s / median loop tokens/s, per step kind (the issue's target:
>= 0.95); `overall` is the geometric mean of the kinds' ratios. Each round's paired ratio is reported
too, and `cpu_time_ratio`, the same ratio from the process's CPU seconds (a diagnostic for a busy
machine: time spent waiting for a core does not count). On a CPU shared with other jobs, 2 threads
can be far slower than 1 (every parallel region waits for a descheduled thread): there, --threads 1
gives steadier numbers; final numbers come from an otherwise idle machine.

FLOPs: counted, not estimated, on the loop's model with hooks on every nn.Linear during one probe
step: forward 2*in*out per token for every weight matmul (tied LM head included, embedding lookups
excluded), backward 2*in*out per token for the input gradient where autograd computes it (every
matmul at or above the lowest trained weight) plus 2*in*out where the weight is trained. For full
fine-tuning that is 6*N per token; with `trainable_layers` it is 2*N + 4*N_trained + 2*N_frozen_path
(the frozen tied LM head passes gradients back without training). Attention scores (QK^T, AV) and
elementwise work are not counted. Achieved FLOP/s = FLOPs per token x tokens/s (non-padding tokens),
compared with the peak of a --peak-size square matmul timed in the same run (best of 10, at the start
and at the end; the larger is the peak).

GPU (--device cuda): the recipes run with `--use_cpu false` on the first visible GPU and, as
`rlhf_lite.args.parse` leaves it there, with TRL's default bf16 autocast; the loop uses the same
autocast dtype, both sides synchronize (torch.cuda.synchronize) before reading the clock, and the
peak matmul is 8192 x 8192 in the autocast dtype unless --peak-size is given. Run one benchmark per
GPU with nothing else on it.

Prints one JSON object and writes it to benchmarks/results/bench_train.json (a run of one kind keeps
the other kind's latest result from the file, with its measured_at).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from saved_results import with_unrun_cases  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_train.json"
KINDS = ("sft", "rm")
TARGET = 0.95


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clock() -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): CPU time is a diagnostic that a busy machine
    inflates less than wall time (threads waiting for a core do not count)."""
    return time.perf_counter(), time.process_time()


def peak_gflops(device: torch.device, size: int, dtype: torch.dtype, repeats: int = 10) -> dict:
    """GFLOP/s of a size x size matmul: best and median of `repeats` after 3 warm-ups."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    seconds = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        seconds.append(time.perf_counter() - t0)
    flops = 2 * size**3
    return {"best": round(flops / min(seconds) / 1e9, 1), "median": round(flops / statistics.median(seconds) / 1e9, 1)}


def load_recipe(kind: str):
    """The module whose `main` recipes/<kind>.py runs (its train_and_export is the one to wrap)."""
    return importlib.import_module(f"rlhf_lite.{kind}")


# ------------------------------------------------------------------ the hand-written loop


def _forward_kwargs(batch: dict) -> dict:
    return {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}


def sft_loss(model, batch: dict, n_items: torch.Tensor) -> torch.Tensor:
    """Causal-LM loss on the labelled tokens (the answer; -100 elsewhere), summed over the step's
    micro-batches and divided by their count of labelled next tokens, as the Trainer does."""
    logits = model(**_forward_kwargs(batch), use_cache=False).logits
    labels = batch["labels"][:, 1:]
    return (
        torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum"
        )
        / n_items
    )


def rm_loss(model, batch: dict, reward_loss: str, pad_id: int, center: float | None) -> torch.Tensor:
    """The pairwise loss on per-token scores of the backbone's last hidden states; rows are
    [chosen..., rejected...] as TRL's preference collator stacks them."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = getattr(base, base.base_model_prefix)(**_forward_kwargs(batch), use_cache=False).last_hidden_state
    values = base.score(hidden).squeeze(-1).float()  # (2B, T)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    pos = torch.arange(ids.shape[1], device=ids.device)
    last = (pos * (ids != pad_id)).argmax(-1)  # HF's pooling: the last token that is not pad
    pooled = values[torch.arange(ids.shape[0], device=ids.device), last]
    r_c, r_r = pooled.chunk(2)
    if reward_loss == "last_token":
        loss = -torch.nn.functional.logsigmoid(r_c - r_r).mean()
    else:  # divergence: every position from the first where the two differ to the end of the longer
        (v_c, v_r), (ids_c, ids_r), (m_c, m_r) = values.chunk(2), ids.chunk(2), mask.chunk(2)
        end = torch.maximum(m_c.sum(1), m_r.sum(1))
        differ = ((ids_c != ids_r) | (m_c != m_r)) & (pos < end[:, None])
        first = torch.where(differ.any(1), differ.float().argmax(1), end - 1)
        span = (pos >= first[:, None]) & (pos < end[:, None])
        loss = ((-torch.nn.functional.logsigmoid(v_c - v_r) * span).sum(1) / span.sum(1)).mean()
    if center is not None:
        loss = loss + center * pooled.pow(2).mean()
    return loss


class Loop:
    """The bare PyTorch side: its own model, optimizer and scheduler, stepping on replayed batches."""

    def __init__(self, kind: str, trainer, model_args, tokenizer, max_steps: int):
        from transformers import get_scheduler

        from rlhf_lite.models import load_causal_lm, load_reward_model
        from rlhf_lite.training import lora_optimizer

        args = trainer.args
        self.kind, self.device, self.args = kind, args.device, args
        settings = model_args.settings(args.activation_checkpointing, args.trust_remote_code)
        self.model = (
            load_causal_lm(settings, tokenizer)
            if kind == "sft"
            else load_reward_model(settings, tokenizer, trained=False)
        )
        if getattr(args, "disable_dropout", False):  # RewardConfig's: TRL zeroes every nn.Dropout
            for m in self.model.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = 0.0
        self.model.load_state_dict(trainer.model.state_dict())  # the Trainer's initial weights (fresh head included)
        self.model.to(self.device).train()
        trained = lambda m: sorted(n for n, p in m.named_parameters() if p.requires_grad)  # noqa: E731
        assert trained(self.model) == trained(trainer.model), "the loop trains other parameters than the Trainer"
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.reward_loss = getattr(trainer, "reward_loss", None)
        self.pad_id = self.model.config.pad_token_id
        self.center = getattr(args, "center_rewards_coefficient", None)
        mp = trainer.accelerator.mixed_precision
        self.autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mp)
        self.flops = self._count_flops()  # before the optimizer exists: a probe step that changes nothing

        opt = lora_optimizer(self.model, args, model_args)  # the recipe passes it to the Trainer when set
        if opt is None:
            if str(args.optim) not in (
                "adamw_torch_fused",
                "adamw_torch",
                "OptimizerNames.ADAMW_TORCH_FUSED",
                "OptimizerNames.ADAMW_TORCH",
            ):
                raise SystemExit(f"the loop mirrors optim adamw_torch[_fused] only, not {args.optim}")
            decay = [
                p
                for n, p in self.model.named_parameters()
                if p.requires_grad and p.ndim >= 2 and "norm" not in n.lower() and "bias" not in n
            ]
            no_decay = [p for p in self.params if all(p is not q for q in decay)]
            opt = torch.optim.AdamW(
                [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                lr=args.learning_rate,
                betas=(args.adam_beta1, args.adam_beta2),
                eps=args.adam_epsilon,
                fused=str(args.optim).lower().endswith("fused"),
            )
        self.optimizer = opt
        self.scheduler = get_scheduler(
            args.lr_scheduler_type,
            opt,
            num_warmup_steps=args.get_warmup_steps(max_steps),
            num_training_steps=max_steps,
            scheduler_specific_kwargs=args.lr_scheduler_kwargs or {},
        )
        self.losses: list[float] = []

    def dropout_p_max(self) -> float:
        ps = [m.p for m in self.model.modules() if isinstance(m, torch.nn.Dropout)]
        return max(ps + [float(getattr(self.model.config, "attention_dropout", 0.0) or 0.0)])

    def _loss(self, batch: dict, n_items) -> torch.Tensor:
        if self.kind == "sft":
            return sft_loss(self.model, batch, n_items)
        return rm_loss(self.model, batch, self.reward_loss, self.pad_id, self.center)

    def _count_flops(self) -> dict:
        """Weight-matmul FLOPs per token of one training step, from hooks on every nn.Linear."""
        totals = {"forward": 0, "input_grad": 0, "weight_grad": 0}

        def hook(module, inputs, output):
            x = inputs[0]
            f = 2 * module.in_features * module.out_features * (x.numel() // x.shape[-1])
            totals["forward"] += f
            totals["input_grad"] += f if x.requires_grad else 0
            totals["weight_grad"] += f if module.weight.requires_grad else 0

        handles = [m.register_forward_hook(hook) for m in self.model.modules() if isinstance(m, torch.nn.Linear)]
        rows, length = (2, 16) if self.kind == "sft" else (4, 16)
        ids = torch.full((rows, length), 100, device=self.device)
        ids[rows // 2 :, -1] = 101  # the RM's chosen and rejected differ at the end
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
        try:
            with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                loss = self._loss(batch, torch.tensor(rows * (length - 1), device=self.device))
            loss.backward()
        finally:
            for h in handles:
                h.remove()
        self.model.zero_grad(set_to_none=True)
        per_token = {k: v / ids.numel() for k, v in totals.items()}
        return {
            "per_token": round(sum(per_token.values())),
            "forward_per_token": round(per_token["forward"]),
            "backward_per_token": round(per_token["input_grad"] + per_token["weight_grad"]),
            # the N of "2N forward + 2N input-grad + 2N weight-grad" for each part
            "n_forward": round(per_token["forward"] / 2),
            "n_input_grad": round(per_token["input_grad"] / 2),
            "n_weight_grad": round(per_token["weight_grad"] / 2),
        }

    def step(self, micro_batches: list[dict]) -> tuple[float, float]:
        """One optimizer step; returns its (wall, CPU) seconds."""
        _sync(self.device)
        t0, c0 = _clock()
        batches = [{k: v.to(self.device, non_blocking=True) for k, v in b.items()} for b in micro_batches]
        n_items = sum((b["labels"][:, 1:] != -100).sum() for b in batches) if self.kind == "sft" else None
        loss_sum = 0.0
        for b in batches:
            with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                loss = self._loss(b, n_items)
            if self.kind != "sft":
                loss = loss / len(batches)
            loss.backward()
            loss_sum = loss.detach() + loss_sum
        if self.args.max_grad_norm and self.args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.args.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        _sync(self.device)
        t1, c1 = _clock()
        self.losses.append(loss_sum)  # read after the round, outside the clock
        return t1 - t0, c1 - c0


# ------------------------------------------------------------------ ours: the recipe, timed


class Bench:
    """Wraps a recipe's train_and_export: records the Trainer's steps and interleaves the loop."""

    def __init__(self, kind: str, warmup: int, steps: int, repeats: int, threads: int):
        from transformers import TrainerCallback

        self.kind, self.warmup, self.steps, self.repeats, self.threads = kind, warmup, steps, repeats, threads
        self.max_steps = warmup + steps * repeats
        self.batches: list[list[dict]] = []  # per optimizer step, its micro-batches as the Trainer fed them
        self.current: list[dict] = []
        self.ours_losses: list = []
        self.ours: list[float] = []  # seconds between consecutive on_step_end calls
        self.ours_cpu: list[float] = []  # the same interval in process CPU seconds
        self.ours_compute: list[float] = []  # on_step_begin -> on_step_end (no data loading, no logging)
        self.loop_seconds: list[float] = []
        self.loop_cpu: list[float] = []
        self.thread_resets = 0
        bench = self

        class Timer(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                bench._mark = _clock()

            def on_step_begin(self, args, state, control, **kwargs):
                bench._begin = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                bench.step_ended(state.global_step)

        self.callback = Timer()

    def _threads(self) -> None:
        if self.device.type == "cpu" and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
            self.thread_resets += 1

    def wrap(self, original):
        def train_and_export(trainer, resume, tokenizer, model_args):
            self.trainer, self.device, self.model_args = trainer, trainer.args.device, model_args
            self._threads()
            self.loop = Loop(self.kind, trainer, model_args, tokenizer, self.max_steps)
            trainer.add_callback(self.callback)
            step = trainer.training_step

            def training_step(model, inputs, *args, **kwargs):
                self.current.append({k: v for k, v in inputs.items() if torch.is_tensor(v)})
                loss = step(model, inputs, *args, **kwargs)
                self.ours_losses.append(loss.detach())
                return loss

            trainer.training_step = training_step  # a benchmark probe; the NaN/inf guard runs inside `step`
            gc.collect()
            _log(
                f"{self.kind}: {self.max_steps} Trainer steps ({self.warmup} warm-up, then {self.repeats} x "
                f"{self.steps}), each round followed by the loop on the same batches"
            )
            original(trainer, resume, tokenizer, model_args)

        return train_and_export

    def step_ended(self, step: int) -> None:
        _sync(self.device)
        now, cpu = _clock()
        self.ours.append(now - self._mark[0])
        self.ours_cpu.append(cpu - self._mark[1])
        self.ours_compute.append(now - self._begin)
        self.batches.append(self.current)
        self.current = []
        done = step - self.warmup
        if step == self.warmup or (done > 0 and done % self.steps == 0):
            first = 0 if step == self.warmup else step - self.steps
            gc.collect()
            self._threads()
            for micro in self.batches[first:step]:
                wall, cpu = self.loop.step(micro)
                self.loop_seconds.append(wall)
                self.loop_cpu.append(cpu)
            gc.collect()
            self._threads()
            _log(
                f"{self.kind}: step {step}/{self.max_steps}: ours {sum(self.ours[first:step]):.1f} s, "
                f"loop {sum(self.loop_seconds[first:step]):.1f} s"
            )
        _sync(self.device)
        self._mark = _clock()

    def optimizer_check(self) -> dict:
        """The Trainer's optimizer and the loop's, side by side."""

        def describe(opt):
            opt = getattr(opt, "optimizer", opt)  # accelerate's AcceleratedOptimizer
            groups = sorted(
                (g.get("initial_lr", g["lr"]), g["weight_decay"], sum(p.numel() for p in g["params"]))
                for g in opt.param_groups
                if g["params"]
            )
            d = opt.defaults
            return {
                "class": type(opt).__name__,
                "betas": list(d["betas"]),
                "eps": d["eps"],
                "fused": bool(d.get("fused")),
                "foreach": d.get("foreach"),
                "groups_lr_wd_numel": [list(g) for g in groups],
            }

        ours, loop = describe(self.trainer.optimizer), describe(self.loop.optimizer)
        last_lr = (self.trainer.lr_scheduler.get_last_lr(), self.loop.scheduler.get_last_lr())
        return {
            **loop,
            "same_as_trainer": ours == loop
            and all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15) for a, b in zip(*last_lr)),
            "trainer": ours,
        }

    def report(self) -> dict:
        a = self.trainer.args
        w, s = self.warmup, self.steps
        tokens = [
            sum(int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel() for b in micro)
            for micro in self.batches
        ]
        padded = [sum(b["input_ids"].numel() for b in micro) for micro in self.batches]
        rounds = []
        for r in range(self.repeats):
            i = slice(w + r * s, w + (r + 1) * s)
            tok = sum(tokens[i])
            rounds.append(
                {
                    "ours_tps": tok / sum(self.ours[i]),
                    "loop_tps": tok / sum(self.loop_seconds[i]),
                    "ours_cpu_tps": tok / sum(self.ours_cpu[i]),
                    "loop_cpu_tps": tok / sum(self.loop_cpu[i]),
                }
            )
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        ours_tps, loop_tps = med["ours_tps"], med["loop_tps"]
        per_token = self.loop.flops["per_token"]
        ours_losses = [float(x) for x in self.ours_losses]
        loop_losses = [float(x) for x in self.loop.losses]
        # one loss per optimizer step on the Trainer's side too (summed over micro-batches)
        per_step, k = [], 0
        for micro in self.batches:
            per_step.append(sum(ours_losses[k : k + len(micro)]))
            k += len(micro)
        diffs = [abs(x - y) for x, y in zip(per_step, loop_losses)]
        m = slice(w, None)
        return {
            "ratio_vs_torch": round(ours_tps / loop_tps, 4),
            "ours_tokens_per_s": round(ours_tps, 1),
            "loop_tokens_per_s": round(loop_tps, 1),
            "round_ratios": [round(r["ours_tps"] / r["loop_tps"], 4) for r in rounds],
            "round_ratio_median": round(statistics.median(r["ours_tps"] / r["loop_tps"] for r in rounds), 4),
            # the same from process CPU seconds: less sensitive to other jobs on the machine
            "cpu_time_ratio": round(med["ours_cpu_tps"] / med["loop_cpu_tps"], 4),
            "ours_achieved_gflops": round(per_token * ours_tps / 1e9, 2),
            "loop_achieved_gflops": round(per_token * loop_tps / 1e9, 2),
            "flops": self.loop.flops,
            "ours_step_seconds": [round(t, 3) for t in self.ours[m]],
            "ours_compute_seconds": [round(t, 3) for t in self.ours_compute[m]],
            "loop_step_seconds": [round(t, 3) for t in self.loop_seconds[m]],
            "ours_step_cpu_seconds": [round(t, 3) for t in self.ours_cpu[m]],
            "loop_step_cpu_seconds": [round(t, 3) for t in self.loop_cpu[m]],
            "tokens_per_step": tokens[m],
            "padded_tokens_per_step": padded[m],
            "warmup": {
                "ours_seconds": [round(t, 3) for t in self.ours[:w]],
                "loop_seconds": [round(t, 3) for t in self.loop_seconds[:w]],
                "tokens": tokens[:w],
            },
            "loss_check": {
                "ours_first": round(per_step[0], 6),
                "loop_first": round(loop_losses[0], 6),
                "max_abs_diff": float(f"{max(diffs):.3g}"),
                "steps": len(diffs),
            },
            "optimizer": self.optimizer_check(),
            "settings": {
                "config": f"recipes/configs/demo/{self.kind}.yaml",
                "max_steps": self.max_steps,
                "warmup_steps_skipped": w,
                "steps_per_round": s,
                "rounds": self.repeats,
                "per_device_train_batch_size": a.per_device_train_batch_size,
                "gradient_accumulation_steps": a.gradient_accumulation_steps,
                "max_length": a.max_length,
                "train_sampling_strategy": a.train_sampling_strategy,
                "trainable_layers": self.model_args.trainable_layers,
                "dtype": self.model_args.dtype,
                "mixed_precision": self.trainer.accelerator.mixed_precision,
                "max_grad_norm": a.max_grad_norm,
                "logging_steps": a.logging_steps,
                **(
                    {"reward_loss": self.trainer.reward_loss}
                    if self.kind == "rm"
                    else {"completion_only_loss": a.completion_only_loss}
                ),
                "dropout_p_max": self.loop.dropout_p_max(),
                "thread_resets": self.thread_resets,
            },
        }


def run_kind(kind: str, a: argparse.Namespace, folder: Path) -> dict:
    recipe = load_recipe(kind)
    bench = Bench(kind, a.warmup, a.steps, a.repeats, a.threads)
    recipe.train_and_export = bench.wrap(recipe.train_and_export)
    argv = [
        "--config",
        str(ROOT / "recipes" / "configs" / "demo" / f"{kind}.yaml"),
        "--output_dir",
        str(folder / kind),
        "--max_steps",
        str(bench.max_steps),
        "--report_to",
        "none",
        "--save_strategy",
        "no",
    ]
    if a.device == "cuda":
        argv += ["--use_cpu", "false"]
    for item in a.set:
        key, _, value = item.partition("=")
        argv += [f"--{key}", value]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs: stdout keeps only the JSON
        recipe.main(argv)
    result = bench.report()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["overrides"] = a.set
    del bench, recipe
    gc.collect()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated: {', '.join(KINDS)}")
    p.add_argument("--steps", type=int, default=1, help="Trainer steps per round (then the loop on the same batches)")
    p.add_argument("--repeats", type=int, default=10, help="measured rounds per kind")
    p.add_argument("--warmup", type=int, default=1, help="uncounted steps on each side before the rounds")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both sides (CPU)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    p.add_argument("--peak-size", type=int, default=None, help="side of the peak matmul (default: CPU 2048, GPU 8192)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a field of both demo configs (repeatable), e.g. max_length=64",
    )
    a = p.parse_args(argv)
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds) or a.steps < 1 or a.repeats < 1 or a.warmup < 0:
        p.error(f"--kinds takes {', '.join(KINDS)}; --steps and --repeats >= 1, --warmup >= 0")
    if any("=" not in s for s in a.set):
        p.error("--set takes FIELD=VALUE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(a.threads)
    start = time.perf_counter()

    device = torch.device("cuda" if a.device == "cuda" else "cpu")
    # the GPU recipes train under bf16 autocast (TRL's default there), so their peak is bf16's
    bf16_off = any(x.replace(" ", "").lower() in ("bf16=false", "bf16=0") for x in a.set)
    peak_dtype = torch.bfloat16 if a.device == "cuda" and not bf16_off else torch.float32
    size = a.peak_size or (8192 if a.device == "cuda" else 2048)
    peaks = {"start": peak_gflops(device, size, peak_dtype)}
    _log(f"matmul {size}x{size}: {peaks['start']['best']} GFLOP/s")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_train.") as folder:
        for kind in kinds:
            results[kind] = run_kind(kind, a, Path(folder))
    peaks["end"] = peak_gflops(device, size, peak_dtype)
    peak = max(peaks["start"]["best"], peaks["end"]["best"])
    for r in results.values():  # against the larger of the two peaks
        for side in ("ours", "loop"):
            r[f"{side}_fraction_of_peak"] = round(r[f"{side}_achieved_gflops"] / peak, 4)
        r["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")

    results = with_unrun_cases(a.results, a.device, KINDS, results)
    ratios = [results[k]["ratio_vs_torch"] for k in KINDS if k in results]
    report = {
        "benchmark": "bench_train",
        "ratio_vs_torch": {
            **{k: results[k]["ratio_vs_torch"] for k in KINDS if k in results},
            "overall": round(math.exp(statistics.fmean(math.log(x) for x in ratios)), 4),
        },
        "target": TARGET,
        "device": a.device,
        "peak_matmul_gflops": {"size": size, "dtype": str(peak_dtype).replace("torch.", ""), **peaks, "peak": peak},
        **{k: results[k] for k in KINDS if k in results},
        "method": {
            "ours": "the recipe's main() on the demo config (max_steps, temp output_dir, report_to none, "
            "save_strategy no); a step = the interval between consecutive on_step_end callbacks "
            "(data loading and collation, forward, backward, clipping, optimizer and scheduler, "
            "callbacks, the previous step's logging); ours_compute_seconds = on_step_begin -> on_step_end",
            "loop": "same loader, settings and initial weights, torch AdamW with the Trainer's settings, the same "
            "scheduler, hand-written loss, clip_grad_norm_, replaying the Trainer's exact batches; a step = "
            "moving its batch to the device through zero_grad",
            "alternation": "warm-up steps on each side (uncounted), then rounds: --steps Trainer steps, the loop on "
            "the same batches; tokens/s per round = non-padding tokens / seconds, medians over rounds",
            "ratio_vs_torch": "median ours tokens/s / median loop tokens/s per kind; "
            "overall = geometric mean of the kinds",
            "flops": "per token, counted with hooks on every nn.Linear: forward 2*in*out; backward 2*in*out for the "
            "input gradient where autograd computes it + 2*in*out where the weight trains; = 6N for full "
            "fine-tuning, 2N + 4N_trained + 2N_frozen_path with trainable_layers; attention scores and "
            "elementwise ops excluded; achieved = flops per token x non-padding tokens/s, peak = best "
            "square matmul in this run (the larger of start and end)",
        },
        "settings": {
            "threads": a.threads,
            "steps": a.steps,
            "repeats": a.repeats,
            "warmup": a.warmup,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(report))
    a.results.parent.mkdir(parents=True, exist_ok=True)
    a.results.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
