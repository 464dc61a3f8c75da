"""Batches of token-id lists: in order or by length, padded into tensors on either side.

Padding is done here, not by the tokenizer, so results do not depend on its `padding_side`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from .progress import Progress


def batches(items: Sequence, size: int, desc: str | None = None, progress: bool = True) -> Iterator[list]:
    """Consecutive chunks of `size` items, with a progress bar over the chunks."""
    if size < 1:
        raise ValueError(f"batch size must be positive, got {size}")
    starts = range(0, len(items), size)
    with Progress(len(starts), desc or "batches", disable=not progress or not starts, leave=False) as bar:
        for start in starts:
            yield list(items[start : start + size])
            bar.update()


def length_batches(
    ids: list[list[int]], size: int, desc: str | None = None, progress: bool = True
) -> Iterator[list[int]]:
    """Batches of positions into `ids`, shortest sequences first: similar lengths share a batch,
    which halves the padding of typical chat data. Callers put results back by position."""
    return batches(sorted(range(len(ids)), key=lambda i: len(ids[i])), size, desc, progress)


def pad_batch(ids: list[list[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of sequences padded with `pad_id` on `side` to the longest."""
    width = max(len(x) for x in ids)
    out = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        cols = slice(0, len(x)) if side == "right" else slice(width - len(x), width)
        out[i, cols] = torch.tensor(x, dtype=torch.long)
        mask[i, cols] = 1
    return out, mask
