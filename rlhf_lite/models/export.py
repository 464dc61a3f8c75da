"""Saving a trained model as a standard Hugging Face folder (LoRA merged or kept), published whole."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from peft import PeftConfig, PeftModel
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..quiet import warning_silenced
from .resolve import source_kwargs
from .settings import PEFT_PROBE


def save_model(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | os.PathLike,
    merge_lora: bool = True,
    state_dict: dict | None = None,
) -> Path:
    """Write a standard HF directory (config, safetensors, tokenizer, generation config).

    With `merge_lora` a PEFT model is saved with its adapters folded into the weights, loadable
    by plain transformers; the model passed in is left unchanged. Without it only the adapter is
    written. `state_dict` replaces the model's own weights (e.g. ones gathered from ZeRO-3
    shards). Call it from the main process only.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as saved:
        model.save_pretrained(saved, safe_serialization=True, state_dict=state_dict)
        return export_saved(saved, model, tokenizer, out, merge_lora)


def export_saved(
    saved_dir: str | os.PathLike,
    model,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | os.PathLike,
    merge_lora: bool = True,
) -> Path:
    """Publish weights saved by `save_pretrained`/`Trainer.save_model` as a standard HF folder.

    `model` (possibly DeepSpeed-partitioned) supplies the base config and generation config. The
    folder may already hold other things (logs, checkpoints); its previous model files are
    replaced, and config.json is written last so a crash never leaves a folder that looks
    complete with half its weights.
    """
    saved, out = Path(saved_dir), Path(out_dir)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as staging:
        staging = Path(staging)
        if (saved / "adapter_config.json").exists() and merge_lora:
            _merged_copy(saved, model).save_pretrained(staging, safe_serialization=True)
        else:
            for f in saved.iterdir():
                if f.is_file() and f.name != "training_args.bin":  # a pickle; nothing needs it
                    shutil.copy2(f, staging / f.name)
        tokenizer.save_pretrained(staging)
        _enable_kv_cache(staging / "config.json")
        _publish(staging, out)
    return out


MODEL_FILES = re.compile(
    r"^(config\.json|generation_config\.json|adapter_config\.json|"
    r".*\.safetensors|.*\.bin|.*\.index\.json|tokenizer.*|special_tokens_map\.json|"
    r"chat_template\.jinja|vocab\.json|merges\.txt|added_tokens\.json)$"
)


def _enable_kv_cache(config_file: Path) -> None:
    # Trainers switch the KV cache off for gradient checkpointing and save it so; a published
    # model that generates without it recomputes the whole sequence for every new token.
    if not config_file.is_file():  # an adapter-only export
        return
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("use_cache") is False:
        config["use_cache"] = True
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _publish(staging: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").unlink(missing_ok=True)  # from here on the folder does not look complete
    for old in out.iterdir():
        if old.is_file() and MODEL_FILES.match(old.name):
            old.unlink()
    files = sorted(staging.iterdir(), key=lambda f: f.name == "config.json")
    for f in files:
        os.replace(f, out / f.name)


@contextlib.contextmanager
def _whole_weights():
    """Under DeepSpeed ZeRO-3, transformers builds every `from_pretrained` model partitioned (a
    DeepSpeed config registered by Trainer or accelerate is in force); the one-process CPU copy a
    LoRA merge loads must hold whole weights."""
    from transformers.integrations import deepspeed as hf_deepspeed

    ref = hf_deepspeed._hf_deepspeed_config_weak_ref
    config = ref() if ref is not None else None
    if config is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(config)


def _merged_copy(adapter_dir: Path, model) -> PreTrainedModel:
    # The merge happens on a fresh CPU copy of the base read back from disk, never on the model
    # being trained: merging in place would change it under the caller, a deepcopy would double
    # GPU memory, and folding LoRA into int8/nf4 weights would round most of the update away.
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    base_path = PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path
    config = copy.deepcopy(base.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.use_cache = True  # switched off for gradient checkpointing, wanted for generation
    dtype = config.dtype if isinstance(config.dtype, torch.dtype) else torch.float32
    source, kwargs = source_kwargs(base_path)
    with _whole_weights():
        full = type(base).from_pretrained(source, config=config, dtype=dtype, **kwargs)
    trained = base.get_input_embeddings().weight
    if full.get_input_embeddings().num_embeddings != trained.shape[0] and trained.dim() == 2:
        # Rows added for a new pad token were initialised randomly: take the trained model's
        # (not reachable when DeepSpeed ZeRO-3 partitions them; pad rows are masked anyway).
        full.resize_token_embeddings(trained.shape[0])
        full.get_input_embeddings().weight.data.copy_(trained)
        if full.get_output_embeddings() is not None and not getattr(config, "tie_word_embeddings", False):
            full.get_output_embeddings().weight.data.copy_(base.get_output_embeddings().weight)
    with warning_silenced(PEFT_PROBE, FutureWarning):
        merged = PeftModel.from_pretrained(full, str(adapter_dir)).merge_and_unload()
    if base.can_generate():
        merged.generation_config = copy.deepcopy(base.generation_config)
    return merged
