"""Peak-memory planner: will a preset's three steps fit, and what to change if not.

    python -m rlhf_lite.plan --preset opt-1.3b-4090                  # one 24 GB GPU (from the preset)
    python -m rlhf_lite.plan --preset opt-13b-node --num-gpus 8 --zero-stage 3
    python -m rlhf_lite.plan --preset demo --device cpu              # host memory of a run on this CPU
    python -m rlhf_lite.plan --preset opt-1.3b-4090 --json --set ppo.max_answer_seq_len=128

For each step (sft, rm, ppo) the planner prints the estimated peak memory of one process split
into weights, gradients, optimizer states, activations, generation KV cache, logits and runtime,
a verdict against the memory budget and, when it does not fit, the changes (YAML keys or
accelerate configs) that bring it down, largest saving first.

"GB" means GiB (2**30 bytes) throughout, like nvidia-smi's MiB: a "24 GB" RTX 4090 has
24564 MiB = 23.99 GB.

How the estimate is made (the code below carries the details next to each formula):

* Parameters are counted exactly: each model is built on the `meta` device from its real config
  (no weights are read) and passed through the project's own `_prepare_for_training`, so LoRA
  targets and ranks, `trainable_layers` and PEFT's fp32 adapters are what a run gets. 8-bit
  weights take 1 byte + an fp32 scale per output row, 4-bit NF4 with double quantisation 0.516
  byte; `prepare_model_for_kbit_training` turns the other 16-bit weights into fp32.
* Gradients: one per trainable parameter, in its dtype. Optimizer: torch's AdamW keeps two
  states in the dtype of each parameter (bf16 states for bf16 weights, fp32 for PEFT's fp32
  adapters; no fp32 master copy without DeepSpeed), plus at the step one temporary per parameter
  group on a GPU (its foreach path; none for the HF Trainer's fused AdamW). DeepSpeed ZeRO keeps
  an fp32 master copy and two fp32 states (12 bytes per trained parameter) divided over the
  GPUs, or on the host with offload. ZeRO-2 also divides the gradients, ZeRO-3 the weights of
  every model (and gathers the whole actor for generation).
* Activations: bytes per token per transformer block, counted tensor by tensor from what
  autograd saves in the transformers 5 implementations (OPT, BLOOM, Llama; others as Llama),
  in the spirit of Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
  Transformer Models" (sbh(34 + 5as/h) bytes for GPT blocks with 16-bit activations), but for
  SDPA attention (q, k, v, output, an fp32 logsumexp and a per-block copy of the mask are kept,
  no a x s x s scores except in BLOOM's eager attention), grouped-query k/v repeated to every
  head, dropout masks, and LoRA's extra copies. With gradient checkpointing a block keeps only its input (h values per
  token) and one block at a time is recomputed. `tests/test_plan.py` checks the per-block
  formula against autograd's saved tensors on small OPT (pre/post-LN, with/without dropout),
  Llama (GQA) and BLOOM models, fp32 and bf16, full and LoRA: it matches to the byte.
* PPO logits: `token_logprobs` upcasts the answer slice of the (B, T, V) logits to fp32 and
  takes gather - logsumexp. Measured on this CPU (see `logits_peaks`): the no-grad forward peaks
  at X + U (+ U for the upcast copy when the logits are 16-bit) and the training
  forward + backward at max(that, S + 3U), with X = B*T*V*d bytes of logits, U = B*A*V*4 and S
  the saved input of logsumexp (X for fp32 logits, whose slice keeps the whole tensor alive, U
  otherwise). SFT uses TRL's chunked LM head (tiles of 4096 tokens x 32768 vocabulary).
* PPO phases: generation (KV cache 2*L*B*T*kv_dim*d), scoring (four no-grad forwards), training
  (actor and critic activations, gradients, logits) and the optimizer step; the peak is the
  largest, with the optimizer states counted from the start (the steady state of a run: the
  first update allocates them only at its end). EMA (enable_ema) is a copy of the actor's
  trained weights; the reference is a second frozen actor unless the actor has LoRA.
* Runtime: on a GPU the CUDA context (CUDA_CONTEXT_BYTES, not seen by
  torch.cuda.max_memory_allocated) plus a 10% allocator margin; on the CPU the resident size of
  Python with torch, transformers, PEFT, TRL, accelerate and a tokenizer loaded
  (CPU_RUNTIME_BYTES). Loading is never the peak: transformers 5 maps safetensors files and the
  weights enter the resident set once, as they are first used (measured: RSS after loading the
  four demo models is the runtime alone).

`benchmarks/bench_memory.py` checks the `--device cpu` estimate of a PPO step against the
measured peak RSS of a real one (demo model, and random OPT-1.3B + OPT-350M in bf16).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import json
import logging
import math
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .errors import ArgumentParser, ConfigError, RLHFLiteError, cli
from .presets import preset_file, read_yaml
from .ranges import option

GB = 2**30
STEPS = ("sft", "rm", "ppo")

# Measured on this project's CPU machine (Python 3.11, torch 2.13 CPU, transformers 5.23, PEFT
# 0.21, TRL 1.16, accelerate 1.15): VmRSS after `from rlhf_lite.ppo import RLHFEngine,
# PPOTrainer`, loading a tokenizer and creating the Accelerator = 0.54e9 bytes, peak 0.56e9.
CPU_RUNTIME_BYTES = int(0.55e9)
# A CUDA context with cuBLAS loaded (torch 2.x, lazy module loading) holds ~300-600 MiB that
# torch.cuda.max_memory_allocated does not see; 0.5 GiB is the planning value.
CUDA_CONTEXT_BYTES = int(0.5 * GB)
# PyTorch's caching allocator reserves more than the tensors it hands out (segments rounded up to
# 2 MiB, freed blocks kept for reuse, fragmentation between differently sized activations):
# torch.cuda.max_memory_reserved typically exceeds max_memory_allocated by 5-15%. The GPU plan
# adds 10% of the tensors' peak (accelerate's `estimate-memory` warns of up to 20%). Neither
# margin applies to the CPU plan, whose total the benchmark checks against measured RSS.
CUDA_ALLOCATOR_MARGIN = 0.10
# TRL's fused chunked LM head (trl/kernels/chunked_logprob.py): TOKEN_CHUNK_SIZE x chunk_size.
TRL_TOKEN_CHUNK, TRL_VOCAB_CHUNK = 4096, 32768
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}

# --------------------------------------------------------------------------- architectures

# The config.json values of the models the presets use (so the planner works offline); the
# keys are the hub names (compared case-insensitively) plus the project's embedded model.
_OPT = dict(
    model_type="opt",
    vocab_size=50272,
    max_position_embeddings=2048,
    activation_function="relu",
    dropout=0.1,
    attention_dropout=0.0,
    activation_dropout=0.0,
    layerdrop=0.0,
    enable_bias=True,
    layer_norm_elementwise_affine=True,
    init_std=0.02,
    bos_token_id=2,
    eos_token_id=2,
    pad_token_id=1,
    do_layer_norm_before=True,
    dtype="float16",
    architectures=["OPTForCausalLM"],
)
_BLOOM = dict(
    model_type="bloom",
    vocab_size=250880,
    layer_norm_epsilon=1e-5,
    initializer_range=0.02,
    apply_residual_connection_post_layernorm=False,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=3,
    slow_but_exact=False,
    pretraining_tp=1,
    dtype="float16",
    architectures=["BloomForCausalLM"],
)
KNOWN_ARCHITECTURES: dict[str, dict] = {
    "facebook/opt-125m": _OPT
    | dict(hidden_size=768, ffn_dim=3072, num_hidden_layers=12, num_attention_heads=12, word_embed_proj_dim=768),
    # 350m is the odd one: 512-wide embeddings projected in/out, layer norm after each block.
    "facebook/opt-350m": _OPT
    | dict(
        hidden_size=1024,
        ffn_dim=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        word_embed_proj_dim=512,
        do_layer_norm_before=False,
    ),
    "facebook/opt-1.3b": _OPT
    | dict(hidden_size=2048, ffn_dim=8192, num_hidden_layers=24, num_attention_heads=32, word_embed_proj_dim=2048),
    "facebook/opt-6.7b": _OPT
    | dict(hidden_size=4096, ffn_dim=16384, num_hidden_layers=32, num_attention_heads=32, word_embed_proj_dim=4096),
    "facebook/opt-13b": _OPT
    | dict(hidden_size=5120, ffn_dim=20480, num_hidden_layers=40, num_attention_heads=40, word_embed_proj_dim=5120),
    "bigscience/bloom-560m": _BLOOM | dict(hidden_size=1024, n_layer=24, n_head=16),
    "bigscience/bloom-1b1": _BLOOM | dict(hidden_size=1536, n_layer=24, n_head=16),
    # What rlhf_lite.embedded converts SmolLM2-135M-Instruct's GGUF file into.
    "embedded:smollm2-135m": dict(
        model_type="llama",
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        hidden_act="silu",
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        rope_parameters={"rope_theta": 100000.0, "rope_type": "default"},
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        dtype="float32",
        architectures=["LlamaForCausalLM"],
    ),
}
KNOWN_ARCHITECTURES["huggingfacetb/smollm2-135m-instruct"] = KNOWN_ARCHITECTURES["embedded:smollm2-135m"]
KNOWN_ARCHITECTURES["huggingfacetb/smollm2-135m"] = KNOWN_ARCHITECTURES["embedded:smollm2-135m"]


def architecture(name_or_path: str):
    """The transformers config of a model, without its weights: a local folder's config.json, one
    of KNOWN_ARCHITECTURES (offline), or the hub's config.json through AutoConfig."""
    from transformers import AutoConfig, BloomConfig, LlamaConfig, OPTConfig

    name = str(name_or_path)
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return AutoConfig.from_pretrained(str(path))
    known = KNOWN_ARCHITECTURES.get(name.lower())
    if known is not None:
        values = dict(known)
        cls = {"opt": OPTConfig, "bloom": BloomConfig, "llama": LlamaConfig}[values.pop("model_type")]
        return cls(**values)
    if name.startswith("embedded:"):
        from .models import resolve_model_path

        return AutoConfig.from_pretrained(resolve_model_path(name))
    if path.exists():
        raise ConfigError(f"'{name}' has no config.json, so its architecture is unknown")
    try:
        return AutoConfig.from_pretrained(name)
    except Exception as err:  # offline, private, mistyped: all end the same way for the user
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"cannot read the architecture of '{name}' (not a local folder, not one of "
            f"{len(KNOWN_ARCHITECTURES)} known models, and the hub said: {detail})"
        ) from None


@dataclass(frozen=True)
class Shape:
    """The dimensions the activation formulas need."""

    family: str  # opt, bloom, llama (also the fallback for other families)
    h: int  # hidden size
    ffn: int  # MLP inner size
    heads: int
    kv: int  # key/value width (heads x head_dim, smaller with grouped-query attention)
    layers: int
    vocab: int  # rows of the (padded) embedding = width of the logits
    out_dim: int  # width of the hidden state the head reads (OPT-350M: 512)
    eager_attention: bool  # BLOOM: scores (B, a, T, T) are materialised and kept
    dropout: float = 0.0  # OPT's residual dropout (after attention and after fc2)


def shape_of(config) -> Shape:
    from .models import model_family

    family = model_family(config)
    h = config.hidden_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    kv = (getattr(config, "num_key_value_heads", None) or heads) * head_dim
    ffn = (
        getattr(config, "ffn_dim", None)
        or getattr(config, "intermediate_size", None)
        or getattr(config, "n_inner", None)
        or 4 * h
    )
    out_dim = getattr(config, "word_embed_proj_dim", None) or h
    dropout = float(getattr(config, "dropout", 0.0) or 0.0) if family == "opt" else 0.0
    return Shape(
        family if family in ("opt", "bloom") else "llama",
        h,
        ffn,
        heads,
        kv,
        config.num_hidden_layers,
        config.vocab_size,
        out_dim,
        family == "bloom",
        dropout,
    )


# --------------------------------------------------------------------------- one model's count


@dataclass(frozen=True)
class ModelSpec:
    """One model of a step, as the recipe loads it."""

    path: str
    reward: bool = False  # a one-output sequence classifier (reward model / critic)
    dtype: str = "fp32"
    lora_r: int = 0
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] | None = None
    quant: str = "none"  # none, 8bit, 4bit
    trainable_layers: int | None = None
    trained: bool = True
    checkpointing: bool = False
    dropout: float | None = None  # overrides every dropout probability (None: the config's)


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
def _quiet():
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

    from .models import DTYPES, LoraSettings, ModelSettings, _override_dropout, _prepare_for_training, find_blocks

    config = copy.deepcopy(architecture(spec.path))
    if spec.dropout is not None:
        _override_dropout(config, spec.dropout)
    dtype = _resolve_dtype(spec.dtype, config)
    if spec.reward:
        config.num_labels = 1
    auto = AutoModelForSequenceClassification if spec.reward else AutoModelForCausalLM
    lora = (
        LoraSettings(spec.lora_r, spec.lora_alpha, 0.0, list(spec.lora_targets) if spec.lora_targets else None)
        if spec.lora_r and spec.trained
        else None
    )
    # Quantisation is accounted for below: bitsandbytes cannot build on `meta`.
    settings = ModelSettings(
        spec.path, dtype, lora=lora, trainable_layers=spec.trainable_layers if spec.trained else None
    )
    with _quiet(), torch.device("meta"):
        model = auto.from_config(config, dtype=DTYPES[dtype])
        if spec.trained:
            model = _prepare_for_training(model, settings, spec.reward)
        else:
            model.requires_grad_(False)

    blocks_name, blocks = find_blocks(model) or (None, [])
    quantized: set[int] = set()
    if spec.quant != "none":
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
        if spec.quant == "none"
        else 0
    )
    for p in model.parameters():
        n = p.numel()
        params += n
        if id(p) in quantized:
            rows = p.shape[0]
            weight_bytes += n + 4 * rows if spec.quant == "8bit" else math.ceil(n * 0.516)
            continue
        size = p.element_size()
        if spec.quant != "none" and lora is not None and size == 2:
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


# --------------------------------------------------------------------------- activation formulas

# Per block: (input width, linears reading that input, input already kept by another op).
# A trained linear keeps its input for the weight gradient; a LoRA linear keeps it for lora_A.
_GROUPS = {
    "opt": [
        ("h", ("q_proj", "k_proj", "v_proj"), False),
        ("h", ("out_proj",), True),
        ("h", ("fc1",), False),
        ("ffn", ("fc2",), True),
    ],
    "bloom": [
        ("h", ("query_key_value",), False),
        ("h", ("dense",), False),
        ("h", ("dense_h_to_4h",), False),
        ("ffn", ("dense_4h_to_h",), False),
    ],
    "llama": [
        ("h", ("q_proj", "k_proj", "v_proj"), False),
        ("h", ("o_proj",), True),
        ("h", ("gate_proj", "up_proj"), False),
        ("ffn", ("down_proj",), False),
    ],
}


def block_saved_bytes(m: ModelCount, T: int, d: int, autocast: bool = False, device: str = "cpu") -> float:
    """Bytes per token one trained block keeps for its backward pass (no checkpointing).

    d: bytes of an activation. OPT keeps its two LayerNorm inputs (+ mean/rstd), q, k, v, the SDPA
    output, its fp32 logsumexp (one value per head) and its copy of the mask (T values), and the
    ReLU output (+ two dropout masks when its residual dropout is on); Llama keeps fp32
    copies of its RMSNorm inputs, the same attention tensors, and three MLP tensors (gate,
    SiLU(gate), up); BLOOM computes attention eagerly and keeps q, k, v, the fp32 softmax and its 16-bit copy
    (a*T values per token). On top come the inputs of trained linears (shared within a group) and,
    for LoRA, lora_A's input (a separate fp32 copy per adapted linear when the adapters, fp32 by
    PEFT's default, differ from the 16-bit activations) plus lora_A's r outputs.
    """
    s = m.shape
    h, f, a = s.h, s.ffn, s.heads
    ln = 4 if autocast else d  # autocast runs layer norms in fp32
    # SDPA keeps q, k, v, its output, an fp32 logsumexp per head and its own copy of the
    # (B, 1, T, T) mask (T values per token). With a mask, transformers repeats grouped-query k
    # and v to every head before SDPA, so those are kept at full width too.
    sdpa = (4 * h + T) * d + 4 * a
    if s.family == "opt":
        always = 2 * (h * ln + 2 * d) + sdpa + f * d
        if s.dropout > 0:
            # the two residual dropouts keep their masks: bool on a GPU (native_dropout), a
            # scaled noise tensor of the activations' dtype on the CPU
            always += 2 * h * (1 if device == "cuda" else d)
    elif s.family == "bloom":
        probs = a * T * 4 + (a * T * d if d != 4 else 0)
        always = 2 * (h * ln + 2 * d) + 3 * h * d + probs + f * d
    else:
        always = 2 * (4 * h + 4) + sdpa + 3 * f * d
        if m.full_layers:
            always += 2 * h * d  # the normalised input, for the trained norm weight
    lora_bytes = d if autocast else 4
    cast = lora_bytes if (autocast or d != 4) else 0
    extra = 0.0
    known = {n for _, names, _ in _GROUPS.get(s.family, []) for n in names}
    for width, names, kept in _GROUPS.get(s.family, _GROUPS["llama"]):
        n = h if width == "h" else f
        adapted = [x for x in names if x in m.lora_modules]
        if m.lora_modules and not (m.lora_modules & known):
            adapted = list(names)  # "all-linear" on an unknown family
        if adapted and cast:
            extra += len(adapted) * n * cast
        elif (m.full_layers or adapted) and not kept:
            extra += n * d
        extra += len(adapted) * m.spec.lora_r * lora_bytes
    return always + extra


def block_backward_bytes(m: ModelCount, d: int) -> float:
    """Per token, the gradients alive while one block runs its backward (~2 MLP-wide + 4 h-wide)."""
    s = m.shape
    return (2 * s.ffn + 4 * s.h) * d + (4 * s.ffn if m.lora_modules and d != 4 else 0)


def model_extra_saved_bytes(m: ModelCount, T: int, d: int) -> float:
    """Per token, what a trained model keeps outside its blocks: token/position ids, the SDPA mask
    (B, 1, T, T), the final norm's input and the head's input when the head is trained."""
    s = m.shape
    mask = 0 if s.eager_attention else T * d
    return 16 + mask + s.h * d + (s.out_dim * d if m.head_trained else 0)


def training_activation_bytes(
    m: ModelCount, B: int, T: int, d: int, autocast: bool = False, device: str = "cpu"
) -> int:
    """Activations of one forward + backward of B sequences of T tokens (0 for a frozen model).

    Without checkpointing the blocks from the lowest trained one up keep everything; with it
    every block keeps its input (transformers makes the embeddings require grad, so all L
    blocks take part) and one block at a time is recomputed during the backward pass.
    """
    if not m.trainable:
        return 0
    tokens = B * T
    block = block_saved_bytes(m, T, d, autocast, device)
    extra = model_extra_saved_bytes(m, T, d)
    backward = block_backward_bytes(m, d)
    if m.spec.checkpointing:
        return int(tokens * (m.shape.layers * m.shape.h * d + extra + block + backward))
    return int(tokens * (m.graph_layers * block + extra + backward))


def inference_bytes(m: ModelCount, B: int, T: int, d: int) -> int:
    """Working memory of a no-grad forward: the residual stream plus one block's temporaries."""
    s = m.shape
    per_token = (2 * s.ffn + 6 * s.h) * d
    if s.family == "llama":
        per_token += 2 * s.h * 4  # RMSNorm's fp32 copies
    if s.eager_attention:
        per_token += s.heads * T * (4 + 2 * d)
    if m.lora_modules and d != 4:
        per_token += s.ffn * 4  # LoRA's fp32 copy of the widest input
    return int(B * T * per_token)


class LogitsPeaks(NamedTuple):
    forward: int  # a no-grad forward's peak
    training: int  # a training forward + backward's peak
    kept: int  # what a training forward keeps for its backward


def logits_peaks(B: int, T: int, A: int, V: int, d: int) -> LogitsPeaks:
    """Peaks of the actor's logits and `token_logprobs` over the answer.

    Measured with resource/VmHWM on this CPU for fp32 and bf16 and A/T = 1/4, 1/2, 3/4 (within
    2%): X = B*T*V*d logits, U = B*A*V*4. No grad: X, the fp32 copy of the answer slice (16-bit
    logits only) and logsumexp's (x - max) temporary. Training: the same forward, then the
    backward holds logsumexp's saved input S (X for fp32: the slice keeps the whole tensor;
    U otherwise) plus three U-sized gradients/temporaries. The PPO engine asks for the logits
    of the A + 1 positions that predict answer tokens only (T = A + 1).
    """
    X, U = B * T * V * d, B * A * V * 4
    forward = X + (U if d != 4 else 0) + U
    saved = X if d == 4 else U
    return LogitsPeaks(forward, max(forward, saved + 3 * U), saved)


def sft_logits_bytes(m: ModelCount, B: int, T: int, d: int, device: str) -> int:
    """TRL's chunked LM head (trl/kernels/chunked_logprob.py): one (4096 tokens x 32768 vocab)
    tile of logits at a time, folded by a Triton kernel on a GPU and by torch ops on the CPU
    (~3 fp32 copies of the tile); its backward accumulates the hidden-state gradient (and the
    head's, when trained) in fp32 before casting it back."""
    N = B * T
    tile = min(N, TRL_TOKEN_CHUNK) * min(m.shape.vocab, TRL_VOCAB_CHUNK)
    head = m.shape.vocab * m.shape.out_dim * (4 + d) if m.head_trained else 0
    return tile * (d if device == "cuda" else d + 12) + N * m.shape.out_dim * (4 + d) + head


# --------------------------------------------------------------------------- hardware and optimizer


@dataclass(frozen=True)
class Hardware:
    device: str = "cuda"  # cuda: one GPU's memory; cpu: host memory of a CPU run
    mem_bytes: int = 24 * GB
    num_gpus: int = 1
    zero_stage: int = 0  # 0: plain PyTorch (DDP with several GPUs); 1-3: DeepSpeed ZeRO
    offload: str = "none"  # none, optimizer (zero2_offload), all (zero3_offload: + parameters)

    @property
    def deepspeed(self) -> bool:
        return self.device == "cuda" and self.zero_stage > 0


@dataclass
class Trained:
    """Memory of the trained parameters of one process (all trained models of a step together)."""

    weights_delta: int = 0  # DeepSpeed turns trainable fp32 adapters into 16-bit weights
    gradients: int = 0
    optimizer: int = 0
    step_temp: int = 0
    host: int = 0  # offloaded to the host


def trained_memory(counts: list[ModelCount], hw: Hardware, d: int, fused: bool = False) -> Trained:
    """Gradients and optimizer states of `counts`' trainable parameters on `hw`. `fused`: the
    optimizer is torch's fused AdamW (the HF Trainer's default on a GPU), which needs no
    temporaries."""
    n_params = sum(m.trainable for m in counts)
    n_bytes = sum(m.trainable_bytes for m in counts)
    out = Trained()
    if not hw.deepspeed:
        # torch.optim.AdamW: exp_avg and exp_avg_sq like each parameter (so bf16 for bf16
        # weights); gradients like the parameter. Its foreach path on a GPU makes one temporary
        # per dtype group (sqrt of exp_avg_sq); on the CPU it goes tensor by tensor.
        out.gradients = n_bytes
        out.optimizer = 2 * n_bytes
        if hw.device == "cuda":
            # one temporary per parameter group and dtype, and the groups run one after another
            out.step_temp = 0 if fused else max((b for m in counts for _, b in m.trainable_groups), default=0)
            if hw.num_gpus > 1:
                out.gradients += n_bytes  # DDP's gradient buckets (a second copy)
        else:
            out.step_temp = 2 * max((m.largest_trainable_bytes for m in counts), default=0)
        return out
    # DeepSpeed with bf16/fp16: trained weights in 16 bits, an fp32 master copy and two fp32
    # Adam states (12 bytes per parameter) partitioned over the GPUs from ZeRO-1 on; gradients
    # in 16 bits, partitioned from ZeRO-2 on; at the step each rank upcasts its gradient
    # partition to fp32 (4 bytes / N).
    N = hw.num_gpus
    half = 2 if d != 4 else 4
    out.weights_delta = n_params * half - n_bytes
    out.gradients = n_params * half // (N if hw.zero_stage >= 2 else 1)
    states = 12 * n_params // N
    if hw.offload in ("optimizer", "all"):
        out.host = states + 4 * n_params // N
    else:
        out.optimizer = states
        out.step_temp = 4 * n_params // N
    return out


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class SFTSettings:
    model: ModelSpec
    batch: int
    seq_len: int
    autocast: bool = False  # bf16/fp16 mixed precision (TRL's bf16: true)
    fused_optimizer: bool = True  # the HF Trainer's adamw_torch_fused (not with lora_learning_rate)


@dataclass(frozen=True)
class RMSettings:
    model: ModelSpec
    batch: int  # pairs per device: chosen and rejected run as one batch of 2 x batch
    seq_len: int
    autocast: bool = False
    fused_optimizer: bool = True


@dataclass(frozen=True)
class PPOSettings:
    actor: ModelSpec
    critic: ModelSpec
    reward: ModelSpec
    generation_batch: int
    training_batch: int
    prompt_len: int
    answer_len: int
    ema: bool = False
    ptx: bool = False
    reuse: tuple[str, ...] = ()  # roles whose scoring forward is the first update's (not under ZeRO-3)


COMPONENTS = ("weights", "gradients", "optimizer", "activations", "kv_cache", "logits", "runtime")


@dataclass
class StepPlan:
    step: str
    hardware: Hardware
    settings: object
    phase: str = ""  # the phase where the peak is
    components: dict = field(default_factory=dict)  # bytes at the peak, by COMPONENTS
    phases: dict = field(default_factory=dict)  # total bytes of every phase
    breakdown: dict = field(default_factory=dict)  # phase -> bytes by COMPONENTS
    host_bytes: int = 0  # offloaded to the host (GPU runs with offload)
    models: list = field(default_factory=list)  # per model: role, params, trainable, weights
    notes: list = field(default_factory=list)
    suggestions: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.components.values())

    @property
    def fits(self) -> bool:
        return self.total <= self.hardware.mem_bytes

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "device": self.hardware.device,
            "budget_gb": round(self.hardware.mem_bytes / GB, 3),
            "num_gpus": self.hardware.num_gpus,
            "zero_stage": self.hardware.zero_stage,
            "offload": self.hardware.offload,
            "peak_gb": round(self.total / GB, 3),
            "fits": self.fits,
            "headroom_gb": round((self.hardware.mem_bytes - self.total) / GB, 3),
            "peak_phase": self.phase,
            "components_gb": {k: round(v / GB, 3) for k, v in self.components.items()},
            "phases_gb": {k: round(v / GB, 3) for k, v in self.phases.items()},
            "phase_components_gb": {
                p: {k: round(v / GB, 3) for k, v in parts.items()} for p, parts in self.breakdown.items()
            },
            "host_offload_gb": round(self.host_bytes / GB, 3),
            "models": self.models,
            "notes": self.notes,
            "suggestions": self.suggestions,
        }


def _runtime(hw: Hardware) -> int:
    return CUDA_CONTEXT_BYTES if hw.device == "cuda" else CPU_RUNTIME_BYTES


def _weights_on_device(m: ModelCount, hw: Hardware) -> int:
    if hw.deepspeed and hw.zero_stage == 3:
        return 0 if hw.offload == "all" else m.weight_bytes // hw.num_gpus
    return m.weight_bytes


def _zero3_gather(counts: list[ModelCount], hw: Hardware) -> int:
    """ZeRO-3 gathers a block's weights before using it and prefetches the next one."""
    if not (hw.deepspeed and hw.zero_stage == 3):
        return 0
    return 2 * 2 * max(m.largest_block_params for m in counts)


def _model_row(role: str, m: ModelCount) -> dict:
    return {
        "role": role,
        "path": m.spec.path,
        "params": m.params,
        "trainable": m.trainable,
        "weights_gb": round(m.weight_bytes / GB, 3),
        "dtype": m.spec.dtype,
        "quant": m.spec.quant,
        "lora_r": m.spec.lora_r if m.spec.trained else 0,
    }


def _finish(plan: StepPlan, phases: dict[str, dict[str, int]], hw: Hardware) -> StepPlan:
    for parts in phases.values():
        tensors = sum(parts.values())
        parts["runtime"] = _runtime(hw) + (int(CUDA_ALLOCATOR_MARGIN * tensors) if hw.device == "cuda" else 0)
    plan.breakdown = {name: {k: int(parts.get(k, 0)) for k in COMPONENTS} for name, parts in phases.items()}
    plan.phases = {name: sum(parts.values()) for name, parts in plan.breakdown.items()}
    plan.phase = max(plan.phases, key=plan.phases.get)
    plan.components = dict(plan.breakdown[plan.phase])
    return plan


def plan_sft(s: SFTSettings, hw: Hardware, step: str = "sft") -> StepPlan:
    """Step 1 (TRL SFTTrainer) or, with a reward model, step 2 (RewardTrainer; see plan_rm)."""
    m = count_model(s.model)
    d = 2 if s.autocast and hw.device == "cuda" else m.compute_bytes
    B = s.batch * (2 if step == "rm" else 1)
    plan = StepPlan(step, hw, s, models=[_model_row("policy" if step == "sft" else "reward", m)])
    t = trained_memory([m], hw, d, fused=s.fused_optimizer)
    plan.host_bytes = t.host
    weights = _weights_on_device(m, hw) + t.weights_delta // (
        hw.num_gpus if hw.deepspeed and hw.zero_stage == 3 else 1
    )
    resident = {"weights": weights, "optimizer": t.optimizer}
    act = training_activation_bytes(m, B, s.seq_len, d, s.autocast and hw.device == "cuda", hw.device) + _zero3_gather(
        [m], hw
    )
    logits = 0 if step == "rm" else sft_logits_bytes(m, B, s.seq_len, d, hw.device)
    phases = {
        "training": resident | {"gradients": t.gradients, "activations": act, "logits": logits},
        "optimizer step": resident | {"gradients": t.gradients, "optimizer": t.optimizer + t.step_temp},
    }
    if s.model.quant != "none" and hw.device == "cpu":
        plan.notes.append("8/4-bit loading needs bitsandbytes on a CUDA GPU")
    return _finish(plan, phases, hw)


def plan_rm(s: RMSettings, hw: Hardware) -> StepPlan:
    return plan_sft(s, hw, step="rm")


def plan_ppo(s: PPOSettings, hw: Hardware) -> StepPlan:
    """Step 3 with the project's engine: actor (+LoRA), reference, critic, reward model."""
    actor, critic, reward = count_model(s.actor), count_model(s.critic), count_model(s.reward)
    ref = None if s.actor.lora_r else count_model(dataclasses.replace(s.actor, trained=False, checkpointing=False))
    frozen = [x for x in (ref, reward) if x is not None]
    d = actor.compute_bytes
    Bg, Bt, P, A = s.generation_batch, s.training_batch, s.prompt_len, s.answer_len
    T = P + A
    plan = StepPlan(
        "ppo",
        hw,
        s,
        models=[_model_row("actor", actor), _model_row("critic", critic)]
        + ([_model_row("reference", ref)] if ref else [])
        + [_model_row("reward", reward)],
    )
    t = trained_memory([actor, critic], hw, d)
    plan.host_bytes = t.host
    weights = sum(_weights_on_device(x, hw) for x in [actor, critic, *frozen])
    weights += t.weights_delta // (hw.num_gpus if hw.deepspeed and hw.zero_stage == 3 else 1)
    ema = 0
    if s.ema:
        # PPOTrainer clones the actor's trained parameters (in their dtype: 16-bit under DeepSpeed).
        ema = actor.trainable * 2 if hw.deepspeed and d != 4 else actor.trainable_bytes
        if hw.deepspeed and hw.zero_stage == 3:
            plan.notes.append("enable_ema is refused under ZeRO-3 (the engine needs the actor's full weights)")
    resident = {"weights": weights + ema, "optimizer": t.optimizer}
    gather = _zero3_gather([actor, critic, *frozen], hw)

    # Generation: the KV cache of every block for B x (P + A) tokens, the prefill's temporaries;
    # ZeRO-3 gathers the whole actor for the generate call; otherwise fp32 LoRA layers compute
    # with merged copies of their weights (engine.merged_lora; not under autocast).
    kv = 2 * actor.shape.layers * Bg * T * actor.shape.kv * d
    prefill = inference_bytes(actor, Bg, P, d) + 3 * Bg * actor.shape.vocab * 4
    zero3 = hw.deepspeed and hw.zero_stage == 3
    gathered = actor.weight_bytes - _weights_on_device(actor, hw) if zero3 else 0
    merged = 0 if zero3 else actor.lora_base_bytes
    phases = {
        "generation": resident
        | {"weights": resident["weights"] + gathered + merged, "kv_cache": kv, "activations": prefill}
    }
    # Scoring: forwards of actor, reference, critic and reward model over B x T tokens; the
    # actor's (and reference's) logits are the largest part. A reused actor / critic forward
    # (PPOArguments.reuses_rollout_forward) is the first update's, so its graph stays alive
    # through the reference and reward forwards.
    fwd_logits = logits_peaks(Bg, A + 1, A, actor.shape.vocab, d).forward
    train_logits = logits_peaks(Bt, A + 1, A, actor.shape.vocab, d)
    experience = Bg * T * 8 * 3 + Bg * A * 4 * 8
    reused = set() if zero3 else set(s.reuse)
    roles = {"actor": actor, "critic": critic}
    kept = sum(training_activation_bytes(roles[r], Bg, T, d, device=hw.device) for r in reused)
    no_grad = [roles[r] for r in roles if r not in reused] + frozen
    scoring_act = max(inference_bytes(x, Bg, T, d) for x in no_grad) + gather
    phases["scoring"] = resident | {
        "activations": kept + scoring_act + experience,
        "logits": fwd_logits + (train_logits.kept if "actor" in reused else 0),
    }
    # Training: one mini-batch through actor and critic, kept for their summed backward.
    act = (
        training_activation_bytes(actor, Bt, T, d, device=hw.device)
        + training_activation_bytes(critic, Bt, T, d, device=hw.device)
        + gather
        + experience
    )
    train_logits = train_logits.training
    if s.ptx:
        # The pretraining mix: a language-modelling loss on the actor's full (B, T, V) logits.
        train_logits += Bt * T * actor.shape.vocab * (d + 8)
    phases["training"] = resident | {"gradients": t.gradients, "activations": act, "logits": train_logits}
    phases["optimizer step"] = resident | {"gradients": t.gradients, "optimizer": t.optimizer + t.step_temp}
    if any(x.quant != "none" for x in (s.actor, s.critic, s.reward)) and hw.device == "cpu":
        plan.notes.append("8/4-bit loading needs bitsandbytes on a CUDA GPU")
    plan = _finish(plan, phases, hw)
    if gathered and plan.phase == "generation":
        plan.notes.append(
            f"under ZeRO-3 generation gathers the whole actor on every GPU "
            f"(RLHFEngine.actor_for_generation): {actor.weight_bytes / GB:.1f} GB of weights at once"
        )
    return plan


PLANNERS = {"sft": plan_sft, "rm": plan_rm, "ppo": plan_ppo}


# --------------------------------------------------------------------------- suggestions


def _halve(n: int) -> int:
    return max(1, n // 2)


def _candidates(step: str, s, hw: Hardware) -> list[tuple[str, object, Hardware]]:
    """(what to change, new settings, new hardware) for every single change that saves memory."""
    out = []
    rep = dataclasses.replace
    if hw.device == "cuda":
        if hw.num_gpus > 1 and hw.zero_stage < 3:
            for stage in range(max(hw.zero_stage + 1, 2), 4):
                out.append(
                    (
                        f"accelerate launch --config_file accelerate_configs/zero{stage}.yaml "
                        f"(ZeRO-{stage} over {hw.num_gpus} GPUs)",
                        s,
                        rep(hw, zero_stage=stage),
                    )
                )
        if hw.offload == "none" and hw.zero_stage < 3:
            out.append(
                (
                    "accelerate_configs/zero2_offload.yaml (ZeRO-2, optimizer states in host memory)",
                    s,
                    rep(hw, zero_stage=2, offload="optimizer"),
                )
            )
        if hw.zero_stage == 3 and hw.offload != "all":
            out.append(
                (
                    "accelerate_configs/zero3_offload.yaml (optimizer states and parameters in host memory)",
                    s,
                    rep(hw, offload="all"),
                )
            )
    if step in ("sft", "rm"):
        m = s.model
        if not m.lora_r:
            out.append(
                (
                    "use_lora: true, lora_r: 128 (train LoRA adapters only)",
                    rep(s, model=rep(m, lora_r=128, lora_alpha=128)),
                    hw,
                )
            )
        if not m.checkpointing:
            out.append(("activation_checkpointing: true", rep(s, model=rep(m, checkpointing=True)), hw))
        if m.quant == "none" and hw.device == "cuda" and not (hw.deepspeed and hw.zero_stage == 3):
            lora = {} if m.lora_r else {"lora_r": 128, "lora_alpha": 128}
            out.append(
                (
                    "load_in_8bit: true" + ("" if m.lora_r else " with use_lora: true"),
                    rep(s, model=rep(m, quant="8bit", **lora)),
                    hw,
                )
            )
        if s.batch > 1:
            out.append(
                (
                    f"per_device_train_batch_size: {_halve(s.batch)} (double gradient_accumulation_steps "
                    "to keep the effective batch)",
                    rep(s, batch=_halve(s.batch)),
                    hw,
                )
            )
        return out
    a, c, r = s.actor, s.critic, s.reward
    if not a.lora_r:
        out.append(
            (
                "actor_lora_dim: 128 (LoRA actor; the reference becomes the actor without its adapter, "
                "no second copy)",
                rep(s, actor=rep(a, lora_r=128, lora_alpha=128)),
                hw,
            )
        )
    if not a.checkpointing:
        out.append(("actor_gradient_checkpointing: true", rep(s, actor=rep(a, checkpointing=True)), hw))
    if not c.checkpointing:
        out.append(("critic_gradient_checkpointing: true", rep(s, critic=rep(c, checkpointing=True)), hw))
    if not c.lora_r:
        out.append(("critic_lora_dim: 128 (LoRA critic)", rep(s, critic=rep(c, lora_r=128, lora_alpha=128)), hw))
    if hw.device == "cuda" and not (hw.deepspeed and hw.zero_stage == 3):  # bitsandbytes + ZeRO-3: no
        if a.quant == "none":
            lora = {} if a.lora_r else {"lora_r": 128, "lora_alpha": 128}
            out.append(
                (
                    "actor_quantization: 8bit" + ("" if a.lora_r else " with actor_lora_dim: 128"),
                    rep(s, actor=rep(a, quant="8bit", **lora)),
                    hw,
                )
            )
        if r.quant == "none":
            out.append(("reward_quantization: 8bit", rep(s, reward=rep(r, quant="8bit")), hw))
    if s.ema:
        out.append(("enable_ema: false (no EMA copy of the actor's trained weights)", rep(s, ema=False), hw))
    if s.generation_batch > 1 or s.training_batch > 1:
        g, t = _halve(s.generation_batch), _halve(s.training_batch)
        out.append(
            (
                f"per_device_generation_batch_size: {g}, per_device_training_batch_size: {t}",
                rep(s, generation_batch=g, training_batch=t),
                hw,
            )
        )
    return out


def _options(current: StepPlan) -> list[tuple[int, str, StepPlan]]:
    """(saving, change, new plan) of every single change that lowers `current`'s peak, best first."""
    planner = PLANNERS[current.step]
    out = []
    for what, s, hw in _candidates(current.step, current.settings, current.hardware):
        try:
            new = planner(s, hw)
        except RLHFLiteError:
            continue
        if new.total < current.total:
            out.append((current.total - new.total, what, new))
    return sorted(out, key=lambda o: -o[0])


def suggest(plan: StepPlan, limit: int = 6) -> list[dict]:
    """Single changes that lower the peak, largest saving first; when none fits on its own, also
    the greedy combination (best change, then the best on top of it, ...) that does."""
    options = _options(plan)
    out = [
        {"change": what, "saves_gb": round(saving / GB, 2), "peak_gb": round(new.total / GB, 2), "fits": new.fits}
        for saving, what, new in options[:limit]
    ]
    if options and not any(new.fits for _, _, new in options):
        changes, current = [], plan
        while len(changes) < 6:
            better = _options(current)
            if not better:
                break
            _, what, current = better[0]
            changes.append(what)
            if current.fits:
                break
        if current.fits:
            out.append(
                {
                    "change": " + ".join(changes),
                    "saves_gb": round((plan.total - current.total) / GB, 2),
                    "peak_gb": round(current.total / GB, 2),
                    "fits": True,
                    "combined": True,
                }
            )
        else:
            plan.notes.append(
                f"no combination of these changes fits: the lowest peak found is "
                f"{current.total / GB:.2f} GB; more memory per GPU is needed"
            )
    return out


# --------------------------------------------------------------------------- presets


def _flag_value(argv: list[str], key: str):
    for i, a in enumerate(argv):
        if a == f"--{key}" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(f"--{key}="):
            return a.split("=", 1)[1]
    return None


# accelerate config -> (ZeRO stage, offload)
_LAUNCH = {
    "zero1": (1, "none"),
    "zero2": (2, "none"),
    "zero2_offload": (2, "optimizer"),
    "zero3": (3, "none"),
    "zero3_offload": (3, "all"),
    "multi_gpu": (0, "none"),
    "single_gpu": (0, "none"),
    "multi_node": (3, "none"),
}


def preset_hardware(name: str) -> dict:
    """The hardware a preset is sized for (its hardware.yaml: gpu_mem_gb, num_gpus and the
    accelerate_config it launches with), in _hardware's keys."""
    path = preset_file(name, "hardware")
    raw = read_yaml(path)
    unknown = set(raw) - {"gpu_mem_gb", "num_gpus", "accelerate_config"}
    if unknown or raw.get("accelerate_config", "single_gpu") not in _LAUNCH:
        raise ConfigError(
            f"{path}: unknown key(s) {sorted(unknown)} or accelerate_config; "
            f"accelerate_config is one of {', '.join(_LAUNCH)}"
        )
    out = {k: raw[k] for k in ("gpu_mem_gb", "num_gpus") if k in raw}
    if "accelerate_config" in raw:
        out["zero_stage"], out["offload"] = _LAUNCH[raw["accelerate_config"]]
    return out


@dataclass
class Preset:
    name: str
    settings: dict  # step -> SFTSettings / RMSettings / PPOSettings
    hardware: dict  # preset_hardware


def _truthy(value) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def load_preset(name: str, overrides: dict[str, list[str]] | None = None, steps: tuple[str, ...] = STEPS) -> Preset:
    """Parse a preset's YAML files with the recipes' own dataclasses (plus command-line style
    `overrides` per step) into the planner's settings."""
    hardware = preset_hardware(name)
    from .args import ModelArguments, RMArguments, SFTArguments, parse

    overrides = overrides or {}
    settings, parsed = {}, {}
    needed = set(steps) | ({"sft", "rm"} if "ppo" in steps else set())
    for step in STEPS:
        if step not in needed:
            continue
        path = preset_file(name, step)
        if not path.is_file():
            raise ConfigError(f"preset '{name}' has no {step}.yaml")
        raw = read_yaml(path)
        extra = list(overrides.get(step, []))
        argv = ["--config", str(path), *extra]
        with _quiet():
            if step == "ppo":
                from .ppo.config import PPOArguments

                (args,) = parse([PPOArguments], "ppo", argv)
                parsed[step] = (args, raw, extra)
                continue
            # The YAML's bf16 (autocast) is read here; parsing with it on fails on a CPU machine.
            bf16 = _flag_value(extra, "bf16") or raw.get("bf16", False)
            fp16 = _flag_value(extra, "fp16") or raw.get("fp16", False)
            argv += ["--bf16", "false", "--fp16", "false"]
            script_cls = SFTArguments if step == "sft" else RMArguments
            if step == "sft":
                from trl import SFTConfig as Config
            else:
                from trl import RewardConfig as Config
            _, model_args, training = parse([script_cls, ModelArguments, Config], step, argv)
        parsed[step] = (model_args, training, _truthy(bf16) or _truthy(fp16))

    for step in ("sft", "rm"):
        if step not in parsed:
            continue
        model_args, training, autocast = parsed[step]
        if model_args.load_in_8bit and model_args.load_in_4bit:
            raise ConfigError(f"{step}: choose load_in_8bit or load_in_4bit, not both")
        spec = ModelSpec(
            model_args.model_name_or_path,
            reward=step == "rm",
            dtype=model_args.dtype,
            lora_r=model_args.lora_r if model_args.use_lora else 0,
            lora_alpha=model_args.lora_alpha,
            lora_targets=tuple(model_args.lora_target_modules) if model_args.lora_target_modules else None,
            quant="8bit" if model_args.load_in_8bit else "4bit" if model_args.load_in_4bit else "none",
            trainable_layers=model_args.trainable_layers,
            checkpointing=bool(training.activation_checkpointing),
            dropout=0.0 if getattr(training, "disable_dropout", False) else model_args.dropout,
        )
        cls = SFTSettings if step == "sft" else RMSettings
        optim = str(getattr(training.optim, "value", training.optim))
        fused = model_args.lora_learning_rate is None and "fused" in optim
        settings[step] = cls(spec, training.per_device_train_batch_size, training.max_length or 1024, autocast, fused)

    if "ppo" in parsed:
        args, raw, _ = parsed["ppo"]
        sft_args, sft_training, _ = parsed["sft"]
        rm_args, rm_training, _ = parsed["rm"]

        def default_path(explicit, training, model_args):
            if explicit:
                return explicit
            # What step 1/2 wrote, if it ran; otherwise the model it starts from (same architecture).
            out = Path(training.output_dir)
            return str(out) if (out / "config.json").is_file() else model_args.model_name_or_path

        actor_path = default_path(args.actor_model_name_or_path, sft_training, sft_args)
        critic_path = default_path(args.critic_model_name_or_path, rm_training, rm_args)
        reward_path = args.reward_model_name_or_path or critic_path
        targets = tuple(args.lora_module_name) if args.lora_module_name else None

        def role(path, rank, quant, layers, ckpt, reward, trained=True, no_dropout=True):
            return ModelSpec(
                path,
                reward=reward,
                dtype=args.dtype,
                lora_r=rank,
                lora_alpha=int(args.lora_alpha_ratio * rank),
                lora_targets=targets,
                quant=quant,
                trainable_layers=layers if trained else None,
                trained=trained,
                checkpointing=ckpt and trained,
                dropout=0.0 if trained and no_dropout else None,
            )

        settings["ppo"] = PPOSettings(
            actor=role(
                actor_path,
                args.actor_lora_dim,
                args.actor_quantization,
                args.actor_trainable_layers,
                args.actor_gradient_checkpointing,
                False,
                no_dropout=args.disable_actor_dropout,
            ),
            critic=role(
                critic_path,
                args.critic_lora_dim,
                args.critic_quantization,
                args.critic_trainable_layers,
                args.critic_gradient_checkpointing,
                True,
                no_dropout=args.disable_critic_dropout,
            ),
            reward=role(reward_path, 0, args.reward_quantization, None, False, True, trained=False),
            generation_batch=args.per_device_generation_batch_size,
            training_batch=args.per_device_training_batch_size,
            prompt_len=args.max_prompt_seq_len,
            answer_len=args.max_answer_seq_len,
            ema=args.enable_ema,
            ptx=bool(args.ptx_datasets),
            reuse=tuple(r for r in ("actor", "critic") if args.reuses_rollout_forward(r)),
        )
    return Preset(name, {s: settings[s] for s in steps}, hardware)


def plan_preset(
    preset: str,
    steps: tuple[str, ...] = STEPS,
    device: str = "cuda",
    gpu_mem_gb: float | None = None,
    num_gpus: int | None = None,
    zero_stage: int | None = None,
    offload: str | None = None,
    overrides: dict[str, list[str]] | None = None,
    suggestions: bool = True,
) -> list[StepPlan]:
    """The plan of each step of `preset`; hardware not given comes from the preset's hardware.yaml
    (else one 24 GB GPU, no ZeRO). `device="cpu"` plans a run on this machine's CPU."""
    loaded = load_preset(preset, overrides, steps)
    plans = []
    for step in steps:
        hw = _hardware(device, loaded.hardware, gpu_mem_gb, num_gpus, zero_stage, offload)
        plan = PLANNERS[step](loaded.settings[step], hw)
        if suggestions and not plan.fits:
            plan.suggestions = suggest(plan)
        plans.append(plan)
    return plans


def _host_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 16 * GB


def _hardware(device: str, found: dict, gpu_mem_gb, num_gpus, zero_stage, offload) -> Hardware:
    if device == "cpu":
        mem = gpu_mem_gb * GB if gpu_mem_gb else _host_memory()
        return Hardware("cpu", int(mem), 1, 0, "none")
    stage = found.get("zero_stage", 0) if zero_stage is None else zero_stage
    off = found.get("offload", "none") if offload is None else offload
    gpus = num_gpus or found.get("num_gpus", 1)
    if stage not in (0, 1, 2, 3):
        raise ConfigError(f"--zero-stage must be 0, 1, 2 or 3, got {stage}")
    if off not in ("none", "optimizer", "all"):
        raise ConfigError(f"--offload must be none, optimizer or all, got '{off}'")
    if off != "none" and stage == 0:
        stage = 2 if off == "optimizer" else 3
    if off == "all" and stage != 3:
        raise ConfigError("--offload all (parameters too) needs --zero-stage 3")
    if gpus < 1:
        raise ConfigError(f"--num-gpus must be >= 1, got {gpus}")
    mem = gpu_mem_gb if gpu_mem_gb else found.get("gpu_mem_gb", 24)
    return Hardware("cuda", int(mem * GB), gpus, stage, off)


# --------------------------------------------------------------------------- output

LABELS = {
    "weights": "weights",
    "gradients": "gradients",
    "optimizer": "optimizer states",
    "activations": "activations",
    "kv_cache": "generation KV cache",
    "logits": "logits",
    "runtime": "runtime + allocator",
}


def _describe(plan: StepPlan) -> str:
    s = plan.settings
    if plan.step == "ppo":

        def one(x: ModelSpec):
            bits = [x.dtype]
            if x.lora_r:
                bits.append(f"LoRA {x.lora_r}")
            if x.quant != "none":
                bits.append(x.quant)
            if x.trainable_layers:
                bits.append(f"top {x.trainable_layers} layers")
            if x.checkpointing:
                bits.append("ckpt")
            return f"{x.path} ({', '.join(bits)})"

        return (
            f"actor {one(s.actor)}, critic {one(s.critic)}, reward {one(s.reward)}; "
            f"batch {s.generation_batch} gen / {s.training_batch} train, prompt {s.prompt_len} + answer "
            f"{s.answer_len} tokens" + (", EMA" if s.ema else "")
        )
    m = s.model
    bits = (
        [m.dtype]
        + ([f"LoRA {m.lora_r}"] if m.lora_r else [])
        + ([m.quant] if m.quant != "none" else [])
        + (["ckpt"] if m.checkpointing else [])
        + ([f"top {m.trainable_layers} layers"] if m.trainable_layers else [])
    )
    pairs = " pairs" if plan.step == "rm" else ""
    return f"{m.path} ({', '.join(bits)}); batch {s.batch}{pairs} x {s.seq_len} tokens"


def render(plans: list[StepPlan], preset: str) -> str:
    lines = []
    for p in plans:
        hw = p.hardware
        where = (
            f"{hw.mem_bytes / GB:.0f} GB GPU"
            + (f" x {hw.num_gpus}" if hw.num_gpus > 1 else "")
            + (f", ZeRO-{hw.zero_stage}" if hw.zero_stage else "")
            + (f", offload {hw.offload}" if hw.offload != "none" else "")
            if hw.device == "cuda"
            else f"CPU, {hw.mem_bytes / GB:.1f} GB host memory"
        )
        lines.append(f"== {preset} / {p.step}: {where}")
        lines.append(f"   {_describe(p)}")
        for row in p.models:
            lines.append(
                f"   {row['role']:<9} {row['params'] / 1e6:9.1f}M params, "
                f"{row['trainable'] / 1e6:8.1f}M trained, weights {row['weights_gb']:.2f} GB"
            )
        names = list(p.breakdown)
        heads = [(n + " *" if n == p.phase else n).replace("optimizer step", "opt. step") for n in names]
        lines.append(f"   {'GB':<22}" + "".join(f"{h:>13}" for h in heads))
        for k in COMPONENTS:
            lines.append(f"   {LABELS[k]:<22}" + "".join(f"{p.breakdown[n][k] / GB:13.2f}" for n in names))
        lines.append(f"   {'total':<22}" + "".join(f"{p.phases[n] / GB:13.2f}" for n in names))
        lines.append(f"   peak: {p.total / GB:.2f} GB during {p.phase} (*), budget {hw.mem_bytes / GB:.2f} GB")
        if p.host_bytes:
            lines.append(f"   host memory for offloaded states: {p.host_bytes / GB:.2f} GB")
        head = hw.mem_bytes - p.total
        verdict = (
            f"FITS, {head / GB:.2f} GB headroom ({100 * head / hw.mem_bytes:.0f}%)"
            if head >= 0
            else f"DOES NOT FIT: {-head / GB:.2f} GB over"
        )
        lines.append(f"   verdict: {verdict}")
        for note in p.notes:
            lines.append(f"   note: {note}")
        if p.suggestions:
            lines.append(
                "   to make it fit (largest saving first):"
                if any(x["fits"] for x in p.suggestions)
                else "   what lowers the peak (largest saving first):"
            )
            for sug in p.suggestions:
                mark = "fits" if sug["fits"] else "still over"
                lead = "together: " if sug.get("combined") else ""
                lines.append(
                    f"     - {lead}{sug['change']}: -{sug['saves_gb']:.2f} GB -> {sug['peak_gb']:.2f} GB ({mark})"
                )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _overrides(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        m = re.fullmatch(r"(sft|rm|ppo)\.(\w+)=(.*)", item)
        if not m:
            raise ConfigError(f"--set expects STEP.FIELD=VALUE with STEP sft, rm or ppo, got '{item}'")
        out.setdefault(m.group(1), []).extend([f"--{m.group(2)}", m.group(3)])
    return out


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m rlhf_lite.plan",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", required=True, help="a folder of recipes/configs (demo, opt-1.3b-4090, ...)")
    p.add_argument("--steps", default="sft,rm,ppo", help="comma-separated: sft, rm, ppo")
    p.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda: one GPU's memory; cpu: host memory of running the step on this CPU",
    )
    p.add_argument(
        "--gpu-mem-gb",
        type=option("gpu_mem_gb"),
        default=None,
        help="memory budget per GPU in GB (GiB); default from the preset's hardware.yaml, else 24 "
        "(with --device cpu: this machine's RAM)",
    )
    p.add_argument(
        "--num-gpus", type=option("num_gpus"), default=None, help="GPUs (processes); default from the preset, else 1"
    )
    p.add_argument("--zero-stage", type=option("zero_stage"), default=None, help="DeepSpeed ZeRO stage 0-3 (0: none)")
    p.add_argument(
        "--offload",
        choices=("none", "optimizer", "all"),
        default=None,
        help="DeepSpeed CPU offload: optimizer states, or all (+ parameters, ZeRO-3)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STEP.FIELD=VALUE",
        help="override a YAML value, e.g. ppo.max_answer_seq_len=128 (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise ConfigError(f"--steps takes sft, rm and ppo, got '{args.steps}'")
    plans = plan_preset(
        args.preset,
        steps,
        args.device,
        args.gpu_mem_gb,
        args.num_gpus,
        args.zero_stage,
        args.offload,
        _overrides(args.set),
    )
    if args.json:
        print(
            json.dumps(
                {
                    "preset": args.preset,
                    "device": args.device,
                    "unit": "GiB",
                    "steps": {p.step: p.to_json() for p in plans},
                    "fits": all(p.fits for p in plans),
                },
                indent=1,
            )
        )
    else:
        sys.stdout.write(render(plans, args.preset))
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
