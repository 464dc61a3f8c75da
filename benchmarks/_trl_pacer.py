"""The callback both TRL workers train under (see their docstrings): `train()` waits at its start and
after each optimizer step until the parent says "run", and each step is reported with its wall time
and its split into generation, scoring and training."""

import time

import accelerate
import peft
import torch
import transformers
import trl
from _worker_protocol import send, wait_for_run
from transformers import TrainerCallback


class Pacer(TrainerCallback):
    """`marks`: the phase boundaries the worker's wrappers record ("generation_end", "training_start",
    "sequence_shape"); `fields(state)`: the worker's own fields of an iteration's report."""

    def __init__(self, start: float, marks: dict, fields):
        self.start, self.marks, self.fields = start, marks, fields

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        optimizer = getattr(optimizer, "optimizer", optimizer)  # under accelerate's wrapper
        send(
            {
                "event": "ready",
                "load_seconds": round(time.perf_counter() - self.start, 2),
                "versions": {m.__name__: m.__version__ for m in (trl, transformers, torch, peft, accelerate)},
                "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "optimizer": type(optimizer).__name__ + (" (fused)" if optimizer.defaults.get("fused") else ""),
                "device": str(args.device),
            }
        )
        self._next()

    def on_step_end(self, args, state, control, **kwargs):
        if args.device.type == "cuda":
            torch.cuda.synchronize()
        end, marks = time.perf_counter(), self.marks
        t0 = marks["run"]
        send(
            {
                "event": "iteration",
                "seconds": end - t0,
                "generation": marks["generation_end"] - t0,
                "scoring": marks["training_start"] - marks["generation_end"],
                "training": end - marks["training_start"],
                "sequence_shape": marks["sequence_shape"],
                **self.fields(state),
            }
        )
        if state.global_step < state.max_steps:
            self._next()

    def _next(self) -> None:
        self.marks.clear()
        wait_for_run()
        self.marks["run"] = time.perf_counter()
