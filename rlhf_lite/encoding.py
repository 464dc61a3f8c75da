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


def drop_long_prompts(tokenizer, rows: list[dict], max_length: int, label: str) -> list[dict]:
    lengths = _prompt_lengths(tokenizer, rows)
    kept = [r for r, n in zip(rows, lengths) if n < max_length]
    if not kept:
        raise ConfigError(f"max_length {max_length} is shorter than every {label} prompt "
                          f"(the shortest has {min(lengths)} tokens)")
    if len(kept) < len(rows):
        print(f"{label}: dropped {len(rows) - len(kept)} of {len(rows)} rows whose prompt alone "
              f"has >= {max_length} tokens", file=sys.stderr)
    return kept


def encode_pairs(tokenizer, rows: list[dict], max_length: int, label: str) -> list[dict]:
    """chosen_ids / rejected_ids of prompt + answer + EOS, truncated to max_length.

    Truncation keeps the prompt and the start of both answers (DeepSpeed-Chat's rule); pairs
    that become identical once truncated carry no preference and are dropped.
    """
    rows = drop_long_prompts(tokenizer, rows, max_length, label)
    eos = tokenizer.eos_token or ""
    enc = lambda key: tokenizer([r["prompt"] + r[key] + eos for r in rows], truncation=True,  # noqa: E731
                                max_length=max_length)["input_ids"]
    pairs = [{"chosen_ids": c, "rejected_ids": r} for c, r in zip(enc("chosen"), enc("rejected"))]
    kept = [p for p in pairs if p["chosen_ids"] != p["rejected_ids"]]
    truncated = sum(len(p["chosen_ids"]) == max_length or len(p["rejected_ids"]) == max_length
                    for p in pairs)
    if truncated or len(kept) < len(pairs):
        print(f"{label}: {truncated} pairs truncated to {max_length} tokens, "
              f"{len(pairs) - len(kept)} dropped as identical after truncation", file=sys.stderr)
    if not kept:
        raise ConfigError(f"max_length {max_length} leaves no {label} pair that differs")
    return kept
