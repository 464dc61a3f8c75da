"""PPO maths against values worked out by hand; padding positions hold garbage on purpose."""

import math

import pytest
import torch

from rlhf_lite.ppo.maths import (
    AdaptiveKLController,
    FixedKLController,
    ema_update,
    gae_advantages,
    kl_k3,
    kl_shaped_rewards,
    make_kl_controller,
    masked_mean,
    masked_whiten,
    policy_loss,
    token_logprobs,
    value_loss,
)

GARBAGE = 1e4  # exp(1e4) and 1e4 ** 4 overflow to inf: any leak from padding shows up


def close(got, want, tol=1e-5):
    return torch.allclose(
        torch.as_tensor(got, dtype=torch.float32), torch.tensor(want, dtype=torch.float32), atol=tol, rtol=tol
    )


# ---------------------------------------------------------------------------- masked_mean / whiten


def test_masked_mean_all_dims_and_per_row():
    x = torch.tensor([[1.0, 2.0, GARBAGE], [3.0, GARBAGE, GARBAGE]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert close(masked_mean(x, mask), (1 + 2 + 3) / 3)
    assert close(masked_mean(x, mask, dim=1), [(1 + 2) / 2, 3.0])
    # Even inf at padding is ignored (inf * 0 would be NaN).
    x[1, 2] = float("inf")
    assert close(masked_mean(x, mask), 2.0)


def test_masked_whiten_uses_only_real_tokens():
    x = torch.tensor([[1.0, 2.0, 3.0, GARBAGE], [4.0, 5.0, -GARBAGE, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    # Real entries 1..6: mean 3.5, biased var (2.5² + 1.5² + .5² + .5² + 1.5² + 2.5²) / 6.
    std = math.sqrt(17.5 / 6 + 1e-8)
    got = masked_whiten(x, mask)
    want = [
        [(1 - 3.5) / std, (2 - 3.5) / std, (3 - 3.5) / std, 0.0],
        [(4 - 3.5) / std, (5 - 3.5) / std, 0.0, (6 - 3.5) / std],
    ]
    assert close(got, want)
    real = got[mask.bool()]
    assert abs(real.mean().item()) < 1e-6
    assert abs(real.std(unbiased=False).item() - 1.0) < 1e-5


def test_masked_whiten_without_shift_keeps_the_mean():
    x = torch.tensor([[1.0, 2.0, 3.0, GARBAGE], [4.0, 5.0, -GARBAGE, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    got = masked_whiten(x, mask, shift_mean=False)
    std = math.sqrt(17.5 / 6 + 1e-8)
    assert close(got[0, 0], (1 - 3.5) / std + 3.5)
    assert close(got[mask.bool()].mean(), 3.5)
    assert close(got[mask.bool()].std(unbiased=False), 1.0)
    assert got[0, 3].item() == 0.0 and got[1, 2].item() == 0.0


# ---------------------------------------------------------------------------- token_logprobs


def test_token_logprobs_by_hand():
    # softmax([0, ln 3]) = [1/4, 3/4]
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])
    got = token_logprobs(logits, torch.tensor([[1, 0]]))
    assert close(got, [[math.log(0.75), math.log(0.25)]])


def test_token_logprobs_matches_log_softmax_gather_in_float32():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11) * 4
    labels = torch.randint(0, 11, (3, 5))
    want = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    assert close(token_logprobs(logits, labels), want.tolist())
    half = token_logprobs(logits.to(torch.bfloat16), labels)
    assert half.dtype == torch.float32 and half.shape == (3, 5)


# ---------------------------------------------------------------------------- kl_shaped_rewards


def test_kl_rewards_clamp_the_score_onto_each_rows_last_real_token():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -1.0, GARBAGE], [-1.0, GARBAGE, GARBAGE]])
    ref = torch.tensor([[-1.5, -1.0, -3.0], [-1.0, -1.0, -GARBAGE], [-2.0, -GARBAGE, GARBAGE]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    scores = torch.tensor([10.0, -10.0, 0.5])
    rewards, kl = kl_shaped_rewards(logprobs, ref, scores, mask, kl_coef=0.1, clip_reward_value=5.0)
    # kl = logprobs - ref on real tokens, 0 on padding.
    assert close(kl, [[0.5, -1.0, 0.0], [0.5, 0.0, 0.0], [1.0, 0.0, 0.0]])
    # -0.1 * kl, plus 10 -> +5 at t=2, -10 -> -5 at t=1, 0.5 (inside the clip) at t=0.
    assert close(rewards, [[-0.05, 0.1, 0.0 + 5.0], [-0.05, -0.0 - 5.0, 0.0], [-0.1 + 0.5, 0.0, 0.0]])


def test_kl_penalty_sign():
    # The policy is more confident than the reference: positive KL, so a negative reward.
    mask = torch.ones(1, 2)
    rewards, kl = kl_shaped_rewards(
        torch.tensor([[-0.1, -0.1]]),
        torch.tensor([[-0.6, -0.1]]),
        torch.zeros(1),
        mask,
        kl_coef=0.2,
        clip_reward_value=1.0,
    )
    assert kl[0, 0].item() > 0 and rewards[0, 0].item() < 0
    assert close(rewards, [[-0.2 * 0.5, 0.0]])


def test_kl_k3_is_never_negative_and_zero_at_padding():
    # p_actor 0.5 / p_ref 0.25 gives r = 0.5: k3 = 0.5 - 1 - ln 0.5 = 0.193147; r = 2: 1 - ln 2 = 0.306853,
    # where k1 = ln p_actor - ln p_ref would be +0.693 and -0.693.
    logp = torch.tensor([[math.log(0.5), math.log(0.25), GARBAGE]])
    ref = torch.tensor([[math.log(0.25), math.log(0.5), -GARBAGE]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert close(kl_k3(logp, ref, mask), [[0.193147, 0.306853, 0.0]])
    assert close(kl_k3(logp, logp, mask), [[0.0, 0.0, 0.0]])


# ---------------------------------------------------------------------------- gae_advantages


def test_gae_by_hand_with_a_padded_row():
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.5, GARBAGE]])
    values = torch.tensor([[0.5, 1.0, 1.5], [2.0, 1.0, GARBAGE]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = gae_advantages(rewards, values, mask, gamma, lam)
    # Row 0 (gamma * lam = 0.72):
    #   t=2: delta = 2 + 0 - 1.5 = 0.5                A2 = 0.5
    #   t=1: delta = 0 + 0.9 * 1.5 - 1.0 = 0.35       A1 = 0.35 + 0.72 * 0.5 = 0.71
    #   t=0: delta = 1 + 0.9 * 1.0 - 0.5 = 1.4        A0 = 1.4 + 0.72 * 0.71 = 1.9112
    # Row 1 ends at t=1, so its value after the end counts as 0:
    #   t=1: delta = 0.5 + 0 - 1.0 = -0.5             A1 = -0.5
    #   t=0: delta = 1 + 0.9 * 1.0 - 2.0 = -0.1       A0 = -0.1 + 0.72 * -0.5 = -0.46
    assert close(adv, [[1.9112, 0.71, 0.5], [-0.46, -0.5, 0.0]])
    assert close(ret, [[1.9112 + 0.5, 0.71 + 1.0, 0.5 + 1.5], [-0.46 + 2.0, -0.5 + 1.0, 0.0]])
    # The padded row gives the same numbers as the same row without its padding.
    adv_short, ret_short = gae_advantages(rewards[1:, :2], values[1:, :2], mask[1:, :2], gamma, lam)
    assert close(adv[1:, :2], adv_short.tolist()) and close(ret[1:, :2], ret_short.tolist())


def test_gae_without_discount_is_reward_to_go_minus_value():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, 0.25, 4.0]])
    adv, ret = gae_advantages(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert close(adv, [[6 - 0.5, 5 - 0.25, 3 - 4.0]])
    assert close(ret, [[6.0, 5.0, 3.0]])  # returns = advantages + values
    assert close(ret, (adv + values).tolist())


def test_gae_is_detached():
    values = torch.tensor([[0.5, 1.0]], requires_grad=True)
    adv, ret = gae_advantages(torch.ones(1, 2), values, torch.ones(1, 2), 1.0, 0.95)
    assert not adv.requires_grad and not ret.requires_grad


# ---------------------------------------------------------------------------- policy_loss


def test_policy_loss_clipping_for_both_advantage_signs():
    c = 0.2
    ratios = torch.tensor([[1.1, 1.5, 0.5], [1.5, 0.5, 1.0]])
    old = torch.tensor([[-1.0, -2.0, -1.5], [-0.7, -1.2, 0.0]])
    logprobs = (old + ratios.log()).clone()
    logprobs[1, 2] = GARBAGE  # padding: exp(GARBAGE) = inf must not leak
    logprobs.requires_grad_(True)
    adv = torch.tensor([[1.0, 1.0, -2.0], [-2.0, 1.0, GARBAGE]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    loss, stats = policy_loss(logprobs, old, adv, mask, c)
    # max(-A * r, -A * clamp(r, 0.8, 1.2)) per token:
    #   A=+1, r=1.1: max(-1.1, -1.1) = -1.1   inside the range, not clipped
    #   A=+1, r=1.5: max(-1.5, -1.2) = -1.2   clipped
    #   A=-2, r=0.5: max( 1.0,  1.6) =  1.6   clipped
    #   A=-2, r=1.5: max( 3.0,  2.4) =  3.0   not clipped (the pessimistic side is unclipped)
    #   A=+1, r=0.5: max(-0.5, -0.8) = -0.5   not clipped
    assert close(loss.item(), (-1.1 - 1.2 + 1.6 + 3.0 - 0.5) / 5)
    assert close(float(stats["clipfrac"]), 2 / 5)
    lr2 = [math.log(r) ** 2 for r in (1.1, 1.5, 0.5, 1.5, 0.5)]
    assert close(float(stats["approx_kl"]), 0.5 * sum(lr2) / 5)
    loss.backward()
    # d/dlogprob of -A * r is -A * r / 5 where unclipped; clipped tokens and padding get nothing.
    assert close(logprobs.grad, [[-1.1 / 5, 0.0, 0.0], [2 * 1.5 / 5, -0.5 / 5, 0.0]])


def test_policy_loss_at_ratio_one_is_minus_mean_advantage():
    lp = torch.tensor([[-1.0, -2.0]])
    loss, stats = policy_loss(lp, lp.clone(), torch.tensor([[2.0, -1.0]]), torch.ones(1, 2), 0.2)
    assert close(loss.item(), -(2.0 - 1.0) / 2)
    assert float(stats["clipfrac"]) == 0.0 and float(stats["approx_kl"]) == 0.0


# ---------------------------------------------------------------------------- value_loss


def test_value_loss_clipping():
    values = torch.tensor([[1.1, 1.5, 1.5, 0.5, GARBAGE]])
    old = torch.tensor([[1.0, 1.0, 1.0, 1.0, -GARBAGE]])
    returns = torch.tensor([[2.0, 2.0, 0.0, 2.0, GARBAGE]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    loss, stats = value_loss(values, old, returns, mask, cliprange_value=0.2)
    # v_clip = old + clamp(v - old, -0.2, 0.2) = [1.1, 1.2, 1.2, 0.8]
    #   (1.1-2)² = .81 vs .81  -> .81   not clipped (equal)
    #   (1.5-2)² = .25 vs .64  -> .64   clipped
    #   (1.5-0)² = 2.25 vs 1.44 -> 2.25
    #   (0.5-2)² = 2.25 vs 1.44 -> 2.25
    assert close(loss.item(), 0.5 * (0.81 + 0.64 + 2.25 + 2.25) / 4)
    assert close(float(stats["clipfrac"]), 1 / 4)


# ---------------------------------------------------------------------------- KL controllers


def test_adaptive_kl_controller_moves_towards_the_target():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(current_kl=9.0, n_steps=256)  # error 9/6 - 1 = 0.5, clipped to 0.2
    assert math.isclose(ctl.value, 0.1 * (1 + 0.2 * 256 / 10000), rel_tol=1e-12)
    ctl.update(current_kl=5.4, n_steps=1000)  # error 5.4/6 - 1 = -0.1
    assert math.isclose(ctl.value, 0.1 * 1.00512 * (1 - 0.1 * 1000 / 10000), rel_tol=1e-12)
    low = AdaptiveKLController(0.1, target=6.0, horizon=100)
    low.update(current_kl=0.0, n_steps=10)  # error -1, clipped to -0.2
    assert math.isclose(low.value, 0.1 * (1 - 0.2 * 10 / 100), rel_tol=1e-12)


def test_kl_controller_state_dict_round_trip():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(9.0, 256)
    fresh = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    fresh.load_state_dict(ctl.state_dict())
    assert fresh.value == ctl.value != 0.1
    fresh.update(3.0, 64)
    ctl.update(3.0, 64)
    assert fresh.value == ctl.value
    fixed = FixedKLController(0.05)
    fixed.load_state_dict({"value": 0.3})
    assert fixed.state_dict() == {"value": 0.3}


def test_fixed_controller_and_factory():
    fixed = make_kl_controller(0.05, None, 10000)
    assert type(fixed) is FixedKLController
    fixed.update(100.0, 1000)
    assert fixed.value == 0.05
    adaptive = make_kl_controller(0.05, 6.0, 10000)
    assert type(adaptive) is AdaptiveKLController and adaptive.value == 0.05
    assert (adaptive.target, adaptive.horizon) == (6.0, 10000)


# ---------------------------------------------------------------------------- ema_update


def test_ema_update_values():
    ema = [torch.tensor([1.0, 2.0]), torch.tensor([[0.0]])]
    params = [torch.nn.Parameter(torch.tensor([3.0, -2.0])), torch.nn.Parameter(torch.tensor([[10.0]]))]
    ema_update(ema, (p for p in params), beta=0.9)
    assert close(ema[0], [0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * -2])
    assert close(ema[1], [[0.1 * 10]])
    ema_update(ema, params, beta=0.0)  # beta 0 copies the parameters
    assert close(ema[0], [3.0, -2.0])
    ema_update(ema, [torch.zeros(2), torch.zeros(1, 1)], beta=1.0)  # beta 1 freezes the EMA
    assert close(ema[0], [3.0, -2.0])


def test_ema_update_errors_leave_the_ema_untouched():
    ema = [torch.tensor([1.0]), torch.tensor([2.0])]
    with pytest.raises(ValueError):
        ema_update(ema, [torch.tensor([5.0])], beta=0.5)
    assert close(ema[0], [1.0]) and close(ema[1], [2.0])
    for beta in (-0.1, 1.5):
        with pytest.raises(ValueError):
            ema_update(ema, [torch.tensor([5.0]), torch.tensor([5.0])], beta=beta)
    assert close(ema[0], [1.0])
