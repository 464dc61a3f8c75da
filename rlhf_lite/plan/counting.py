"""Exact parameter counts of a step's models, built on the meta device through the project's own loading."""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..quiet import logger_silenced
from .architectures import DTYPE_BYTES, architecture

if TYPE_CHECKING:
    from ..models import LoraSettings, ModelSettings


@dataclass(frozen=True)
class Shape:
    family: str  # opt, bloom, llama (also the fallback for other families)
    h: int  # hidden size
    ffn: int  # MLP inner size
    heads: int
    kv: int  # key/value width (smaller with grouped-query attention)
    layers: int
    vocab: int  # width of the logits
    out_dim: int  # width of the hidden state the head reads (OPT-350M: 512)
    eager_attention: bool  # BLOOM: scores (B, a, T, T) are materialised and kept
    dropout: float = 0.0  # OPT's residual dropout (after attention and after fc2)


def shape_of(config) -> Shape:
    from ..models import model_family

    family = model_family(config)
    h, heads = config.hidden_size, config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    sizes = [getattr(config, k, None) for k in ("ffn_dim", "intermediate_size", "n_inner")]
    ffn = next((x for x in sizes if x), 4 * h)
    kv = (getattr(config, "num_key_value_heads", None) or heads) * head_dim
    out_dim = getattr(config, "word_embed_proj_dim", None) or h
    dropout = float(getattr(config, "dropout", 0.0) or 0.0) if family == "opt" else 0.0
    name = family if family in ("opt", "bloom") else "llama"
    layers, vocab = config.num_hidden_layers, config.vocab_size
    return Shape(name, h, ffn, heads, kv, layers, vocab, out_dim, family == "bloom", dropout)


@dataclass(frozen=True)
class ModelSpec:
    """One model of a step as the recipe loads it: a one-output sequence classifier (reward model
    / critic) or not, trained or frozen (a frozen model loads without LoRA, freezing, checkpointing)."""

    settings: ModelSettings
    reward: bool = False
    trained: bool = True

    def __hash__(self) -> int:  # ModelSettings holds lists; count_model caches on the spec
        return hash(repr(self))

    @property
    def lora(self) -> LoraSettings | None:
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
    largest_group_bytes: int  # the largest dtype group of trainable parameters
    largest_trainable_bytes: int
    largest_block_params: int
    graph_layers: int  # blocks that keep activations without checkpointing
    full_layers: bool  # the trained blocks train their own weights (not only LoRA)
    lora_modules: frozenset  # short names of the LoRA-adapted linears
    head_trained: bool
    compute_bytes: int  # bytes of one activation value
    lora_base_bytes: int = 0  # fp32 weights of LoRA-adapted linears (merged copies for generation)


@contextlib.contextmanager
def quiet():
    import transformers  # noqa: F401 (importing it sets its logger's level: first)

    with logger_silenced("transformers"), logger_silenced("peft"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@functools.lru_cache(maxsize=64)
def count_model(spec: ModelSpec) -> ModelCount:
    """Parameters, bytes and trainability of `spec`, from its architecture built on `meta`."""
    import torch
    from torch import nn
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from ..models import DTYPES, ModelSettings, decoder_blocks, override_dropout, prepare_for_training, score_head

    given, quant = spec.settings, spec.settings.quantization
    config = architecture(given.name_or_path)
    if given.dropout is not None:
        override_dropout(config, given.dropout)
    dtype = given.dtype
    if dtype == "auto":
        found = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        names = {torch.float16: "fp16", torch.bfloat16: "bf16", "float16": "fp16", "bfloat16": "bf16"}
        dtype = names.get(found) or "fp32"
    if spec.reward:
        config.num_labels = 1
    auto = AutoModelForSequenceClassification if spec.reward else AutoModelForCausalLM
    with quiet(), torch.device("meta"):
        model = auto.from_config(config, dtype=DTYPES[dtype])
        if spec.trained:  # without quantisation (counted below): bitsandbytes cannot build on `meta`
            settings = ModelSettings(
                given.name_or_path, dtype, lora=given.lora, trainable_layers=given.trainable_layers
            )
            model = prepare_for_training(model, settings, spec.reward)
        else:
            model.requires_grad_(False)

    blocks = decoder_blocks(model) or []
    # bitsandbytes replaces the Linear layers of the blocks (not the head or embeddings).
    linears = [m for b in blocks for n, m in b.named_modules() if isinstance(m, nn.Linear) and "lora_" not in n]
    quantized = {id(m.weight) for m in linears} if quant != "none" else set()
    weight_bytes = params = trainable = trainable_bytes = largest = 0
    groups: dict = {}
    for p in model.parameters():
        n = p.numel()
        params += n
        if id(p) in quantized:
            weight_bytes += n + 4 * p.shape[0] if quant == "8bit" else math.ceil(n * 0.516)
            continue
        size = p.element_size()
        if quant != "none" and spec.lora is not None and size == 2:
            size = 4  # prepare_model_for_kbit_training upcasts the rest to fp32
        weight_bytes += n * size
        if p.requires_grad:
            trainable += n
            trainable_bytes += n * size
            key = "fp32" if size == 4 else p.dtype
            groups[key] = groups.get(key, 0) + n * size
            largest = max(largest, n * size)

    trained_blocks = [i for i, b in enumerate(blocks) if any(p.requires_grad for p in b.parameters())]
    full = any(p.requires_grad and "lora_" not in n for b in blocks for n, p in b.named_parameters())
    lora_modules = {n.split(".")[-1] for b in blocks for n, m in b.named_modules() if hasattr(m, "lora_A")}
    head = score_head(model) if spec.reward else model.get_output_embeddings()
    # engine.merged_lora merges only unquantised fp32 layers
    lora_base = sum(
        m.base_layer.weight.numel() * 4
        for m in model.modules()
        if quant == "none" and hasattr(m, "lora_A") and m.base_layer.weight.dtype == torch.float32
    )
    return ModelCount(
        spec,
        shape_of(config),
        params,
        weight_bytes,
        trainable,
        trainable_bytes,
        max(groups.values(), default=0),
        largest,
        max((sum(p.numel() for p in b.parameters()) for b in blocks), default=0),
        len(blocks) - min(trained_blocks) if trained_blocks else 0,
        full,
        frozenset(lora_modules),
        bool(head is not None and any(p.requires_grad for p in head.parameters())),
        DTYPE_BYTES.get(dtype, 4),
        lora_base,
    )
