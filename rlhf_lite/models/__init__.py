"""Loading and saving models and tokenizers: DeepSpeed-Chat's `create_hf_model` / `load_hf_tokenizer`
on plain transformers + PEFT, minus their traps: the tokenizer is read from the model directory itself,
pad is never silently set to eos, and remote code never runs unless asked for."""

from .export import export_saved, save_model
from .load import (
    decoder_blocks,
    has_dropout,
    load_causal_lm,
    load_reward_model,
    override_dropout,
    prepare_for_training,
    score_head,
)
from .resolve import check_model_dir, check_model_kind, resolve_model_path
from .settings import DTYPES, LORA_TARGETS, LoraSettings, ModelSettings, default_lora_targets, model_family
from .tokenizer import check_models, check_same_vocab, fix_pad_token, load_tokenizer
