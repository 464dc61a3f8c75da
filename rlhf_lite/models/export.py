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
from transformers import PreTrainedModel

from ..quiet import peft_probe_silenced
from .resolve import source_kwargs

MODEL_FILES = re.compile(
    r"^(config\.json|generation_config\.json|adapter_config\.json|"
    r".*\.safetensors|.*\.bin|.*\.index\.json|tokenizer.*|special_tokens_map\.json|"
    r"chat_template\.jinja|vocab\.json|merges\.txt|added_tokens\.json)$"
)


def save_model(model, tokenizer, out_dir: str | os.PathLike, merge_lora: bool = True, state_dict=None) -> Path:
    """Write a standard HF directory, LoRA merged into a copy of the weights unless not `merge_lora`.
    `state_dict`: weights gathered from ZeRO-3 shards, say. Main process only."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as saved:
        model.save_pretrained(saved, safe_serialization=True, state_dict=state_dict)
        return export_saved(saved, model, tokenizer, out, merge_lora)


def export_saved(saved_dir: str | os.PathLike, model, tokenizer, out_dir: str | os.PathLike, merge_lora=True) -> Path:
    """Publish weights saved by `save_pretrained` as a standard HF folder, replacing its model files;
    config.json comes last, so a crash never leaves a folder that looks complete."""
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
        # Trainers switch the KV cache off for gradient checkpointing and save it so; a published
        # model that generates without it recomputes the whole sequence for every new token.
        config_file = staging / "config.json"
        if config_file.is_file():  # not in an adapter-only export
            config = json.loads(config_file.read_text(encoding="utf-8"))
            if config.get("use_cache") is False:
                config["use_cache"] = True
                config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").unlink(missing_ok=True)  # from here on the folder does not look complete
        for old in out.iterdir():
            if old.is_file() and MODEL_FILES.match(old.name):
                old.unlink()
        for f in sorted(staging.iterdir(), key=lambda f: f.name == "config.json"):
            os.replace(f, out / f.name)
    return out


# HfDeepSpeedConfig registers itself through a weak reference: the one _whole_weights restores must live on.
_restored_deepspeed_config = []


@contextlib.contextmanager
def _whole_weights():
    """Under ZeRO-3 every `from_pretrained` model is built partitioned; a LoRA merge's CPU copy must be whole."""
    from transformers.integrations import deepspeed as hf_deepspeed

    if not hf_deepspeed.is_deepspeed_zero3_enabled():
        yield
        return
    config = hf_deepspeed.deepspeed_config()
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        _restored_deepspeed_config[:] = [hf_deepspeed.HfDeepSpeedConfig(config)]


def _merged_copy(adapter_dir: Path, model) -> PreTrainedModel:
    # Merged into a fresh CPU copy of the base read from disk: merging in place would change the
    # caller's model, a deepcopy would double GPU memory, int8/nf4 weights would round the update away.
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    base_path = PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path
    config = copy.deepcopy(base.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    dtype = config.dtype if isinstance(config.dtype, torch.dtype) else torch.float32
    source, kwargs = source_kwargs(base_path)
    with _whole_weights():
        full = type(base).from_pretrained(source, config=config, dtype=dtype, **kwargs)
    trained = base.get_input_embeddings().weight
    if full.get_input_embeddings().num_embeddings != trained.shape[0] and trained.dim() == 2:
        # Rows added for a new pad token were initialised randomly: take the trained model's (not
        # reachable under ZeRO-3; pad rows are masked anyway).
        full.resize_token_embeddings(trained.shape[0])
        full.get_input_embeddings().weight.data.copy_(trained)
        if full.get_output_embeddings() is not None and not getattr(config, "tie_word_embeddings", False):
            full.get_output_embeddings().weight.data.copy_(base.get_output_embeddings().weight)
    with peft_probe_silenced():
        merged = PeftModel.from_pretrained(full, str(adapter_dir)).merge_and_unload()
    if base.can_generate():
        merged.generation_config = copy.deepcopy(base.generation_config)
    return merged
