"""Forwards over groups of rows that skip their shared padding (rlhf_lite/ppo/padding.py)."""

import itertools
import time

import pytest
import torch

from rlhf_lite.ppo import padding
from rlhf_lite.ppo.padding import RowGroup, row_groups, stitch
from tests.test_ppo_reuse import OFF, make_trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def left_padded(prompts: list[int], answers: list[int], P: int, A: int) -> torch.Tensor:
    mask = torch.zeros(len(prompts), P + A)
    for i, (p, a) in enumerate(zip(prompts, answers)):
        mask[i, P - p : P + a] = 1
    return mask


def as_sets(groups: list[RowGroup]) -> list[tuple]:
    return sorted((sorted(g.positions.tolist()), g.start, g.stop) for g in groups)


def test_equal_rows_make_one_group_without_the_padding_they_all_share():
    mask = left_padded([3, 3, 3], [2, 4, 1], P=6, A=5)
    assert as_sets(row_groups(mask)) == [([0, 1, 2], 3, 10)]  # prompt from column 3, longest answer to 9


def test_two_lengths_split_when_it_saves_enough_tokens():
    mask = left_padded([2, 10, 2, 10, 2, 10, 2, 10], [4] * 8, P=10, A=4)
    # one group: 8 x 14 = 112 tokens; two: 4 x 14 + 4 x 6 = 80, saving 29% (> 10% per extra group)
    assert as_sets(row_groups(mask)) == [([0, 2, 4, 6], 8, 14), ([1, 3, 5, 7], 0, 14)]
    # a saving under the per-group price is not worth a second pass
    assert len(row_groups(mask, min_saving=0.3)) == 1
    assert len(row_groups(mask, max_groups=1)) == 1


def test_groups_follow_the_cheapest_cut_and_cover_every_row_once():
    torch.manual_seed(0)
    prompts = torch.randint(1, 40, (64,)).tolist()
    answers = torch.randint(1, 30, (64,)).tolist()
    mask = left_padded(prompts, answers, P=40, A=30)
    groups = row_groups(mask, max_groups=4, min_saving=0.0)
    assert sorted(torch.cat([g.positions for g in groups]).tolist()) == list(range(64))
    assert len(groups) == 4
    for g in groups:  # each group's columns span exactly its rows' tokens
        rows = mask[g.positions]
        assert rows[:, : g.start].sum() == 0 and rows[:, g.stop :].sum() == 0
        assert rows[:, g.start].any() and rows[:, g.stop - 1].any()
    tokens = sum(len(g.positions) * (g.stop - g.start) for g in groups)
    assert len(row_groups(mask, max_groups=4, min_saving=1e9)) == 1  # a group's price dwarfs any saving
    assert mask.sum() < tokens < 0.8 * mask.numel()


def test_a_large_batch_is_grouped_quickly():
    mask = left_padded(torch.randint(1, 500, (512,)).tolist(), [8] * 512, P=500, A=8)
    start = time.perf_counter()
    groups = row_groups(mask)
    assert time.perf_counter() - start < 0.5 and 1 < len(groups) <= 4


def test_stitch_puts_rows_back_in_order_and_pads_short_answers():
    groups = [RowGroup(torch.tensor([2, 0]), 0, 5), RowGroup(torch.tensor([1]), 2, 4)]
    outputs = {0: torch.tensor([[20.0, 21, 22], [0, 1, 2]]), 1: torch.tensor([[10.0]])}
    out = stitch(groups, lambda g: outputs[len(g.positions) == 1], width=3)
    assert out.tolist() == [[0, 1, 2], [10, 0, 0], [20, 21, 22]]


@pytest.mark.parametrize(
    "settings",
    [{}, {"actor_trainable_layers": 1, "critic_trainable_layers": 1}, {"actor_lora_dim": 4, "ppo_epochs": 2}],
)
def test_grouped_forwards_give_the_numbers_of_one_padded_batch(tmp_path, monkeypatch, settings):
    def two_steps(groups_of) -> list:
        monkeypatch.setattr(padding, "row_groups", groups_of)
        monkeypatch.setattr("rlhf_lite.ppo.trainer.row_groups", groups_of)
        trainer, prompts = make_trainer(
            tmp_path, per_device_generation_batch_size=8, per_device_training_batch_size=4, **settings
        )
        trainer.engine.reuse_rollout_forward = OFF  # every update runs its own (grouped) forwards
        out = []
        for _, batch in itertools.islice(prompts.batches(), 2):
            exp = trainer.generate_experience(batch)
            out.append(
                ([getattr(exp, k) for k in ("logprobs", "ref_logprobs", "values", "scores")], trainer.train_rlhf(exp))
            )
        return out

    seen = []

    def many(mask, **_):  # as many groups as the rows allow
        groups = row_groups(mask, max_groups=8, min_saving=0.0)
        seen.append(len(groups))
        return groups

    grouped = two_steps(many)
    whole = two_steps(lambda mask, **_: [RowGroup(torch.arange(len(mask)), 0, mask.shape[1])])
    assert max(seen) >= 2  # the data has prompts of different lengths
    for (exp_a, losses_a), (exp_b, losses_b) in zip(grouped, whole, strict=True):
        for a, b in zip(exp_a, exp_b, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert losses_a == pytest.approx(losses_b, rel=1e-4, abs=1e-6)
