"""What a step loads: the model settings every step shares, LoRA's included."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from transformers import PretrainedConfig

from ..errors import ConfigError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "auto": "auto"}

LORA_TARGETS: dict[str, list[str]] = {
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    "bloom": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] | None = None  # None: the family's attention + MLP projections
    modules_to_save: list[str] | None = None  # trained in full next to the adapters

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ConfigError(f"lora.r must be a positive integer, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ModelSettings:
    name_or_path: str
    dtype: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    lora: LoraSettings | None = None
    gradient_checkpointing: bool = False
    # Overrides every dropout probability in the config; 0.0 is DeepSpeed-Chat's --disable_dropout.
    dropout: float | None = None
    # Freeze tuning (LLaMA-Factory's `freeze`): train only the top N blocks (None: all). Backward
    # then stops at the lowest trained block, so a step costs far less than full fine-tuning.
    trainable_layers: int | None = None
    trust_remote_code: bool = False
    cache_dir: str | None = None  # hub download cache

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got '{self.dtype}'")
        if self.load_in_8bit and self.load_in_4bit:
            raise ConfigError(f"model '{self.name_or_path}': choose load_in_8bit or load_in_4bit, not both")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.trainable_layers is not None and self.trainable_layers < 1:
            raise ConfigError(f"trainable_layers must be >= 1, got {self.trainable_layers}")

    @property
    def quantization(self) -> str:  # as step 3's *_quantization flags spell it
        return "8bit" if self.load_in_8bit else "4bit" if self.load_in_4bit else "none"


def model_family(config: PretrainedConfig) -> str:
    """'opt', 'bloom', 'llama' (also Mistral, Qwen2, SmolLM2...), otherwise the config's model_type."""
    model_type = getattr(config, "model_type", "") or ""
    return "llama" if model_type in {"llama", "mistral", "qwen2", "qwen3"} else model_type


def default_lora_targets(config: PretrainedConfig) -> list[str] | str:
    """The family's attention + MLP projections; PEFT's "all-linear" for other families."""
    family = model_family(config)
    return list(LORA_TARGETS[family]) if family in LORA_TARGETS else "all-linear"
