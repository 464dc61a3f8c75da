"""Reusing the frozen bottom blocks ("trunk") of a model whose top blocks alone are trained: the
actor's are the reference's (the critic's the reward model's, from one checkpoint), so their output
is computed once per experience and replayed by the other model and every PPO update (rm.py: in
the epochs after the first)."""

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from .models import decoder_blocks


def frozen_depth(model: nn.Module) -> int:
    """How many bottom blocks have no trainable parameter, 0 if anything below them (OPT's project_in) trains."""
    blocks = decoder_blocks(model)
    if blocks is None:
        return 0
    block_of = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
    embeddings = {id(p) for p in model.get_input_embeddings().parameters()}
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if any(id(p) in embeddings or "embed" in name or "project_in" in name for name, p in trained):
        return 0
    return min((block_of[id(p)] for _, p in trained if id(p) in block_of), default=len(blocks))


class _StandIn(nn.Module):
    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, *args, **kwargs):
        return self.output


@dataclass
class Recorded:
    """The top frozen block's output for (B, T) = `shape` tokens, filled by `capture` (maybe by parts)."""

    shape: tuple[int, int]
    hidden: torch.Tensor | None = None  # (B, T, hidden size), allocated by the first capture
    as_tuple: bool = False  # whether the block returns a tuple (older transformers blocks)


Index = torch.Tensor | slice  # which rows of the recording


@contextlib.contextmanager
def capture(model: nn.Module, depth: int, record: Recorded, rows: Index = slice(None), columns: slice = slice(None)):
    """Inside the block, forwards of `model` over `rows` x `columns` record block `depth - 1`'s output."""
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
def replay(model: nn.Module, depth: int, record: Recorded, rows: Index = slice(None), columns: slice = slice(None)):
    """Inside the block, forwards of `model` over `rows` x `columns` replay the recorded output (if any)
    in stand-ins for blocks 0..depth-1."""
    if depth == 0 or record.hidden is None:
        yield
        return
    hidden = record.hidden[rows][:, columns]
    stand_in = _StandIn((hidden,) if record.as_tuple else hidden)
    blocks = decoder_blocks(model)
    originals = list(blocks[:depth])
    for i in range(depth):
        blocks[i] = stand_in
    try:
        yield
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block
