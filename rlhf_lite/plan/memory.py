"""Each step's peak memory per phase: the models' configs (known offline), their exact parameter
counts and per-block activations, the step's phases on given hardware, and what to change when it
does not fit."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, RLHFLiteError

if TYPE_CHECKING:
    from ..models import LoraSettings, ModelSettings

GB = 2**30
STEPS = ("sft", "rm", "ppo")

# VmRSS after importing the PPO engine, loading a tokenizer and creating the Accelerator
# (measured on this project's CPU machine: 0.54e9 bytes, peak 0.56e9).
CPU_RUNTIME_BYTES = int(0.55e9)
# A CUDA context with cuBLAS holds ~300-600 MiB that torch.cuda.max_memory_allocated does not see.
CUDA_CONTEXT_BYTES = int(0.5 * GB)
# The caching allocator reserves 5-15% more than the tensors it hands out; the GPU plan adds 10%.
# The CPU plan adds nothing: the benchmark checks it against measured RSS.
CUDA_ALLOCATOR_MARGIN = 0.10
# TRL's fused chunked LM head (trl/kernels/chunked_logprob.py): TOKEN_CHUNK_SIZE x chunk_size.
TRL_TOKEN_CHUNK, TRL_VOCAB_CHUNK = 4096, 32768
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


# The config.json values of the presets' models that differ from the config classes' defaults;
# keys are hub names (compared case-insensitively) plus the project's embedded model.
_OPT = dict(model_type="opt", activation_dropout=0.0, dtype="float16", architectures=["OPTForCausalLM"])
_BLOOM = dict(model_type="bloom", n_layer=24, n_head=16, pad_token_id=3, dtype="float16")


def _opt(h: int, layers: int, heads: int, **more) -> dict:
    more = dict(word_embed_proj_dim=h) | more
    return _OPT | dict(hidden_size=h, ffn_dim=4 * h, num_hidden_layers=layers, num_attention_heads=heads) | more


KNOWN_ARCHITECTURES: dict[str, dict] = {
    "facebook/opt-125m": _opt(768, 12, 12),
    # 350m is the odd one: 512-wide embeddings projected in/out, layer norm after each block.
    "facebook/opt-350m": _opt(1024, 24, 16, word_embed_proj_dim=512, do_layer_norm_before=False),
    "facebook/opt-1.3b": _opt(2048, 24, 32),
    "facebook/opt-6.7b": _opt(4096, 32, 32),
    "facebook/opt-13b": _opt(5120, 40, 40),
    "bigscience/bloom-560m": _BLOOM | dict(hidden_size=1024, architectures=["BloomForCausalLM"]),
    "bigscience/bloom-1b1": _BLOOM | dict(hidden_size=1536, architectures=["BloomForCausalLM"]),
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
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        rope_parameters={"rope_theta": 100000.0, "rope_type": "default"},
        pad_token_id=0,
        dtype="float32",
        architectures=["LlamaForCausalLM"],
    ),
}
KNOWN_ARCHITECTURES["huggingfacetb/smollm2-135m-instruct"] = KNOWN_ARCHITECTURES["embedded:smollm2-135m"]
KNOWN_ARCHITECTURES["huggingfacetb/smollm2-135m"] = KNOWN_ARCHITECTURES["embedded:smollm2-135m"]


def architecture(name_or_path: str):
    """A model's transformers config without its weights: a local folder's config.json, one of
    KNOWN_ARCHITECTURES (offline), or the hub's config.json."""
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
        from ..models import resolve_model_path

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
    ffn = (
        getattr(config, "ffn_dim", None)
        or getattr(config, "intermediate_size", None)
        or getattr(config, "n_inner", None)
        or 4 * h
    )
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

    blocks_name, blocks = find_blocks(model) or (None, [])
    # bitsandbytes replaces the Linear layers of the blocks (not the head or embeddings).
    quantized = {
        id(module.weight)
        for name, module in model.named_modules()
        if quant != "none"
        and isinstance(module, nn.Linear)
        and blocks_name
        and name.startswith(blocks_name + ".")
        and "lora_" not in name
    }
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
    if spec.reward:
        head = next((m for n, m in model.named_modules() if n.split(".")[-1] == "score"), None)
    else:
        head = model.get_output_embeddings()
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
    """Bytes per token one trained block keeps for its backward pass (no checkpointing); d: bytes
    of an activation. Besides the norms' inputs and the attention and MLP tensors of each family
    come the inputs of trained linears (shared within a group) and, for LoRA, lora_A's input (an
    fp32 copy per adapted linear when the activations are 16-bit) and its r outputs."""
    s = m.shape
    h, f, a = s.h, s.ffn, s.heads
    ln = 4 if autocast else d  # autocast runs layer norms in fp32
    # SDPA keeps q, k, v, its output, an fp32 logsumexp per head and its copy of the mask (T values
    # per token); with a mask, transformers repeats grouped-query k and v to every head first.
    sdpa = (4 * h + T) * d + 4 * a
    if s.family == "opt":
        always = 2 * (h * ln + 2 * d) + sdpa + f * d
        if s.dropout > 0:  # residual dropout masks: bool on a GPU, of the activations' dtype on the CPU
            always += 2 * h * (1 if device == "cuda" else d)
    elif s.family == "bloom":  # eager attention keeps the fp32 softmax and its 16-bit copy
        probs = a * T * 4 + (a * T * d if d != 4 else 0)
        always = 2 * (h * ln + 2 * d) + 3 * h * d + probs + f * d
    else:
        always = 2 * (4 * h + 4) + sdpa + 3 * f * d
        if m.full_layers:
            always += 2 * h * d  # the normalised input, for the trained norm weight
    lora_bytes = d if autocast else 4
    cast = lora_bytes if (autocast or d != 4) else 0
    extra = 0.0
    known = {n for _, names, _ in _GROUPS[s.family] for n in names}
    for width, names, kept in _GROUPS[s.family]:
        n = h if width == "h" else f
        adapted = [x for x in names if x in m.lora_modules]
        if m.lora_modules and not (m.lora_modules & known):
            adapted = list(names)  # "all-linear" on an unknown family
        if adapted and cast:
            extra += len(adapted) * n * cast
        elif (m.full_layers or adapted) and not kept:
            extra += n * d
        extra += len(adapted) * (m.spec.lora.r if m.spec.lora else 0) * lora_bytes
    return always + extra


def training_activation_bytes(
    m: ModelCount, B: int, T: int, d: int, autocast: bool = False, device: str = "cpu"
) -> int:
    """Activations of one forward + backward of B sequences of T tokens (0 for a frozen model).
    Without checkpointing the blocks from the lowest trained one up keep everything; with it all
    L blocks keep their input (the embeddings require grad) and one block at a time is recomputed."""
    if not m.trainable:
        return 0
    s, tokens = m.shape, B * T
    block = block_saved_bytes(m, T, d, autocast, device)
    # outside the blocks: ids, the SDPA mask, the final norm's input and a trained head's input
    extra = 16 + (0 if s.eager_attention else T * d) + s.h * d + (s.out_dim * d if m.head_trained else 0)
    # the gradients alive while one block runs its backward
    backward = (2 * s.ffn + 4 * s.h) * d + (4 * s.ffn if m.lora_modules and d != 4 else 0)
    if m.spec.checkpointing:
        return int(tokens * (s.layers * s.h * d + extra + block + backward))
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


def logits_peaks(B: int, T: int, A: int, V: int, d: int) -> tuple[int, int, int]:
    """(no-grad forward's peak, training forward + backward's peak, what a training forward keeps)
    of the actor's logits and `token_logprobs` over the answer, as measured (VmHWM, within 2%) on
    this CPU: X = B*T*V*d logits, U = B*A*V*4. No grad: X, the fp32 copy of the answer slice (16-bit
    logits only) and logsumexp's temporary. Training: then logsumexp's saved input (X for fp32,
    whose slice keeps the whole tensor; U otherwise) and three U-sized temporaries."""
    X, U = B * T * V * d, B * A * V * 4
    forward = X + (U if d != 4 else 0) + U
    saved = X if d == 4 else U
    return forward, max(forward, saved + 3 * U), saved


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

    @property
    def zero3(self) -> bool:
        return self.deepspeed and self.zero_stage == 3


@dataclass
class Trained:
    """Memory of the trained parameters of one process (all trained models of a step together)."""

    weights_delta: int = 0  # DeepSpeed turns trainable fp32 adapters into 16-bit weights (per GPU)
    gradients: int = 0
    optimizer: int = 0
    step_temp: int = 0
    host: int = 0  # offloaded to the host


def trained_memory(counts: list[ModelCount], hw: Hardware, d: int, fused: bool = False) -> Trained:
    """Gradients and optimizer states of `counts`' trainable parameters on `hw`; `fused`: torch's
    fused AdamW (the HF Trainer's default on a GPU), which needs no temporaries."""
    n_params = sum(m.trainable for m in counts)
    n_bytes = sum(m.trainable_bytes for m in counts)
    if not hw.deepspeed:
        # torch's AdamW keeps exp_avg and exp_avg_sq in each parameter's dtype. Its foreach path on
        # a GPU makes one temporary per dtype group, the groups one after another; on the CPU it
        # goes tensor by tensor.
        out = Trained(gradients=n_bytes, optimizer=2 * n_bytes)
        if hw.device == "cuda":
            out.step_temp = 0 if fused else max((m.largest_group_bytes for m in counts), default=0)
            if hw.num_gpus > 1:
                out.gradients += n_bytes  # DDP's gradient buckets (a second copy)
        else:
            out.step_temp = 2 * max((m.largest_trainable_bytes for m in counts), default=0)
        return out
    # DeepSpeed: trained weights and gradients in d bytes (these partitioned from ZeRO-2 on), an fp32
    # master copy and two fp32 Adam states (12 bytes per parameter) partitioned over the GPUs; at
    # the step each rank upcasts its gradient partition to fp32 (4 bytes / N).
    N = hw.num_gpus
    weights_delta = (n_params * d - n_bytes) // (N if hw.zero_stage == 3 else 1)
    out = Trained(weights_delta, n_params * d // (N if hw.zero_stage >= 2 else 1))
    states = 12 * n_params // N
    if hw.offload != "none":
        out.host = states + 4 * n_params // N
    else:
        out.optimizer = states
        out.step_temp = 4 * n_params // N
    return out


@dataclass(frozen=True)
class SFTSettings:
    model: ModelSpec
    batch: int
    seq_len: int
    autocast: bool = False  # bf16/fp16 mixed precision (TRL's bf16: true)
    fused_optimizer: bool = True  # the HF Trainer's adamw_torch_fused (not with lora_learning_rate)


class RMSettings(SFTSettings):
    """batch: pairs per device (chosen and rejected run as one batch of 2 x batch)."""


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
        hw = self.hardware
        gb = lambda v: round(v / GB, 3)
        return {
            "step": self.step,
            "device": hw.device,
            "budget_gb": gb(hw.mem_bytes),
            "num_gpus": hw.num_gpus,
            "zero_stage": hw.zero_stage,
            "offload": hw.offload,
            "peak_gb": gb(self.total),
            "fits": self.fits,
            "headroom_gb": gb(hw.mem_bytes - self.total),
            "peak_phase": self.phase,
            "components_gb": {k: gb(v) for k, v in self.components.items()},
            "phases_gb": {k: gb(v) for k, v in self.phases.items()},
            "phase_components_gb": {p: {k: gb(v) for k, v in parts.items()} for p, parts in self.breakdown.items()},
            "host_offload_gb": gb(self.host_bytes),
            "models": self.models,
            "notes": self.notes,
            "suggestions": self.suggestions,
        }


def _weights_on_device(m: ModelCount, hw: Hardware) -> int:
    if hw.zero3:
        return 0 if hw.offload == "all" else m.weight_bytes // hw.num_gpus
    return m.weight_bytes


def _zero3_gather(counts: list[ModelCount], hw: Hardware) -> int:
    """ZeRO-3 gathers a block's weights before using it and prefetches the next one."""
    return 2 * 2 * max(m.largest_block_params for m in counts) if hw.zero3 else 0


def _model_row(role: str, m: ModelCount) -> dict:
    return {
        "role": role,
        "path": m.spec.settings.name_or_path,
        "params": m.params,
        "trainable": m.trainable,
        "weights_gb": round(m.weight_bytes / GB, 3),
        "dtype": m.spec.settings.dtype,
        "quant": m.spec.settings.quantization,
        "lora_r": m.spec.lora.r if m.spec.lora else 0,
    }


def _finish(plan: StepPlan, phases: dict, resident: dict, t: Trained, activations: int, logits: int) -> StepPlan:
    """`phases`, then training and the optimizer step, each with its runtime; the peak is the largest."""
    hw = plan.hardware
    plan.host_bytes = t.host
    if hw.device == "cpu" and any(row["quant"] != "none" for row in plan.models):
        plan.notes.append("8/4-bit loading needs bitsandbytes on a CUDA GPU")
    phases["training"] = resident | {"gradients": t.gradients, "activations": activations, "logits": logits}
    phases["optimizer step"] = resident | {"gradients": t.gradients, "optimizer": t.optimizer + t.step_temp}
    for parts in phases.values():
        if hw.device == "cuda":
            parts["runtime"] = CUDA_CONTEXT_BYTES + int(CUDA_ALLOCATOR_MARGIN * sum(parts.values()))
        else:
            parts["runtime"] = CPU_RUNTIME_BYTES
    plan.breakdown = {name: {k: int(parts.get(k, 0)) for k in COMPONENTS} for name, parts in phases.items()}
    plan.phases = {name: sum(parts.values()) for name, parts in plan.breakdown.items()}
    plan.phase = max(plan.phases, key=plan.phases.get)
    plan.components = dict(plan.breakdown[plan.phase])
    return plan


def plan_sft(s: SFTSettings, hw: Hardware, step: str = "sft") -> StepPlan:
    """Step 1 (TRL SFTTrainer) or, with a reward model, step 2 (RewardTrainer)."""
    m = count_model(s.model)
    d = 2 if s.autocast and hw.device == "cuda" else m.compute_bytes
    B = s.batch * (2 if step == "rm" else 1)
    plan = StepPlan(step, hw, s, models=[_model_row("policy" if step == "sft" else "reward", m)])
    t = trained_memory([m], hw, d, fused=s.fused_optimizer)
    resident = {"weights": _weights_on_device(m, hw) + t.weights_delta, "optimizer": t.optimizer}
    act = training_activation_bytes(m, B, s.seq_len, d, s.autocast and hw.device == "cuda", hw.device)
    logits = 0
    if step == "sft":
        # TRL's chunked LM head: one tile of logits at a time (~3 fp32 copies of it on the CPU); its
        # backward accumulates the hidden state's (and a trained head's) gradient in fp32.
        N, V, out_dim = B * s.seq_len, m.shape.vocab, m.shape.out_dim
        tile = min(N, TRL_TOKEN_CHUNK) * min(V, TRL_VOCAB_CHUNK)
        head = V * out_dim * (4 + d) if m.head_trained else 0
        logits = tile * (d if hw.device == "cuda" else d + 12) + N * out_dim * (4 + d) + head
    return _finish(plan, {}, resident, t, act + _zero3_gather([m], hw), logits)


def plan_rm(s: RMSettings, hw: Hardware) -> StepPlan:
    return plan_sft(s, hw, step="rm")


def plan_ppo(s: PPOSettings, hw: Hardware) -> StepPlan:
    """Step 3 with the project's engine: actor (+LoRA), reference, critic, reward model."""
    actor, critic, reward = count_model(s.actor), count_model(s.critic), count_model(s.reward)
    ref = None if s.actor.lora else count_model(replace(s.actor, trained=False))
    frozen = [x for x in (ref, reward) if x is not None]
    d = actor.compute_bytes
    Bg, Bt, P, A = s.generation_batch, s.training_batch, s.prompt_len, s.answer_len
    T, V = P + A, actor.shape.vocab
    rows = [("actor", actor), ("critic", critic), ("reference", ref), ("reward", reward)]
    plan = StepPlan("ppo", hw, s, models=[_model_row(role, m) for role, m in rows if m is not None])
    t = trained_memory([actor, critic], hw, d)
    weights = sum(_weights_on_device(x, hw) for x in [actor, critic, *frozen]) + t.weights_delta
    if s.ema:
        # PPOTrainer clones the actor's trained parameters (in their dtype: 16-bit under DeepSpeed).
        weights += actor.trainable * 2 if hw.deepspeed and d != 4 else actor.trainable_bytes
        if hw.zero3:
            plan.notes.append("enable_ema is refused under ZeRO-3 (the engine needs the actor's full weights)")
    resident = {"weights": weights, "optimizer": t.optimizer}
    gather = _zero3_gather([actor, critic, *frozen], hw)

    # Generation: the KV cache of every block and the prefill's temporaries. ZeRO-3 gathers the
    # whole actor for generate; otherwise fp32 LoRA layers use merged copies (engine.merged_lora).
    kv = 2 * actor.shape.layers * Bg * T * actor.shape.kv * d
    prefill = inference_bytes(actor, Bg, P, d) + 3 * Bg * V * 4
    gathered = actor.weight_bytes - _weights_on_device(actor, hw) if hw.zero3 else 0
    merged = 0 if hw.zero3 else actor.lora_base_bytes
    generation = {"weights": weights + gathered + merged, "kv_cache": kv, "activations": prefill}
    phases = {"generation": resident | generation}
    # Scoring: no-grad forwards of the four models, the actor's logits the largest part. A reused
    # actor / critic forward (PPOArguments.reuses_rollout_forward) is the first update's, so its
    # graph stays alive through the reference and reward forwards.
    forward_logits = logits_peaks(Bg, A + 1, A, V, d)[0]
    _, train_logits, kept_logits = logits_peaks(Bt, A + 1, A, V, d)
    experience = Bg * T * 8 * 3 + Bg * A * 4 * 8
    reused = set() if hw.zero3 else set(s.reuse)
    roles = {"actor": actor, "critic": critic}
    kept = sum(training_activation_bytes(roles[r], Bg, T, d, device=hw.device) for r in reused)
    no_grad = [roles[r] for r in roles if r not in reused] + frozen
    phases["scoring"] = resident | {
        "activations": kept + max(inference_bytes(x, Bg, T, d) for x in no_grad) + gather + experience,
        "logits": forward_logits + (kept_logits if "actor" in reused else 0),
    }
    # Training: one mini-batch through actor and critic, kept for their summed backward.
    act = sum(training_activation_bytes(x, Bt, T, d, device=hw.device) for x in (actor, critic))
    if s.ptx:  # the pretraining mix: a language-modelling loss on the actor's full (B, T, V) logits
        train_logits += Bt * T * V * (d + 8)
    plan = _finish(plan, phases, resident, t, act + gather + experience, train_logits)
    if gathered and plan.phase == "generation":
        plan.notes.append(
            f"under ZeRO-3 generation gathers the whole actor on every GPU "
            f"(RLHFEngine.actor_for_generation): {actor.weight_bytes / GB:.1f} GB of weights at once"
        )
    return plan


PLANNERS = {"sft": plan_sft, "rm": plan_rm, "ppo": plan_ppo}


def _tuned(m: ModelSpec, rank: int = 0, **settings) -> ModelSpec:
    """`m` with LoRA of rank and alpha `rank` (0: as it is) and other ModelSettings changed."""
    if rank:
        from ..models import LoraSettings

        settings["lora"] = LoraSettings(rank, rank)
    return replace(m, settings=replace(m.settings, **settings))


def _candidates(step: str, s, hw: Hardware) -> list[tuple[str, object, Hardware]]:
    """(what to change, new settings, new hardware) for every single change that saves memory."""
    out = []

    def add(what: str, settings=s, hardware=hw):
        out.append((what, settings, hardware))

    if hw.device == "cuda":
        if hw.num_gpus > 1 and hw.zero_stage < 3:
            for stage in range(max(hw.zero_stage + 1, 2), 4):
                add(
                    f"accelerate launch --config_file accelerate_configs/zero{stage}.yaml "
                    f"(ZeRO-{stage} over {hw.num_gpus} GPUs)",
                    hardware=replace(hw, zero_stage=stage),
                )
        if hw.offload == "none" and hw.zero_stage < 3:
            add(
                "accelerate_configs/zero2_offload.yaml (ZeRO-2, optimizer states in host memory)",
                hardware=replace(hw, zero_stage=2, offload="optimizer"),
            )
        if hw.zero_stage == 3 and hw.offload != "all":
            add(
                "accelerate_configs/zero3_offload.yaml (optimizer states and parameters in host memory)",
                hardware=replace(hw, offload="all"),
            )
    bnb = hw.device == "cuda" and not hw.zero3  # bitsandbytes + ZeRO-3: no
    if step in ("sft", "rm"):
        m = s.model
        if not m.lora:
            add("use_lora: true, lora_r: 128 (train LoRA adapters only)", replace(s, model=_tuned(m, rank=128)))
        if not m.checkpointing:
            add("activation_checkpointing: true", replace(s, model=_tuned(m, gradient_checkpointing=True)))
        if m.settings.quantization == "none" and bnb:
            add(
                "load_in_8bit: true" + ("" if m.lora else " with use_lora: true"),
                replace(s, model=_tuned(m, rank=0 if m.lora else 128, load_in_8bit=True)),
            )
        if s.batch > 1:
            b = max(1, s.batch // 2)
            add(
                f"per_device_train_batch_size: {b} (double gradient_accumulation_steps to keep the effective batch)",
                replace(s, batch=b),
            )
        return out
    a, c, r = s.actor, s.critic, s.reward
    if not a.lora:
        add(
            "actor_lora_dim: 128 (LoRA actor; the reference becomes the actor without its adapter, no second copy)",
            replace(s, actor=_tuned(a, rank=128)),
        )
    if not a.checkpointing:
        add("actor_gradient_checkpointing: true", replace(s, actor=_tuned(a, gradient_checkpointing=True)))
    if not c.checkpointing:
        add("critic_gradient_checkpointing: true", replace(s, critic=_tuned(c, gradient_checkpointing=True)))
    if not c.lora:
        add("critic_lora_dim: 128 (LoRA critic)", replace(s, critic=_tuned(c, rank=128)))
    if bnb and a.settings.quantization == "none":
        add(
            "actor_quantization: 8bit" + ("" if a.lora else " with actor_lora_dim: 128"),
            replace(s, actor=_tuned(a, rank=0 if a.lora else 128, load_in_8bit=True)),
        )
    if bnb and r.settings.quantization == "none":
        add("reward_quantization: 8bit", replace(s, reward=_tuned(r, load_in_8bit=True)))
    if s.ema:
        add("enable_ema: false (no EMA copy of the actor's trained weights)", replace(s, ema=False))
    if s.generation_batch > 1 or s.training_batch > 1:
        g, t = max(1, s.generation_batch // 2), max(1, s.training_batch // 2)
        add(
            f"per_device_generation_batch_size: {g}, per_device_training_batch_size: {t}",
            replace(s, generation_batch=g, training_batch=t),
        )
    return out


def _options(current: StepPlan) -> list[tuple[int, str, StepPlan]]:
    """(saving, change, new plan) of every single change that lowers `current`'s peak, best first."""
    out = []
    for what, s, hw in _candidates(current.step, current.settings, current.hardware):
        try:
            new = PLANNERS[current.step](s, hw)
        except RLHFLiteError:
            continue
        if new.total < current.total:
            out.append((current.total - new.total, what, new))
    return sorted(out, key=lambda o: -o[0])


def _row(change: str, saving: int, new: StepPlan, **more) -> dict:
    return {
        "change": change,
        "saves_gb": round(saving / GB, 2),
        "peak_gb": round(new.total / GB, 2),
        "fits": new.fits,
    } | more


def suggest(plan: StepPlan) -> list[dict]:
    """Up to 6 single changes that lower the peak, largest saving first; when none fits on its own,
    also the greedy combination (best change, then the best on top of it, ...) that does."""
    options = _options(plan)
    out = [_row(what, saving, new) for saving, what, new in options[:6]]
    if not options or any(new.fits for _, _, new in options):
        return out
    changes, current = [], plan
    while len(changes) < 6 and not current.fits:
        better = _options(current)
        if not better:
            break
        _, what, current = better[0]
        changes.append(what)
    if current.fits:
        out.append(_row(" + ".join(changes), plan.total - current.total, current, combined=True))
    else:
        plan.notes.append(
            f"no combination of these changes fits: the lowest peak found is "
            f"{current.total / GB:.2f} GB; more memory per GPU is needed"
        )
    return out
