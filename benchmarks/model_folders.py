"""Model folders the benchmarks build: plain safetensors checkpoints, written whole or not at all."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def save_folder(model, tokenizer, out: Path) -> Path:
    """Save `model` and `tokenizer` in `out`: into a side folder first, renamed when complete, so an
    interrupted run never leaves half a folder that a later run would take for a finished one."""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    return out


def fresh_head_critic(actor: str | Path, out: Path, **config_changes) -> Path:
    """What step 2 starts from: `actor`'s network (with `config_changes`, e.g. num_hidden_layers)
    with a fresh, seeded one-output score head, saved in `out` unless already there."""
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from rlhf_lite.models import load_tokenizer
    tokenizer = load_tokenizer(str(actor))
    config = AutoConfig.from_pretrained(actor, num_labels=1, **config_changes)
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(actor, config=config, dtype=torch.float32)
    return save_folder(model, tokenizer, out)
