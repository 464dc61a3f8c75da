"""Loading the actor, reference and reward models and their tokenizers.

Everything DeepSpeed-Chat's `create_hf_model` / `load_hf_tokenizer` did, on plain transformers +
PEFT, minus their traps: the tokenizer is read from the model directory itself (not from the
`_name_or_path` recorded in its config), pad is never silently set to eos, and remote code never
runs unless asked for.

    tokenizer = load_tokenizer("facebook/opt-1.3b")
    actor = load_causal_lm(ModelSettings("facebook/opt-1.3b", lora=LoraSettings()), tokenizer)
"""

from .export import MODEL_FILES, export_saved, save_model
from .load import (
    decoder_blocks,
    find_blocks,
    has_dropout,
    load_causal_lm,
    load_reward_model,
    override_dropout,
    prepare_for_training,
    score_head,
)
from .resolve import HUB_ID, check_model_dir, check_model_kind, check_weight_files, kind_error, resolve_model_path
from .settings import (
    DTYPES,
    LLAMA_LIKE,
    LORA_TARGETS,
    PEFT_PROBE,
    Dtype,
    LoraSettings,
    ModelSettings,
    default_lora_targets,
    model_family,
)
from .tokenizer import PAD_CANDIDATES, TOKENIZER_FILES, check_same_vocab, fix_pad_token, load_tokenizer

__all__ = [
    "DTYPES",
    "Dtype",
    "HUB_ID",
    "LLAMA_LIKE",
    "LORA_TARGETS",
    "LoraSettings",
    "MODEL_FILES",
    "ModelSettings",
    "PAD_CANDIDATES",
    "PEFT_PROBE",
    "TOKENIZER_FILES",
    "check_model_dir",
    "check_model_kind",
    "check_same_vocab",
    "check_weight_files",
    "decoder_blocks",
    "default_lora_targets",
    "export_saved",
    "find_blocks",
    "fix_pad_token",
    "has_dropout",
    "kind_error",
    "load_causal_lm",
    "load_reward_model",
    "load_tokenizer",
    "model_family",
    "override_dropout",
    "prepare_for_training",
    "resolve_model_path",
    "save_model",
    "score_head",
]
