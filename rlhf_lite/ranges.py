"""The valid range of every numeric setting (dataclass fields and CLI options), checked before any data is read."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Range:
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # `low` itself is outside
    high_open: bool = False
    integer: bool = False
    also: tuple = ()  # values allowed outside [low, high], such as -1 for "no limit"

    def __contains__(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if value in self.also:
            return True
        if math.isnan(value) or (self.integer and value != int(value)):
            return False
        low_ok = self.low is None or value > self.low or (value == self.low and not self.low_open)
        high_ok = self.high is None or value < self.high or (value == self.high and not self.high_open)
        return low_ok and high_ok

    def __str__(self) -> str:
        text = "an integer" if self.integer else "a number"
        if self.high is not None:  # every range with a high bound has a low one
            text += f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text += f" {'>' if self.low_open else '>='} {self.low:g}"
        return " or ".join([*(f"{v:g}" for v in self.also), text])

    def outside(self) -> list[float]:
        """Values just outside the range (and NaN for real numbers): what the tests try."""
        out = [] if self.integer else [math.nan]
        if self.low is not None:
            below = self.low if self.low_open else self.low - (1 if self.integer else 1e-3)
            out.append(below if below not in self.also else self.low - 2)
        if self.high is not None:
            out.append(self.high if self.high_open else self.high + (1 if self.integer else 1e-3))
        return [int(v) if self.integer else v for v in out]


COUNT = Range(1, integer=True)
NON_NEGATIVE_INT = Range(0, integer=True)
POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1, high_open=True)  # dropout, betas: 1 would be degenerate
UNIT = Range(0, 1)
LEARNING_RATE = Range(0, 1)  # 0 freezes a model (a critic warm-up); above 1 is a typo for 1e-x

RANGES: dict[str, Range] = {
    # batches, lengths, epochs
    **dict.fromkeys(("per_device_train_batch_size", "per_device_eval_batch_size", "batch_size", "n", "beams"), COUNT),
    **dict.fromkeys(("gradient_accumulation_steps", "eval_accumulation_steps", "generation_batches"), COUNT),
    **dict.fromkeys(("per_device_generation_batch_size", "per_device_training_batch_size", "ppo_epochs"), COUNT),
    **dict.fromkeys(("max_length", "max_prompt_seq_len", "max_answer_seq_len", "max_new_tokens"), COUNT),
    "max_history_tokens": COUNT,
    "min_new_tokens": NON_NEGATIVE_INT,
    "num_train_epochs": POSITIVE,
    "max_steps": Range(1, integer=True, also=(-1,)),
    # optimisation
    **dict.fromkeys(("learning_rate", "actor_learning_rate", "critic_learning_rate"), LEARNING_RATE),
    **dict.fromkeys(("lora_learning_rate", "actor_lora_learning_rate", "critic_lora_learning_rate"), LEARNING_RATE),
    **dict.fromkeys(("weight_decay", "actor_weight_decay", "critic_weight_decay"), UNIT),
    **dict.fromkeys(("adam_beta1", "adam_beta2", "label_smoothing_factor"), FRACTION),
    **dict.fromkeys(("adam_epsilon", "neftune_noise_alpha"), POSITIVE),
    **dict.fromkeys(("max_grad_norm", "warmup_steps", "num_warmup_steps"), NON_NEGATIVE),
    "torch_empty_cache_steps": COUNT,
    # models
    **dict.fromkeys(("lora_r", "trainable_layers", "actor_trainable_layers", "critic_trainable_layers"), COUNT),
    **dict.fromkeys(("actor_lora_dim", "critic_lora_dim"), NON_NEGATIVE_INT),
    **dict.fromkeys(("lora_alpha", "lora_alpha_ratio"), POSITIVE),
    **dict.fromkeys(("lora_dropout", "dropout"), FRACTION),
    **dict.fromkeys(("router_aux_loss_coef", "center_rewards_coefficient"), NON_NEGATIVE),
    # sampling
    "temperature": POSITIVE,
    "top_k": NON_NEGATIVE_INT,
    "top_p": Range(0, 1, low_open=True),
    # PPO
    **dict.fromkeys(("init_kl_coef", "no_eos_penalty", "ptx_coef"), NON_NEGATIVE),
    **dict.fromkeys(("target_kl", "clip_reward_value", "cliprange_value"), POSITIVE),
    "empty_answer_score": Range(),  # any number (clipped to ±clip_reward_value like every score)
    **dict.fromkeys(("cliprange", "ema_beta"), Range(0, 1, low_open=True, high_open=True)),
    "kl_horizon": COUNT,
    **dict.fromkeys(("gamma", "lam"), UNIT),
    # data
    "dataset_weights": POSITIVE,  # each of them
    "data_share": Range(0, 2, integer=True),
    "frozen_block_cache_gb": NON_NEGATIVE,
    # bookkeeping (the Trainer's steps may be a ratio of the run when below 1)
    **dict.fromkeys(("logging_steps", "save_steps", "eval_steps"), POSITIVE),
    **dict.fromkeys(("save_total_limit", "pad_to_multiple_of"), COUNT),
    "PPOArguments.logging_steps": COUNT,
    "PPOArguments.save_steps": NON_NEGATIVE_INT,  # 0: only the final checkpoint
    "PPOArguments.save_total_limit": NON_NEGATIVE_INT,  # 0: keep every checkpoint
    "eval_delay": NON_NEGATIVE,
    **dict.fromkeys(("print_answers_interval", "dataloader_num_workers", "show"), NON_NEGATIVE_INT),
    **dict.fromkeys(("seed", "data_seed", "data_split_seed"), Range(0, 2**32 - 1, integer=True)),
    **dict.fromkeys(("dataloader_prefetch_factor", "dataset_num_proc", "ddp_bucket_cap_mb", "ddp_timeout"), COUNT),
    "local_rank": Range(-1, integer=True),
    # serving
    "port": Range(1, 65535, integer=True),
    # the planner's hardware
    "gpu_mem_gb": POSITIVE,
    "num_gpus": COUNT,
    "zero_stage": Range(0, 3, integer=True),
}


def range_of(cls: type, name: str) -> Range | None:
    """The range of field `name` of dataclass `cls` (a class-specific entry first)."""
    return next((RANGES[k] for c in cls.__mro__ if (k := f"{c.__name__}.{name}") in RANGES), RANGES.get(name))


def numeric_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of dataclass `cls` that may hold numbers, by annotation (parsers rewrite `Field.type`)."""
    annotations = {k: v for c in reversed(cls.__mro__) for k, v in c.__dict__.get("__annotations__", {}).items()}
    return [f for f in dataclasses.fields(cls) if re.search(r"\b(int|float)\b", str(annotations.get(f.name, f.type)))]


def _number(value):
    """The number `value` holds (`int | str` fields arrive as text); None for other text."""
    if not isinstance(value, str):
        return value
    try:
        return float(value) if any(c in value.lower() for c in ".en") else int(value)
    except ValueError:
        return None


def check_fields(obj) -> None:
    """Raise ConfigError for the first numeric field of dataclass `obj` outside its range."""
    for f in numeric_fields(type(obj)):
        value, allowed = getattr(obj, f.name), range_of(type(obj), f.name)
        if allowed is None or value is None:  # None: not set (libraries fill some in __post_init__)
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, str) and _number(v) is None:
                continue
            if _number(v) not in allowed:
                raise ConfigError(f"{f.name} must be {allowed}, got {v!r}")


def option(name: str):
    """An argparse `type` for option `name`: its number, or a one-line error with its range."""
    allowed = RANGES[name]

    def convert(text: str):
        try:
            value = (int if allowed.integer else float)(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got '{text}'") from None
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    convert.__name__ = name  # argparse names the type in its messages
    convert.allowed = allowed
    return convert
