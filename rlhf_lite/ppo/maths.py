"""The PPO maths of DeepSpeed-Chat's step 3, as small pure functions.

Conventions: every per-token tensor is (B, T) and covers the ANSWER only (the generated tokens,
already sliced after the prompt). `mask` (B, T) is 1.0 on real answer tokens, EOS included, and
0.0 on the padding after the answer; each row has at least one real token. Masked positions may
hold garbage, so every function zeroes them before use and returns zeros there. The reward
model's score is a sequence-level number: it lands on each row's last real token, on top of the
per-token KL penalty against the frozen reference policy.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def _clean(x: Tensor, mask: Tensor) -> Tensor:
    # `where`, not `x * mask`: garbage may be (or become, after exp) inf, and inf * 0 is NaN.
    return torch.where(mask.bool(), x, 0.0)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` over the entries where `mask` is 1 (over all dims when `dim` is None)."""
    if dim is None:
        return _clean(x, mask).sum() / mask.sum()
    return _clean(x, mask).sum(dim) / mask.sum(dim)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """(x - mean) / sqrt(var + 1e-8) with statistics over the masked entries; zeros at padding.

    With `shift_mean=False` the mean is added back, so only the scale changes (what PPO wants for
    rewards, whose sign carries meaning).
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)  # biased (divide by N), as DeepSpeed-Chat and TRL do
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return _clean(whitened, mask)


def token_logprobs(logits: Tensor, labels: Tensor) -> Tensor:
    """log softmax(logits)[label]: logits (B, T, V), labels (B, T) -> (B, T) float32."""
    # gather - logsumexp never holds a second (B, T, V) tensor, unlike log_softmax(...).gather.
    logits = logits.float()
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def last_token_index(mask: Tensor) -> Tensor:
    """(B,) index of each row's last real token."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    # Positions are distinct, so the largest surviving one is the last real token (0 if only one).
    return torch.where(mask.bool(), positions, 0).argmax(dim=1)


def kl_shaped_rewards(
    logprobs: Tensor, ref_logprobs: Tensor, scores: Tensor, mask: Tensor, kl_coef: float, clip_reward_value: float
) -> tuple[Tensor, Tensor]:
    """(rewards, kl): rewards = -kl_coef * kl, plus the clamped score on each row's last token."""
    kl = _clean(logprobs - ref_logprobs, mask)
    rewards = -kl_coef * kl
    # Clamping stops one outlier score from dominating the batch's advantages.
    score = scores.to(rewards.dtype).clamp(-clip_reward_value, clip_reward_value)
    rewards = rewards.scatter_add(1, last_token_index(mask).unsqueeze(1), score.unsqueeze(1))
    return rewards, kl


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor) -> Tensor:
    """Per-token KL(actor || reference) estimated as k3 = r - 1 - log r with r = p_ref / p_actor
    (Schulman, "Approximating KL divergence"; TRL and OpenRLHF log it): unbiased for tokens sampled
    from the actor like k1 = log p_actor - log p_ref, but never negative, so a batch's figure
    cannot come out below zero. Zeros at padding."""
    log_ratio = _clean(ref_logprobs - logprobs, mask)
    return _clean(torch.expm1(log_ratio) - log_ratio, mask)


def gae_advantages(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016); returns (advantages, returns).

    delta_t = r_t + gamma * V_{t+1} * m_{t+1} - V_t and A_t = delta_t + gamma * lam * A_{t+1}, so
    the value after the answer ends counts as 0. Returns = A + V are the value-head targets.
    """
    # Zeroed padding makes delta and A zero there, so nothing past the answer flows backwards.
    rewards, values = _clean(rewards, mask).detach(), _clean(values, mask).detach()
    next_value = next_adv = torch.zeros_like(values[:, 0])
    advantages = torch.zeros_like(values)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = delta + gamma * lam * next_adv
        advantages[:, t] = next_adv
        next_value = values[:, t]  # V_t * m_t, since padding is zeroed
    return advantages, advantages + values


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, cliprange: float
) -> tuple[Tensor, dict]:
    """PPO's clipped surrogate loss; stats: clipfrac and approx_kl (0-dim detached tensors)."""
    log_ratio = _clean(logprobs - old_logprobs, mask)
    advantages = _clean(advantages, mask)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - cliprange, 1.0 + cliprange)
    # The max is the pessimistic bound: moving the ratio past the clip range earns nothing.
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(ratio.dtype), mask).detach()
    # 0.5 * log_ratio^2 estimates KL(old || new) with low variance (Schulman's "k2").
    approx_kl = masked_mean(0.5 * log_ratio.detach() ** 2, mask)
    return loss, {"clipfrac": clipfrac, "approx_kl": approx_kl}


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, cliprange_value: float
) -> tuple[Tensor, dict]:
    """Clipped value loss 0.5 * E[max((V - R)^2, (V_clip - R)^2)]; stats: clipfrac."""
    values, old_values, returns = (_clean(t, mask) for t in (values, old_values, returns))
    # Clipping around the rollout's values keeps the value head from jumping on one batch.
    v_clipped = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    unclipped = (values - returns) ** 2
    clipped = (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(values.dtype), mask).detach()
    return loss, {"clipfrac": clipfrac}


class _KLController:
    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class FixedKLController(_KLController):
    """A constant KL coefficient; `update` exists so the engine treats both controllers alike."""

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController(_KLController):
    """Ziegler et al. (2019): nudge the coefficient so the policy's KL tracks `target`."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        if target <= 0 or horizon <= 0:
            raise ValueError(f"target ({target}) and horizon ({horizon}) must be positive")
        super().__init__(init_kl_coef)
        self.target, self.horizon = float(target), int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        # The +/-20% clip bounds how far one noisy KL estimate can move the coefficient.
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def make_kl_controller(
    kl_coef: float, target_kl: float | None, horizon: int
) -> FixedKLController | AdaptiveKLController:
    """Adaptive when a target KL is given, fixed otherwise."""
    if target_kl is None:
        return FixedKLController(kl_coef)
    return AdaptiveKLController(kl_coef, target_kl, horizon)


@torch.no_grad()
def ema_update(ema_params: Iterable[Tensor], params: Iterable[Tensor], beta: float) -> None:
    """In place: ema = beta * ema + (1 - beta) * param (DeepSpeed-Chat's EMA actor)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    ema_params, params = list(ema_params), list(params)
    # Checked before touching anything, so a mismatch never leaves the EMA half-updated.
    if len(ema_params) != len(params):
        raise ValueError(f"{len(ema_params)} EMA tensors for {len(params)} parameters")
    for ema, param in zip(ema_params, params):
        param = param.detach().to(device=ema.device, dtype=ema.dtype)
        ema.mul_(beta).add_(param, alpha=1.0 - beta)
