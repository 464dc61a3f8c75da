"""Unified rows to token ids, with DeepSpeed-Chat's truncation and a count of what was cut."""

from __future__ import annotations

import sys

from .errors import ConfigError


def keep_short_prompts(items: list, lengths: list[int], limit: int, label: str, setting: str) -> list:
    """The items whose prompt has at most `limit` tokens; a `setting` ("max_length 512") leaving none is an error."""
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
    lengths = [len(ids) for ids in tokenizer([r["prompt"] for r in rows])["input_ids"]]
    return keep_short_prompts(rows, lengths, max_length - 1, label, f"max_length {max_length}")


def encode_pairs(tokenizer, rows: list[dict], max_length: int, label: str) -> list[dict]:
    """chosen_ids / rejected_ids of prompt + answer + EOS, truncated to max_length (keeping the
    prompt, as DeepSpeed-Chat does); pairs identical once truncated carry no preference and are dropped."""
    rows = drop_long_prompts(tokenizer, rows, max_length, label)
    eos = tokenizer.eos_token or ""
    chosen, rejected = (
        tokenizer([r["prompt"] + r[key] + eos for r in rows], truncation=True, max_length=max_length)["input_ids"]
        for key in ("chosen", "rejected")
    )
    kept = [{"chosen_ids": c, "rejected_ids": r} for c, r in zip(chosen, rejected) if c != r]
    truncated = sum(len(c) == max_length or len(r) == max_length for c, r in zip(chosen, rejected))
    if truncated or len(kept) < len(rows):
        print(
            f"{label}: {truncated} pairs truncated to {max_length} tokens, "
            f"{len(rows) - len(kept)} dropped as identical after truncation",
            file=sys.stderr,
        )
    if not kept:
        raise ConfigError(f"max_length {max_length} leaves no {label} pair that differs")
    return kept
