"""One model's count: parameters, trained and quantized weights, LoRA, block shapes."""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .architectures import DTYPE_BYTES, Shape, architecture, shape_of

if TYPE_CHECKING:
    from ..models import LoraSettings, ModelSettings


@dataclass(frozen=True)
class ModelSpec:
    """One model of a step, as the recipe loads it: its settings, whether it is a one-output
    sequence classifier (reward model / critic), and whether the step trains it (a frozen model
    loads without its LoRA, freezing and checkpointing settings)."""

    settings: ModelSettings
    reward: bool = False
    trained: bool = True

    def __hash__(self) -> int:  # ModelSettings holds lists; count_model caches on the spec
        return hash(repr(self))

    @property
    def lora(self) -> LoraSettings | None:
        """The LoRA adapters the step trains (None: none, or a frozen model)."""
        return self.settings.lora if self.trained else None

    @property
    def checkpointing(self) -> bool:
        return self.trained and self.settings.gradient_checkpointing


@dataclass(frozen=True)
class ModelCount:
    spec: ModelSpec
    shape: Shape
    params: int
    weight_bytes: int
    trainable: int
    trainable_bytes: int
    trainable_groups: tuple[tuple[str, int], ...]  # (dtype, bytes) of trainable params
    largest_trainable_bytes: int
    largest_block_params: int
    graph_layers: int  # blocks that keep activations without checkpointing
    full_layers: bool  # the trained blocks train their own weights (not only LoRA)
    lora_modules: frozenset  # short names of the LoRA-adapted linears
    head_trained: bool
    compute_bytes: int  # bytes of one activation value
    lora_base_bytes: int = 0  # fp32 weights of LoRA-adapted linears (merged copies for generation)


def _resolve_dtype(dtype: str, config) -> str:
    if dtype != "auto":
        return dtype
    import torch

    found = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    found = {torch.float16: "fp16", torch.bfloat16: "bf16", "float16": "fp16", "bfloat16": "bf16"}.get(found)
    return found or "fp32"


@contextlib.contextmanager
def quiet():
    import transformers

    before = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    logging.getLogger("peft").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            transformers.logging.set_verbosity(before)


@functools.lru_cache(maxsize=64)
def count_model(spec: ModelSpec) -> ModelCount:
    """Parameters, bytes and trainability of `spec`, from its architecture built on `meta`."""
    import torch
    from torch import nn
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from ..models import DTYPES, ModelSettings, find_blocks, override_dropout, prepare_for_training

    given = spec.settings
    config = copy.deepcopy(architecture(given.name_or_path))
    if given.dropout is not None:
        override_dropout(config, given.dropout)
    dtype = _resolve_dtype(given.dtype, config)
    if spec.reward:
        config.num_labels = 1
    auto = AutoModelForSequenceClassification if spec.reward else AutoModelForCausalLM
    # Quantisation is accounted for below: bitsandbytes cannot build on `meta`.
    settings = ModelSettings(
        given.name_or_path,
        dtype,
        lora=given.lora if spec.trained else None,
        trainable_layers=given.trainable_layers if spec.trained else None,
    )
    quant = given.quantization
    with quiet(), torch.device("meta"):
        model = auto.from_config(config, dtype=DTYPES[dtype])
        if spec.trained:
            model = prepare_for_training(model, settings, spec.reward)
        else:
            model.requires_grad_(False)

    blocks_name, blocks = find_blocks(model) or (None, [])
    quantized: set[int] = set()
    if quant != "none":
        # bitsandbytes replaces the Linear layers of the blocks (not the head or embeddings).
        for name, module in model.named_modules():
            if (
                isinstance(module, nn.Linear)
                and blocks_name
                and name.startswith(blocks_name + ".")
                and "lora_" not in name
            ):
                quantized.add(id(module.weight))
    weight_bytes = params = trainable = trainable_bytes = largest = 0
    groups: dict[str, int] = {}
    # engine.merged_lora: only unquantised fp32 layers are merged
    lora_base = (
        sum(
            m.base_layer.weight.numel() * 4
            for m in model.modules()
            if hasattr(m, "lora_A") and m.base_layer.weight.dtype == torch.float32
        )
        if quant == "none"
        else 0
    )
    for p in model.parameters():
        n = p.numel()
        params += n
        if id(p) in quantized:
            rows = p.shape[0]
            weight_bytes += n + 4 * rows if quant == "8bit" else math.ceil(n * 0.516)
            continue
        size = p.element_size()
        if quant != "none" and settings.lora is not None and size == 2:
            size = 4  # prepare_model_for_kbit_training upcasts the rest to fp32
        weight_bytes += n * size
        if p.requires_grad:
            trainable += n
            trainable_bytes += n * size
            key = {4: "fp32", 2: str(p.dtype).replace("torch.", "")}.get(size, "other")
            groups[key] = groups.get(key, 0) + n * size
            largest = max(largest, n * size)

    trained_blocks, lora_modules, full = [], set(), False
    for i, block in enumerate(blocks):
        named = list(block.named_parameters())
        if any(p.requires_grad for _, p in named):
            trained_blocks.append(i)
        full = full or any(p.requires_grad and "lora_" not in n for n, p in named)
        lora_modules |= {n.split(".")[-1] for n, m in block.named_modules() if hasattr(m, "lora_A")}
    head = (
        model.get_output_embeddings()
        if not spec.reward
        else next((m for n, m in model.named_modules() if n.split(".")[-1] == "score"), None)
    )
    head_trained = bool(head is not None and any(p.requires_grad for p in head.parameters()))
    graph = len(blocks) - min(trained_blocks) if trained_blocks else 0
    block_params = max((sum(p.numel() for p in b.parameters()) for b in blocks), default=0)
    return ModelCount(
        spec,
        shape_of(config),
        params,
        weight_bytes,
        trainable,
        trainable_bytes,
        tuple(sorted(groups.items())),
        largest,
        block_params,
        graph,
        full,
        frozenset(lora_modules),
        head_trained,
        DTYPE_BYTES.get(dtype, 4),
        lora_base,
    )
