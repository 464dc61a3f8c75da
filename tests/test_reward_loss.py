"""DeepSpeed-Chat's divergence loss against hand-computed values."""

import math

import torch

from rlhf_lite.rm import divergence_loss


def nls(x):  # -log(sigmoid(x))
    return math.log1p(math.exp(-x))


def test_divergence_loss_spans_from_first_difference_to_longer_end():
    ids_c = torch.tensor([[5, 6, 7, 8], [5, 6, 7, 0]])
    ids_r = torch.tensor([[5, 6, 9, 0], [5, 6, 7, 0]])
    mask_c = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    mask_r = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]])
    values_c = torch.tensor([[9.0, 9.0, 1.0, 2.0], [9.0, 9.0, 0.5, 9.0]])
    values_r = torch.tensor([[-9.0, -9.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0]])
    # Row 1 diverges at position 2; the span runs to the end of the longer (chosen) sequence.
    row1 = (nls(1.0) + nls(2.0)) / 2
    # Row 2 is an identical pair: DeepSpeed-Chat scores its last real token only.
    row2 = nls(0.0)
    got = divergence_loss(values_c, values_r, ids_c, ids_r, mask_c, mask_r)
    assert math.isclose(got.item(), (row1 + row2) / 2, rel_tol=1e-6)
    assert math.isclose((row1 + row2) / 2, 0.456622, rel_tol=1e-5)


def test_divergence_loss_ignores_the_shared_prompt():
    ids = torch.tensor([[1, 2, 3, 4]])
    other = torch.tensor([[1, 2, 3, 5]])
    mask = torch.ones(1, 4, dtype=torch.long)
    base = divergence_loss(torch.tensor([[0.0, 0.0, 0.0, 1.0]]), torch.zeros(1, 4), ids, other, mask, mask)
    moved = divergence_loss(torch.tensor([[50.0, -50.0, 7.0, 1.0]]), torch.zeros(1, 4), ids, other, mask, mask)
    assert torch.allclose(base, moved) and math.isclose(base.item(), nls(1.0), rel_tol=1e-6)
