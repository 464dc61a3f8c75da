"""Loading and saving models and tokenizers: DeepSpeed-Chat's `create_hf_model` / `load_hf_tokenizer`
on plain transformers + PEFT, minus their traps: the tokenizer is read from the model directory itself,
pad is never silently set to eos, and remote code never runs unless asked for."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import os
import pickle
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from accelerate import PartialState
from peft import LoraConfig, PeftConfig, PeftModel, TaskType, get_peft_model, prepare_model_for_kbit_training
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BitsAndBytesConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .. import embedded
from ..errors import ConfigError, ModelError
from ..quiet import logger_silenced

logger = logging.getLogger(__name__)

# PEFT probes transformers 5's deprecated `is_gradient_checkpointing` on every model it wraps; the
# FutureWarning is about PEFT's code, not the user's.
PEFT_PROBE = ".*is_gradient_checkpointing"

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "auto": "auto"}
LORA_TARGETS: dict[str, list[str]] = {
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    "bloom": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
# A hub id is `name` or `owner/name`; anything else that does not exist is a mistyped path.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Files that actually carry a vocabulary: transformers 5 happily builds an *empty* GPT2Tokenizer
# from a directory holding only config.json, so their absence must be caught before loading.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tiktoken.model",
)
# Tried in order when a tokenizer has no pad token (or pad == eos) and no usable unk.
PAD_CANDIDATES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<|endoftext|>")
MODEL_FILES = re.compile(
    r"^(config\.json|generation_config\.json|adapter_config\.json|"
    r".*\.safetensors|.*\.bin|.*\.index\.json|tokenizer.*|special_tokens_map\.json|"
    r"chat_template\.jinja|vocab\.json|merges\.txt|added_tokens\.json)$"
)


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] | None = None  # None: the family's attention + MLP projections
    modules_to_save: list[str] | None = None  # trained in full next to the adapters

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ConfigError(f"lora.r must be a positive integer, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ModelSettings:
    name_or_path: str
    dtype: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    lora: LoraSettings | None = None
    gradient_checkpointing: bool = False
    # Overrides every dropout probability in the config; 0.0 is DeepSpeed-Chat's --disable_dropout.
    dropout: float | None = None
    # Freeze tuning (LLaMA-Factory's `freeze`): train only the top N blocks (None: all). Backward
    # then stops at the lowest trained block, so a step costs far less than full fine-tuning.
    trainable_layers: int | None = None
    trust_remote_code: bool = False
    cache_dir: str | None = None  # hub download cache

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got '{self.dtype}'")
        if self.load_in_8bit and self.load_in_4bit:
            raise ConfigError(f"model '{self.name_or_path}': choose load_in_8bit or load_in_4bit, not both")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.trainable_layers is not None and self.trainable_layers < 1:
            raise ConfigError(f"trainable_layers must be >= 1, got {self.trainable_layers}")

    @property
    def quantization(self) -> str:  # as step 3's *_quantization flags spell it
        return "8bit" if self.load_in_8bit else "4bit" if self.load_in_4bit else "none"


def model_family(config: PretrainedConfig) -> str:
    """'opt', 'bloom', 'llama' (also Mistral, Qwen2, SmolLM2...), otherwise the config's model_type."""
    model_type = getattr(config, "model_type", "") or ""
    return "llama" if model_type in {"llama", "mistral", "qwen2", "qwen3"} else model_type


def default_lora_targets(config: PretrainedConfig) -> list[str] | str:
    """The family's attention + MLP projections; PEFT's "all-linear" for other families."""
    family = model_family(config)
    return list(LORA_TARGETS[family]) if family in LORA_TARGETS else "all-linear"


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


def _source(path: str) -> tuple[str, dict]:
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


def check_model_kind(name_or_path: str, want: str, trust_remote_code: bool = False) -> None:
    """Refuse, before any weights are read, a model of the wrong kind for its role or with damaged weights."""
    _checked_config(name_or_path, want, trust_remote_code)


def _checked_config(name_or_path: str, want: str | None, trust_remote_code: bool, cache_dir: str | None = None):
    """(local path or hub id, config) of a model that can serve as a `want` ('causal_lm', 'reward_model')."""
    from safetensors import SafetensorError, safe_open

    path = resolve_model_path(name_or_path)
    check_model_dir(path)
    source, kwargs = _source(path)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, cache_dir=cache_dir, **kwargs)
    except (OSError, ValueError) as err:
        raise _load_error(name_or_path, path, err) from err
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


def _load_error(name: str, path: str, err: Exception) -> ModelError:
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


def fix_pad_token(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give `tokenizer` a pad token different from eos; True if one had to be added (the model's
    embeddings must then grow). With pad == eos, SFT masks every EOS out of the labels (the model
    never learns to stop) and reward pooling lands before the final EOS."""
    eos_id = tokenizer.eos_token_id
    if tokenizer.pad_token is not None and tokenizer.pad_token_id != eos_id:
        return False
    # bos is excluded as well: PPO rebuilds attention masks as `ids != pad`, which would hide it.
    taken = {eos_id, tokenizer.bos_token_id}
    vocab = tokenizer.get_vocab()
    for candidate in (tokenizer.unk_token, *PAD_CANDIDATES):
        if candidate is not None and candidate in vocab and vocab[candidate] not in taken:
            tokenizer.pad_token = candidate
            return False
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    logger.warning(
        "tokenizer '%s' had no usable pad token; added '<pad>' (id %d), model embeddings are resized to match",
        tokenizer.name_or_path, tokenizer.pad_token_id,
    )  # fmt: skip
    return True


def load_tokenizer(name_or_path: str, padding_side: str = "right", *, trust_remote_code=False, cache_dir=None):
    """The tokenizer stored with the model, with a pad token that is not eos; "left" padding to generate."""
    if padding_side not in ("left", "right"):
        raise ConfigError(f"padding_side must be 'left' or 'right', got '{padding_side}'")
    path = resolve_model_path(name_or_path)
    source, kwargs = _source(path)
    if not kwargs and Path(path).is_dir() and not any((Path(path) / f).is_file() for f in TOKENIZER_FILES):
        raise ModelError(
            f"model directory '{path}' has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...); "
            "copy the tokenizer files of the model it was trained from into it"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code, cache_dir=cache_dir, **kwargs
        )
    except (OSError, ValueError) as err:
        raise _load_error(name_or_path, path, err) from err
    if len(tokenizer) < 2:
        raise ModelError(f"the tokenizer loaded from '{path}' is empty; its tokenizer files are incomplete")
    fix_pad_token(tokenizer)
    tokenizer.padding_side = padding_side
    return tokenizer


def check_same_vocab(actor_tokenizer, reward_tokenizer, actor_name: str, reward_name: str) -> None:
    """Refuse an actor/reward pair whose tokenizers differ: PPO feeds the actor's token ids
    straight into the reward model, so a different vocabulary silently scores garbage."""
    problems = []
    if len(actor_tokenizer) != len(reward_tokenizer):
        problems.append(f"{len(actor_tokenizer)} vs {len(reward_tokenizer)} tokens")
    for role in ("bos", "eos", "pad", "unk"):
        a, r = getattr(actor_tokenizer, f"{role}_token_id"), getattr(reward_tokenizer, f"{role}_token_id")
        if a != r:
            problems.append(f"{role} id {a} vs {r}")
    reward_vocab = reward_tokenizer.get_vocab()
    differing = [t for t, i in actor_tokenizer.get_vocab().items() if reward_vocab.get(t) != i]
    if differing:
        problems.append(f"{len(differing)} tokens map to different ids, e.g. {differing[:3]}")
    if problems:
        raise ModelError(
            f"actor '{actor_name}' and reward model '{reward_name}' use different tokenizers "
            f"({'; '.join(problems)}); PPO passes the actor's token ids to the reward model, so "
            "train the reward model from a model of the actor's family"
        )


def _dropout_fields(config: PretrainedConfig) -> list[tuple[PretrainedConfig, str]]:
    # Names differ per family (attention_dropout, attn_pdrop, ...); sub-configs cover multimodal
    # wrappers. OPT's `layerdrop` is not a dropout: a nonzero p must not start dropping layers.
    fields = []
    for key, value in list(vars(config).items()):
        if isinstance(value, PretrainedConfig):
            fields += _dropout_fields(value)
        elif ("dropout" in key or key.endswith("_pdrop")) and (
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
        ):
            fields.append((config, key))
    return fields


def override_dropout(config: PretrainedConfig, p: float) -> None:
    for owner, key in _dropout_fields(config):
        setattr(owner, key, p)


def has_dropout(model: torch.nn.Module) -> bool:
    """Whether a training pass is random: a dropout module or (applied functionally) config probability > 0."""
    config = getattr(model, "config", None)
    return any(m.p > 0 for m in model.modules() if isinstance(m, torch.nn.Dropout)) or bool(
        config is not None and any(getattr(o, k) for o, k in _dropout_fields(config))
    )


def _quantization(settings: ModelSettings, dtype: torch.dtype | str) -> dict:
    if not (settings.load_in_8bit or settings.load_in_4bit):
        return {}
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(
            f"model '{settings.name_or_path}': 8/4-bit loading needs bitsandbytes: pip install 'rlhf-lite[quant]'"
        )
    if settings.load_in_8bit:
        quant = BitsAndBytesConfig(load_in_8bit=True)
        # bitsandbytes warns on *every* 8-bit matmul whose input is not fp16: say it once instead.
        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
        logger.info(
            "model '%s': 8-bit matmuls compute in fp16 (bitsandbytes casts their inputs)", settings.name_or_path
        )
    else:
        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if isinstance(dtype, torch.dtype) else torch.float32,
        )
    kwargs: dict = {"quantization_config": quant}
    if torch.cuda.is_available():
        # Quantised weights cannot move after loading: put each process's copy on its own GPU.
        kwargs["device_map"] = {"": PartialState().local_process_index}
    return kwargs


def _load(settings: ModelSettings, tokenizer: PreTrainedTokenizerBase | None, reward: bool, want: str | None):
    path, config = _checked_config(settings.name_or_path, want, settings.trust_remote_code, settings.cache_dir)
    if tokenizer is None:
        tokenizer = load_tokenizer(
            settings.name_or_path, trust_remote_code=settings.trust_remote_code, cache_dir=settings.cache_dir
        )
    fresh_head = reward and not any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
    if settings.dropout is not None:
        override_dropout(config, settings.dropout)
    if reward:
        config.num_labels = 1
    # Sequence classification pools the last non-pad token. A freshly added pad is beyond the
    # checkpoint's embedding (padding_idx would reject it): it is set once those are resized.
    pad_id = tokenizer.pad_token_id
    config.pad_token_id = pad_id if pad_id < getattr(config, "vocab_size", pad_id + 1) else None
    auto = AutoModelForSequenceClassification if reward else AutoModelForCausalLM
    source, kwargs = _source(path)
    kwargs |= {"trust_remote_code": settings.trust_remote_code, "cache_dir": settings.cache_dir}
    dtype = DTYPES[settings.dtype]
    try:
        # transformers logs the weights a checkpoint lacks; a fresh score head is missing by design
        with logger_silenced("transformers.modeling_utils", when=fresh_head):
            model = auto.from_pretrained(
                source, config=config, dtype=dtype, **kwargs, **_quantization(settings, dtype)
            )
    except (OSError, ValueError, pickle.UnpicklingError) as err:
        raise _load_error(settings.name_or_path, path, err) from err
    if fresh_head:
        logger.info("model '%s': a new one-output score head, to be trained", settings.name_or_path)

    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=8)
    model.config.pad_token_id = pad_id
    if model.can_generate():
        model.generation_config.pad_token_id = pad_id
    return prepare_for_training(model, settings, reward)


def prepare_for_training(model: PreTrainedModel, settings: ModelSettings, reward: bool):
    if (settings.load_in_8bit or settings.load_in_4bit) and settings.lora is not None:
        # Freezes the int8/nf4 base and upcasts norms; checkpointing is switched on below instead.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if settings.gradient_checkpointing:
        # Non-reentrant checkpointing lets gradients reach LoRA weights even though every input
        # to the checkpointed block comes from frozen parameters.
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    layers = _top_layers(model, settings.trainable_layers)
    if settings.lora is None:
        if layers is not None:
            _freeze_below(model, *layers)
        return model
    lora = settings.lora
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules or default_lora_targets(model.config),
        modules_to_save=lora.modules_to_save,
        layers_to_transform=layers[1] if layers else None,
        layers_pattern=layers[0].split(".")[-1] if layers else None,
        # SEQ_CLS also keeps the freshly initialised score head fully trainable.
        task_type=TaskType.SEQ_CLS if reward else TaskType.CAUSAL_LM,
    )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", PEFT_PROBE, FutureWarning)
            return get_peft_model(model, config)
    except ValueError as err:
        raise ModelError(f"model '{settings.name_or_path}': cannot apply LoRA ({err})") from err


def find_blocks(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList] | None:
    """(name, module) of the model's list of transformer blocks, or None if it has none."""
    depth = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == depth:
            return name, module
    return None


def decoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The model's transformer blocks, bottom first (None if it has no recognisable list)."""
    found = find_blocks(model)
    return found[1] if found else None


def _top_layers(model: PreTrainedModel, n: int | None) -> tuple[str, list[int]] | None:
    """(name of the block list, indices of its top `n` blocks), or None to train every block."""
    if n is None:
        return None
    found = find_blocks(model)
    if found is None:
        raise ModelError(
            f"model '{model.config.name_or_path}': cannot find its {model.config.num_hidden_layers} "
            "transformer blocks to apply trainable_layers"
        )
    depth = len(found[1])
    return (found[0], list(range(depth - n, depth))) if n < depth else None


def _freeze_below(model: PreTrainedModel, blocks: str, top: list[int]) -> None:
    # Above the blocks sit the final norm, OPT's project_out and the head; embeddings (a tied LM
    # head included) sit below, and training them would make backward run through every block.
    embeddings = {id(model.get_input_embeddings().weight)}
    trained_blocks = tuple(f"{blocks}.{i}." for i in top)
    for name, p in model.named_parameters():
        if name.startswith(blocks + "."):
            p.requires_grad_(name.startswith(trained_blocks))
        else:
            above = any(k in name for k in ("norm", "ln_f", "project_out", "score", "lm_head")) and "embed" not in name
            p.requires_grad_(above and id(p) not in embeddings)


def load_causal_lm(settings: ModelSettings, tokenizer: PreTrainedTokenizerBase | None = None):
    """The actor / reference model, wrapped in PEFT if `settings.lora`; refuses a reward model."""
    return _load(settings, tokenizer, reward=False, want="causal_lm")


def load_reward_model(settings: ModelSettings, tokenizer: PreTrainedTokenizerBase | None = None, trained: bool = True):
    """A one-output AutoModelForSequenceClassification (scores the last non-pad token); unless
    `trained`, as step 2 starts, a causal LM checkpoint gets a freshly initialised score head."""
    return _load(settings, tokenizer, reward=True, want="reward_model" if trained else None)


def score_head(model: torch.nn.Module) -> torch.nn.Module:
    # The outermost module named "score" (PEFT wraps the head, DeepSpeed wraps the model).
    heads = [(name, m) for name, m in model.named_modules() if name.split(".")[-1] == "score"]
    if not heads:
        raise ValueError("the reward model has no 'score' head to read per-token values from")
    return min(heads, key=lambda nm: len(nm[0]))[1]


def save_model(model, tokenizer, out_dir: str | os.PathLike, merge_lora: bool = True, state_dict=None) -> Path:
    """Write a standard HF directory, a PEFT model's adapters merged into a copy of the weights (or,
    without `merge_lora`, the adapter alone). `state_dict`: weights gathered from ZeRO-3 shards, say.
    Main process only."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as saved:
        model.save_pretrained(saved, safe_serialization=True, state_dict=state_dict)
        return export_saved(saved, model, tokenizer, out, merge_lora)


def export_saved(saved_dir: str | os.PathLike, model, tokenizer, out_dir: str | os.PathLike, merge_lora=True) -> Path:
    """Publish weights saved by `save_pretrained`/`Trainer.save_model` as a standard HF folder
    (`model`, maybe DeepSpeed-partitioned, supplies the configs). The folder's previous model files
    are replaced; config.json comes last, so a crash never leaves a folder that looks complete."""
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
    source, kwargs = _source(base_path)
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
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", PEFT_PROBE, FutureWarning)
        merged = PeftModel.from_pretrained(full, str(adapter_dir)).merge_and_unload()
    if base.can_generate():
        merged.generation_config = copy.deepcopy(base.generation_config)
    return merged
