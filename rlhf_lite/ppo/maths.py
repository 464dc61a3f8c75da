"""The PPO maths of DeepSpeed-Chat's step 3, as small pure functions.

Per-token tensors are (B, T) over the answer only; `mask` is 1.0 on real answer tokens (EOS
included, at least one per row). Masked positions may hold garbage: every function zeroes them.
"""

from collections.abc import Iterable

import torch
from torch import Tensor


def _clean(x: Tensor, mask: Tensor) -> Tensor:
    # `where`, not `x * mask`: garbage may be (or become, after exp) inf, and inf * 0 is NaN.
    return torch.where(mask.bool(), x, 0.0)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    return _clean(x, mask).sum(dim) / mask.sum(dim)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """(x - mean) / sqrt(var + 1e-8) over the masked entries; `shift_mean=False` adds the mean back."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)  # biased (divide by N), as DeepSpeed-Chat and TRL do
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    return _clean(whitened if shift_mean else whitened + mean, mask)


def token_logprobs(logits: Tensor, labels: Tensor) -> Tensor:
    """log softmax(logits)[label]: logits (B, T, V), labels (B, T) -> (B, T) float32."""
    # gather - logsumexp never holds a second (B, T, V) tensor, unlike log_softmax(...).gather.
    logits = logits.float()
    return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def kl_shaped_rewards(
    logprobs: Tensor, ref_logprobs: Tensor, scores: Tensor, mask: Tensor, kl_coef: float, clip_reward_value: float
) -> tuple[Tensor, Tensor]:
    """(rewards, kl): rewards = -kl_coef * kl, plus the clamped score on each row's last real token."""
    kl = _clean(logprobs - ref_logprobs, mask)
    # Clamping stops one outlier score from dominating the batch's advantages.
    score = scores.to(kl.dtype).clamp(-clip_reward_value, clip_reward_value)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), positions, 0).argmax(dim=1)  # each row's last real token
    return (-kl_coef * kl).scatter_add(1, last.unsqueeze(1), score.unsqueeze(1)), kl


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor) -> Tensor:
    """Per-token KL(actor || reference) as k3 = r - 1 - log r, r = p_ref / p_actor (Schulman,
    "Approximating KL divergence"): unbiased like log p_actor - log p_ref, but never negative."""
    log_ratio = _clean(ref_logprobs - logprobs, mask)
    return _clean(torch.expm1(log_ratio) - log_ratio, mask)


def gae_advantages(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation: (advantages, returns = advantages + values)."""
    # Zeroed padding makes delta and A zero there, so nothing past the answer flows backwards.
    rewards, values = _clean(rewards, mask).detach(), _clean(values, mask).detach()
    next_value = next_adv = torch.zeros_like(values[:, 0])
    advantages = torch.zeros_like(values)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = delta + gamma * lam * next_adv
        advantages[:, t] = next_adv
        next_value = values[:, t]
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


class FixedKLController:
    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
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


def make_kl_controller(kl_coef: float, target_kl: float | None, horizon: int) -> FixedKLController:
    return FixedKLController(kl_coef) if target_kl is None else AdaptiveKLController(kl_coef, target_kl, horizon)


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
        ema.mul_(beta).add_(param.detach().to(device=ema.device, dtype=ema.dtype), alpha=1.0 - beta)
