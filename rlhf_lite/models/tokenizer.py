"""Tokenizers read from the model's own folder, with a real pad token (never silently eos)."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..errors import ConfigError, ModelError
from .resolve import check_model_kind, load_error, resolve_model_path, source_kwargs

logger = logging.getLogger(__name__)

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


def fix_pad_token(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give `tokenizer` a pad token other than eos (True if added: embeddings must grow). With pad ==
    eos, SFT masks every EOS out of the labels and reward pooling lands before the final EOS."""
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
    source, kwargs = source_kwargs(path)
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
        raise load_error(name_or_path, path, err) from err
    if len(tokenizer) < 2:
        raise ModelError(f"the tokenizer loaded from '{path}' is empty; its tokenizer files are incomplete")
    fix_pad_token(tokenizer)
    tokenizer.padding_side = padding_side
    return tokenizer


def check_same_vocab(actor_tokenizer, reward_tokenizer, actor_name: str, reward_name: str, roles=None) -> None:
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
        actor_role, reward_role = roles or ("actor", "reward model")
        raise ModelError(
            f"{actor_role} '{actor_name}' and {reward_role} '{reward_name}' use different tokenizers "
            f"({'; '.join(problems)}); the other models read the actor's token ids as they are, so "
            "train them from a model of the actor's family"
        )


def check_models(causal_lms: dict, reward_models: dict, own_vocab=(), trust_remote_code=False) -> dict:
    """Refuse, before any weights are read, models ({role: name}) of the wrong kind or, unless their
    role is in `own_vocab`, with another vocabulary than the first causal LM's; their tokenizers by role."""
    for kind, models in (("causal_lm", causal_lms), ("reward_model", reward_models)):
        for name in models.values():
            check_model_kind(name, kind, trust_remote_code)
    names = causal_lms | reward_models
    tokenizers = {role: load_tokenizer(name, trust_remote_code=trust_remote_code) for role, name in names.items()}
    (actor, tokenizer), *others = tokenizers.items()
    for role, other in others:
        if role not in own_vocab:
            check_same_vocab(tokenizer, other, names[actor], names[role], (actor, role))
    return tokenizers
