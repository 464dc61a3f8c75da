"""Loading a model for a step: dtype, 8/4-bit, dropout, LoRA and frozen blocks (DeepSpeed-Chat's `create_hf_model`)."""

from __future__ import annotations

import importlib.util
import logging
import pickle

import torch
from accelerate import PartialState
from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    BitsAndBytesConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..errors import ModelError
from ..quiet import logger_silenced, peft_probe_silenced
from .resolve import check_model_kind, load_error, source_kwargs
from .settings import DTYPES, ModelSettings, default_lora_targets
from .tokenizer import load_tokenizer

logger = logging.getLogger(__name__)


def _dropout_fields(config: PretrainedConfig) -> list[tuple[PretrainedConfig, str]]:
    # Names differ per family (attention_dropout, attn_pdrop, ...); sub-configs cover multimodal
    # wrappers. OPT's `layerdrop` is not a dropout: a nonzero p must not start dropping layers.
    fields = []
    for key, value in list(vars(config).items()):
        probability = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
        if isinstance(value, PretrainedConfig):
            fields += _dropout_fields(value)
        elif ("dropout" in key or key.endswith("_pdrop")) and probability:
            fields.append((config, key))
    return fields


def override_dropout(config: PretrainedConfig, p: float) -> None:
    for owner, key in _dropout_fields(config):
        setattr(owner, key, p)


def has_dropout(model: torch.nn.Module) -> bool:
    """Whether a training pass is random: a dropout module or (applied functionally) config probability > 0."""
    modules = any(m.p > 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    return modules or any(getattr(o, k) for o, k in _dropout_fields(model.config))


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
    path, config = check_model_kind(settings.name_or_path, want, settings.trust_remote_code, settings.cache_dir)
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
    source, kwargs = source_kwargs(path)
    dtype = DTYPES[settings.dtype]
    kwargs |= {"trust_remote_code": settings.trust_remote_code, "cache_dir": settings.cache_dir}
    kwargs |= _quantization(settings, dtype)
    try:
        # transformers logs the weights a checkpoint lacks; a fresh score head is missing by design
        with logger_silenced("transformers.modeling_utils", when=fresh_head):
            model = auto.from_pretrained(source, config=config, dtype=dtype, **kwargs)
    except (OSError, ValueError, pickle.UnpicklingError) as err:
        raise load_error(settings.name_or_path, path, err) from err
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
    layers = None  # (name of the block list, indices of its top blocks); None: train every block
    if (n := settings.trainable_layers) is not None:
        found = find_blocks(model)
        if found is None:
            raise ModelError(
                f"model '{model.config.name_or_path}': cannot find its {model.config.num_hidden_layers} "
                "transformer blocks to apply trainable_layers"
            )
        if n < len(found[1]):
            layers = found[0], list(range(len(found[1]) - n, len(found[1])))
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
        with peft_probe_silenced():
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
    return (find_blocks(model) or (None, None))[1]


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
