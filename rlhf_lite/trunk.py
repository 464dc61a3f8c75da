"""Reusing the frozen bottom blocks ("trunk") of a model whose top blocks alone are trained.

With `trainable_layers` (or LoRA on the top layers only) the actor's bottom blocks never change
and are the reference model's, and the critic's are the reward model's when both start from one
checkpoint. Their output for an experience is therefore computed once, in the actor's (critic's)
scoring pass, and replayed: the reference (reward) forward runs only the blocks above it, and so
do the PPO updates, every epoch. On the demo preset (8 of 30 blocks trained) this removes well
over half the block passes of scoring and training. Reward-model training (rm.py) records
each training sequence's in its first epoch and replays it in the later ones.

`capture` records the output of block `depth - 1` during a normal forward; `replay` runs a forward
in which blocks 0..depth-1 are replaced by stand-ins returning that recorded output, so the
model's own code (embeddings, masks, positions, the blocks above, the head) runs unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .models import decoder_blocks


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


class _StandIn(nn.Module):
    """Stands in for a bottom block: returns what the top frozen block returned (its input is ignored)."""

    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, *args, **kwargs):
        return self.output


class Recorded:
    """The output of a model's top frozen block for a batch of `shape` = (B, T) tokens, filled by
    `capture` over all of it or a group of rows and columns at a time (padding.row_groups)."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self.hidden: torch.Tensor | None = None  # (B, T, hidden size), allocated by the first capture
        self.as_tuple = False  # whether the block returns a tuple (older transformers blocks)


Rows = torch.Tensor | slice


@contextlib.contextmanager
def capture(
    model: nn.Module, depth: int, record: Recorded, rows: Rows = slice(None), columns: slice = slice(None)
) -> Iterator[None]:
    """Inside the block, a forward of `model` over `rows` x `columns` of the recorded batch writes
    the output of its block `depth - 1` there. No-op when depth is 0."""
    if depth == 0:
        yield
        return

    def keep(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if record.hidden is None:
            record.hidden = hidden.new_zeros(*record.shape, hidden.shape[-1])
            record.as_tuple = isinstance(output, tuple)
        record.hidden[rows, columns] = hidden.detach()

    hook = decoder_blocks(model)[depth - 1].register_forward_hook(keep)
    try:
        yield
    finally:
        hook.remove()


@contextlib.contextmanager
def replay(
    model: nn.Module, depth: int, record: Recorded | None, rows: Rows = slice(None), columns: slice = slice(None)
) -> Iterator[None]:
    """Inside the block, forwards of `model` (over `rows` x `columns` of the recorded batch) skip
    blocks 0..depth-1 and take the recorded output as theirs. No-op when depth is 0 or nothing
    was recorded."""
    if depth == 0 or record is None or record.hidden is None:
        yield
        return
    hidden = record.hidden[rows][:, columns]
    stand_in = _StandIn((hidden,) if record.as_tuple else hidden)
    blocks = decoder_blocks(model)
    originals = [blocks[i] for i in range(depth)]
    for i in range(depth):
        blocks[i] = stand_in
    try:
        yield
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block
