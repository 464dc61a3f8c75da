"""Unified rows to token ids, with DeepSpeed-Chat's truncation and a count of what was cut.

Prompts that alone fill `max_length` leave no answer to learn from: they are dropped and
counted; if that is every prompt, the max length is a configuration error, said before any
model is loaded.
"""

from __future__ import annotations

import sys

from .errors import ConfigError


def _prompt_lengths(tokenizer, rows: list[dict]) -> list[int]:
    return [len(ids) for ids in tokenizer([r["prompt"] for r in rows])["input_ids"]]


def keep_short_prompts(items: list, lengths: list[int], limit: int, label: str, setting: str) -> list:
    """The items whose prompt has at most `limit` tokens; the others are dropped and counted on
    stderr, and a `setting` (e.g. "max_length 512") that leaves none is a ConfigError."""
    kept = [x for x, n in zip(items, lengths) if n <= limit]
    if items and not kept:
        raise ConfigError(f"{setting} is shorter than every {label} prompt (the shortest has {min(lengths)} tokens)")
    if len(kept) < len(items):
        print(
            f"{label} prompts: dropped {len(items) - len(kept)} of {len(items)} rows whose prompt "
            f"has more than {limit} tokens ({setting})",
            file=sys.stderr,
        )
    return kept


def drop_long_prompts(tokenizer, rows: list[dict], max_length: int, label: str) -> list[dict]:
    """Rows whose prompt leaves room for at least one answer token within max_length."""
    return keep_short_prompts(
        rows, _prompt_lengths(tokenizer, rows), max_length - 1, label, f"max_length {max_length}"
    )


def encode_pairs(tokenizer, rows: list[dict], max_length: int, label: str) -> list[dict]:
    """chosen_ids / rejected_ids of prompt + answer + EOS, truncated to max_length.

    Truncation keeps the prompt and the start of both answers (DeepSpeed-Chat's rule); pairs
    that become identical once truncated carry no preference and are dropped.
    """
    rows = drop_long_prompts(tokenizer, rows, max_length, label)
    eos = tokenizer.eos_token or ""
    enc = lambda key: tokenizer(
        [r["prompt"] + r[key] + eos for r in rows],
        truncation=True,  # noqa: E731
        max_length=max_length,
    )["input_ids"]
    pairs = [{"chosen_ids": c, "rejected_ids": r} for c, r in zip(enc("chosen"), enc("rejected"))]
    kept = [p for p in pairs if p["chosen_ids"] != p["rejected_ids"]]
    truncated = sum(len(p["chosen_ids"]) == max_length or len(p["rejected_ids"]) == max_length for p in pairs)
    if truncated or len(kept) < len(pairs):
        print(
            f"{label}: {truncated} pairs truncated to {max_length} tokens, "
            f"{len(pairs) - len(kept)} dropped as identical after truncation",
            file=sys.stderr,
        )
    if not kept:
        raise ConfigError(f"max_length {max_length} leaves no {label} pair that differs")
    return kept
