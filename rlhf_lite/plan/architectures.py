"""The planner's constants and the configs of the presets' models, known offline."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

GB = 2**30
STEPS = ("sft", "rm", "ppo")
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}

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

# The config.json values of the presets' models that differ from the config classes' defaults;
# keys are hub names (compared case-insensitively) plus the project's embedded model.
_OPT = dict(model_type="opt", activation_dropout=0.0, dtype="float16", architectures=["OPTForCausalLM"])
_BLOOM = dict(
    model_type="bloom", n_layer=24, n_head=16, pad_token_id=3, dtype="float16", architectures=["BloomForCausalLM"]
)


def _opt(h: int, layers: int, heads: int, **more) -> dict:
    sizes = dict(hidden_size=h, ffn_dim=4 * h, num_hidden_layers=layers, num_attention_heads=heads)
    return _OPT | sizes | dict(word_embed_proj_dim=h) | more


KNOWN_ARCHITECTURES: dict[str, dict] = {
    "facebook/opt-125m": _opt(768, 12, 12),
    # 350m is the odd one: 512-wide embeddings projected in/out, layer norm after each block.
    "facebook/opt-350m": _opt(1024, 24, 16, word_embed_proj_dim=512, do_layer_norm_before=False),
    "facebook/opt-1.3b": _opt(2048, 24, 32),
    "facebook/opt-6.7b": _opt(4096, 32, 32),
    "facebook/opt-13b": _opt(5120, 40, 40),
    "bigscience/bloom-560m": _BLOOM | dict(hidden_size=1024),
    "bigscience/bloom-1b1": _BLOOM | dict(hidden_size=1536),
    # What rlhf_lite.embedded converts SmolLM2-135M-Instruct's GGUF file into.
    "embedded:smollm2-135m": (
        dict(model_type="llama", architectures=["LlamaForCausalLM"], dtype="float32", tie_word_embeddings=True)
        | dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, pad_token_id=0)
        | dict(num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192)
        | dict(rms_norm_eps=1e-5, rope_parameters={"rope_theta": 100000.0, "rope_type": "default"})
    ),
}
for _alias in ("huggingfacetb/smollm2-135m-instruct", "huggingfacetb/smollm2-135m"):
    KNOWN_ARCHITECTURES[_alias] = KNOWN_ARCHITECTURES["embedded:smollm2-135m"]


def architecture(name_or_path: str):
    """A model's transformers config without its weights: a local folder's config.json, one of
    KNOWN_ARCHITECTURES (offline), or the hub's config.json."""
    from transformers import AutoConfig

    name = str(name_or_path)
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return AutoConfig.from_pretrained(str(path))
    if name.lower() in KNOWN_ARCHITECTURES:
        return AutoConfig.for_model(**KNOWN_ARCHITECTURES[name.lower()])
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
