"""Tiny OPT, BLOOM and Llama checkpoints built offline, for tests that need real HF model dirs.

Each directory is what `save_pretrained` writes for a real model of that family (config.json,
model.safetensors, tokenizer files), only a few hundred KB, so every loader in the project can be
exercised without the hub. The tokenizers are byte-level BPE trained on a short English + Chinese
text with the special tokens *at the ids the real checkpoints use*, because that is where
family-specific bugs live (OPT's bos == eos, Llama-2's missing pad token, BLOOM's pad at 3).

    from tests.tiny_models import make_tiny_model
    path = make_tiny_model(tmp_path, family="llama", kind="reward")
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    BloomConfig,
    LlamaConfig,
    OPTConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

Family = Literal["opt", "bloom", "llama"]
Kind = Literal["causal", "reward"]

FAMILIES: tuple[Family, ...] = ("opt", "bloom", "llama")
DEFAULT_VOCAB = 384

# Enough text for a few hundred merges in both scripts; Chinese matters because byte-level BPE
# splits a CJK character into 3 bytes and a tokenizer trained on ASCII only would hide that.
CORPUS = [
    "Human: What is the capital of France? Assistant: The capital of France is Paris.",
    "Human: Can you help me write a short poem about the sea? Assistant: Sure, here is one.",
    "The quick brown fox jumps over the lazy dog. A good answer is helpful, honest and harmless.",
    "Reinforcement learning from human feedback trains a reward model on human preferences.",
    "The chosen response is better than the rejected response, so its reward should be higher.",
    "Please explain how a language model generates text one token at a time.",
    "Human: 你好，请问今天天气怎么样？ Assistant: 今天天气很好，阳光明媚。",
    "Human: 中国的首都是哪里？ Assistant: 中国的首都是北京。",
    "我喜欢学习机器学习和自然语言处理。这个模型的回答很有帮助。",
    "请用简单的语言解释什么是强化学习。奖励模型根据人类的偏好进行训练。",
]


@dataclass(frozen=True)
class FamilySpec:
    special_tokens: tuple[str, ...]  # in id order: the first gets id 0
    bos: str | None
    eos: str
    unk: str | None
    pad: str | None
    prepend: str | None  # the token the real tokenizer puts in front of every text


FAMILY_SPECS: dict[str, FamilySpec] = {
    # facebook/opt-*: GPT-2 BPE with fairseq's specials first; bos is `</s>` and is prepended.
    "opt": FamilySpec(("<s>", "<pad>", "</s>", "<unk>"), "</s>", "</s>", "<unk>", "<pad>", "</s>"),
    # bigscience/bloom*: nothing prepended.
    "bloom": FamilySpec(("<unk>", "<s>", "</s>", "<pad>"), "<s>", "</s>", "<unk>", "<pad>", None),
    # meta-llama/Llama-2-*: sentencepiece with `<s>` prepended and no pad token at all.
    "llama": FamilySpec(("<unk>", "<s>", "</s>"), "<s>", "</s>", "<unk>", None, "<s>"),
}


@functools.cache
def _tokenizer_json(family: str, vocab_size: int, corpus: tuple[str, ...]) -> str:
    spec = FAMILY_SPECS[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(spec.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    if spec.prepend is not None:
        p = spec.prepend
        tok.post_processor = processors.TemplateProcessing(
            single=f"{p} $A", pair=f"{p} $A {p} $B:1", special_tokens=[(p, tok.token_to_id(p))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok.to_str()


def make_tokenizer(
    family: Family, vocab: int | None = None, corpus: list[str] | None = None
) -> PreTrainedTokenizerFast:
    """A fresh tokenizer with `family`'s special tokens; `vocab`/`corpus` give a different vocabulary."""
    spec = FAMILY_SPECS[family]
    raw = Tokenizer.from_str(_tokenizer_json(family, vocab or DEFAULT_VOCAB, tuple(corpus or CORPUS)))
    specials = {"bos_token": spec.bos, "eos_token": spec.eos, "unk_token": spec.unk, "pad_token": spec.pad}
    return PreTrainedTokenizerFast(
        tokenizer_object=raw, model_max_length=256, **{k: v for k, v in specials.items() if v is not None}
    )


def tiny_config(family: Family, tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if family == "opt":
        # Like facebook/opt (50272 embedding rows for 50265 tokens) the embedding is a little
        # larger than the tokenizer, so code that equates the two is caught.
        return OPTConfig(
            vocab_size=len(tokenizer) + 8, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=256, word_embed_proj_dim=32,
            dropout=0.1, attention_dropout=0.1, activation_dropout=0.1, **ids,
        )  # fmt: skip
    if family == "bloom":
        return BloomConfig(
            vocab_size=len(tokenizer), hidden_size=32, n_layer=2, n_head=4,
            hidden_dropout=0.1, attention_dropout=0.1, **ids,
        )  # fmt: skip
    if family == "llama":
        return LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            tie_word_embeddings=False, attention_dropout=0.1, **ids,
        )  # fmt: skip
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


def make_tiny_model(
    directory: str | Path,
    family: Family = "opt",
    kind: Kind = "causal",
    vocab: int | None = None,
    *,
    corpus: list[str] | None = None,
    with_tokenizer: bool = True,
    seed: int = 0,
) -> Path:
    """Save a tiny `family` model (`kind` = causal LM or 1-label reward model) under `directory`.

    Returns the model directory `<directory>/<family>-<kind>[-<vocab>]`, which loads with plain
    `transformers.Auto*.from_pretrained`. `with_tokenizer=False` leaves the tokenizer out, as
    happens when only a checkpoint is copied.
    """
    tokenizer = make_tokenizer(family, vocab, corpus)
    config = tiny_config(family, tokenizer)
    name = f"{family}-{kind}" + (f"-{vocab}" if vocab else "") + ("-custom" if corpus else "")
    out = Path(directory) / name
    torch.manual_seed(seed)
    if kind == "causal":
        model = AutoModelForCausalLM.from_config(config)
    elif kind == "reward":
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        raise ValueError(f"unknown kind {kind!r}; expected 'causal' or 'reward'")
    model.save_pretrained(out)
    if with_tokenizer:
        tokenizer.save_pretrained(out)
    return out
