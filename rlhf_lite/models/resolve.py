"""Where a model comes from (embedded, local folder or hub id) and whether it is the kind a step needs."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

from transformers import AutoConfig

from .. import embedded
from ..errors import ModelError

# A hub id is `name` or `owner/name`; anything else that does not exist is a mistyped path.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def resolve_model_path(name_or_path: str) -> str:
    """`embedded:<name>` -> its converted directory; a directory, `.gguf` file or hub id -> itself."""
    name = str(name_or_path)
    if embedded.is_embedded(name):
        return str(embedded.ensure_embedded_model(name))
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if path.is_file():
        if path.suffix == ".gguf":
            return str(path)
        raise ModelError(f"model path '{name}' is a file; expected a model directory or a .gguf file")
    if name.endswith(".gguf") or not HUB_ID.match(name):
        raise ModelError(f"model path '{name}' does not exist")
    return name


def source_kwargs(path: str) -> tuple[str, dict]:
    """(what to pass to from_pretrained, extra kwargs): a .gguf file loads from its directory."""
    p = Path(path)
    if p.suffix == ".gguf" and p.is_file():
        return str(p.parent), {"gguf_file": p.name}
    return path, {}


def check_model_dir(path: str) -> None:
    p = Path(path)
    if not p.is_dir() or (p / "config.json").is_file():
        return
    if (p / "adapter_config.json").is_file():
        raise ModelError(
            f"'{path}' holds only a LoRA adapter; save it merged (save_model(..., merge_lora=True)) "
            "or point to the base model"
        )
    raise ModelError(f"'{path}' has no config.json, so it is not a Hugging Face model directory")


def check_model_kind(name_or_path: str, want: str | None, trust_remote_code=False, cache_dir: str | None = None):
    """Refuse, before any weights are read, a model with damaged weights or that cannot serve as a
    `want` ('causal_lm', 'reward_model'); else its (local path or hub id, config)."""
    from safetensors import SafetensorError, safe_open

    path = resolve_model_path(name_or_path)
    check_model_dir(path)
    source, kwargs = source_kwargs(path)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, cache_dir=cache_dir, **kwargs)
    except (OSError, ValueError) as err:
        raise load_error(name_or_path, path, err) from err
    architectures = getattr(config, "architectures", None) or []
    classifier = [a for a in architectures if a.endswith("ForSequenceClassification")]
    if want == "causal_lm" and classifier and len(classifier) == len(architectures):
        raise ModelError(
            f"'{name_or_path}' is a reward model ({classifier[0]}): it scores text but does not generate; "
            "use a causal LM such as step 1's model or the PPO actor"
        )
    if want == "reward_model" and architectures and not classifier:
        raise ModelError(
            f"'{name_or_path}' is not a reward model but a {architectures[0]}: its score head would be random; "
            "use a model trained by step 2 (make rm)"
        )
    if want == "reward_model" and classifier and getattr(config, "num_labels", 1) != 1:
        raise ModelError(
            f"'{name_or_path}' is not a reward model but a {config.num_labels}-class classifier; a reward "
            "model has one output (step 2 trains one)"
        )
    for f in sorted(Path(path).glob("*.safetensors")):
        try:  # the header tells how many bytes of tensors follow: reading it costs nothing
            with safe_open(str(f), "pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise ModelError(
                f"weights file '{f}' is truncated or corrupt ({str(err).splitlines()[0]}); copy or download it again"
            ) from None
    return path, config


def load_error(name: str, path: str, err: Exception) -> ModelError:
    if isinstance(err, pickle.UnpicklingError):  # torch.load(weights_only=True) refused it
        return ModelError(
            f"model '{name}': a pickled weights file (.bin) in {path} holds more than tensors, so it was "
            "not loaded (unpickling can run code); use a safetensors copy from a source you trust"
        )
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "trust_remote_code" in str(err):
        return ModelError(
            f"model '{name}' needs its own Python code to load; pass trust_remote_code=True "
            "only if you trust its authors"
        )
    if Path(path).exists():
        return ModelError(f"could not load model '{name}' from {path}: {detail}")
    return ModelError(f"model '{name}' is not a local directory and could not be loaded from the hub ({detail})")
