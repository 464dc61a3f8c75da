"""Batches of token-id lists by length, padded here (not by the tokenizer, so results do not
depend on its `padding_side`) into tensors on either side."""

from collections.abc import Iterator

import torch

from .progress import Progress


def length_batches(
    ids: list[list[int]], size: int, desc: str, pad_id: int, side: str = "right", device=None
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """(positions into `ids`, input_ids, attention_mask on `device`), shortest first: similar lengths
    share a batch, which halves the padding of typical chat data. Callers put results back by position."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    starts = range(0, len(order), size)
    with Progress(len(starts), desc, disable=len(starts) < 2, leave=False) as bar:  # one batch: nothing to watch
        for start in starts:
            rows = order[start : start + size]
            input_ids, mask = pad_batch([ids[i] for i in rows], pad_id, side)
            yield rows, input_ids.to(device), mask.to(device)
            bar.update()


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
