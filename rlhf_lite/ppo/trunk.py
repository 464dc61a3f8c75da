"""Reusing the frozen bottom blocks ("trunk") of a model whose top blocks alone are trained.

With `trainable_layers` (or LoRA on the top layers only) the actor's bottom blocks never change
and are the reference model's, and the critic's are the reward model's when both start from one
checkpoint. Their output for an experience is therefore computed once, in the actor's (critic's)
scoring pass, and replayed: the reference (reward) forward runs only the blocks above it, and so
do the PPO updates, every epoch. On the demo preset (8 of 30 blocks trained) this removes well
over half the block passes of scoring and training.

`capture` records the output of block `depth - 1` during a normal forward; `replay` runs a forward
in which blocks 0..depth-1 are replaced by stand-ins returning that recorded output, so the
model's own code (embeddings, masks, positions, the blocks above, the head) runs unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..models import decoder_blocks


def frozen_depth(model: nn.Module) -> int:
    """How many bottom blocks, and everything below them, have no trainable parameter: 0 when
    block 0 trains, or when something below the blocks (an embedding, OPT's project_in) does."""
    blocks = decoder_blocks(model)
    if blocks is None:
        return 0
    block_of = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
    embeddings = {id(p) for p in model.get_input_embeddings().parameters()}
    trained = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in embeddings or "embed" in name or "project_in" in name:
            return 0
        if id(p) in block_of:
            trained.append(block_of[id(p)])
    return min(trained, default=len(blocks))


class _Recorded(nn.Module):
    """Stands in for a bottom block: returns what the top frozen block returned (its input is ignored)."""

    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, *args, **kwargs):
        return self.output


@contextlib.contextmanager
def capture(model: nn.Module, depth: int) -> Iterator[dict]:
    """Yields a dict whose "hidden" is, after a forward of `model` inside the block, the output
    of its block `depth - 1` (None when depth is 0)."""
    out: dict = {"hidden": None}
    if depth == 0:
        yield out
        return

    def keep(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        out["hidden"], out["tuple"] = hidden.detach(), isinstance(output, tuple)

    hook = decoder_blocks(model)[depth - 1].register_forward_hook(keep)
    try:
        yield out
    finally:
        hook.remove()


@contextlib.contextmanager
def replay(model: nn.Module, depth: int, recorded: dict | None, rows: torch.Tensor | None = None) -> Iterator[None]:
    """Inside the block, forwards of `model` skip blocks 0..depth-1 and take `recorded` (from
    `capture`, optionally only its `rows`) as their output. No-op when depth is 0 or nothing was recorded."""
    if depth == 0 or recorded is None or recorded["hidden"] is None:
        yield
        return
    hidden = recorded["hidden"] if rows is None else recorded["hidden"][rows]
    stand_in = _Recorded((hidden,) if recorded["tuple"] else hidden)
    blocks = decoder_blocks(model)
    originals = [blocks[i] for i in range(depth)]
    for i in range(depth):
        blocks[i] = stand_in
    try:
        yield
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block
