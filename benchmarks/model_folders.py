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


def random_opt_folder(name: str, out: Path, dtype: str = "bf16", reward: bool = False, **config_changes) -> Path:
    """Random-weight `name` (facebook/opt-350m, facebook/opt-1.3b, ...: the planner knows their real
    configs, no hub needed), with `config_changes` (e.g. smaller sizes), as a causal LM or a
    one-output reward model, with an offline tokenizer holding fairseq's special tokens at OPT's
    ids; saved in `out` unless already there."""
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from rlhf_lite.plan import architecture
    from tests.tiny_models import make_tokenizer

    tokenizer = make_tokenizer("opt")
    config = architecture(name)
    for key, value in config_changes.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    if reward:
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch_dtype)
    else:
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    return save_folder(model, tokenizer, out)
