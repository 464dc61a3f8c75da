"""Sizes of things and the model configs the planner knows offline (so it works without the hub)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

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
    kv: int  # key/value width (heads x head_dim, smaller with grouped-query attention)
    layers: int
    vocab: int  # rows of the (padded) embedding = width of the logits
    out_dim: int  # width of the hidden state the head reads (OPT-350M: 512)
    eager_attention: bool  # BLOOM: scores (B, a, T, T) are materialised and kept
    dropout: float = 0.0  # OPT's residual dropout (after attention and after fc2)


def shape_of(config) -> Shape:
    from ..models import model_family

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
