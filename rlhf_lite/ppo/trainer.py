"""PPO with DeepSpeed-Chat's API: `generate_experience` makes a batch of experience,
`train_rlhf` runs the PPO updates on it.

    engine = RLHFEngine(actor_path, critic_path, tokenizer, num_total_iters, args)
    trainer = PPOTrainer(engine, args)
    for prompt_batch in prompts:
        exp = trainer.generate_experience(prompt_batch)
        actor_loss, critic_loss = trainer.train_rlhf(exp)

An experience (experience.py) holds per-token tensors over the answer only; its `mask` marks the
real answer tokens, EOS included.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import GenerationConfig

from ..errors import RLHFLiteError
from ..trunk import Recorded, capture, replay
from .config import PPOArguments
from .engine import RLHFEngine
from .experience import Experience
from .maths import (
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
from .padding import MAX_GROUPS, RowGroup, row_groups, stitch


class NonFiniteError(RLHFLiteError):
    """A reward, a loss or the actor's sampling distribution became NaN/inf; the update was not applied."""

    def __init__(self, what: str, step: int):
        super().__init__(
            f"{what} is NaN or infinite at optimizer step {step}; the update was not applied. "
            "Lower the learning rates, raise clip_reward_value's strictness or check the "
            "reward model."
        )
        self.step = step


def answer_mask(answers: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 on every generated token up to and including the first EOS, 0 after it."""
    is_eos = (answers == eos_id).int()
    return ((is_eos.cumsum(1) - is_eos) == 0).float()


@dataclass
class Rows:
    """The sequences a forward pass runs on, with what the speed-ups need: the row groups that run
    without the padding they share (padding.py), the experience's frozen-block outputs (trunk.py;
    "actor" serves the reference too, "critic" the reward model) and which of the experience's
    rows these are (None: all of them)."""

    seq: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    groups: list[RowGroup]
    trunk: dict[str, Recorded]
    index: torch.Tensor | None = None


def _accepts_position_ids(model) -> bool:
    model = getattr(model, "module", model)  # a DeepSpeed engine (frozen models under ZeRO-3)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "position_ids" in inspect.signature(base.forward).parameters


class PPOTrainer:
    def __init__(self, engine: RLHFEngine, args: PPOArguments, ptx_batches: Iterator[dict] | None = None):
        self.engine, self.args, self.tokenizer = engine, args, engine.tokenizer
        self.accelerator = engine.accelerator
        self.kl_ctl = make_kl_controller(args.init_kl_coef, args.target_kl, args.kl_horizon)
        self.ptx_batches = ptx_batches
        self.global_step = 0  # optimizer steps
        self.empty_dropped = 0  # answers dropped as only EOS since the last train_rlhf
        self.eos_id = self.tokenizer.eos_token_id
        self.generation_config = GenerationConfig(
            max_new_tokens=args.max_answer_seq_len,
            min_new_tokens=args.min_new_tokens or None,
            use_cache=True,  # whatever the checkpoint says: trainers save it off for checkpointing
            do_sample=True,
            temperature=args.temperature,
            top_k=args.top_k,  # 0: none (None: transformers' 50)
            top_p=args.top_p,
            eos_token_id=self.eos_id,
            pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=self.tokenizer.bos_token_id,
        )
        # BLOOM derives positions from the mask itself; the others need them for left padding.
        self._positions = {
            "actor": _accepts_position_ids(engine.actor),
            "reward": _accepts_position_ids(engine.reward),
        }
        # The trained parameters of each model, for clipping, EMA and its swap (fixed after prepare).
        self.trained = {
            role: [p for p in getattr(engine, role).parameters() if p.requires_grad] for role in ("actor", "critic")
        }
        self.ema = [p.detach().clone() for p in self.trained["actor"]] if args.enable_ema else None
        # Reused frozen blocks (trunk.py); the reward model shares the critic's only if it reads
        # the same inputs (its family takes position ids exactly when the actor's does).
        self.trunk_depth = dict(engine.trunk_depth)
        if self._positions["reward"] != self._positions["actor"]:
            self.trunk_depth["reward"] = 0

    # ---------------------------------------------------------------- experience

    def _inputs(self, seq: torch.Tensor, attention_mask: torch.Tensor, role: str) -> dict:
        inputs = {"input_ids": seq, "attention_mask": attention_mask}
        if self._positions[role]:
            inputs["position_ids"] = (attention_mask.long().cumsum(1) - 1).clamp(min=0)
        return inputs

    def _rows(self, seq, attention_mask, prompt_len: int, trunk: dict | None = None, index=None) -> Rows:
        """Rows to run forward passes on; without `trunk`, the first passes over them, which record
        their frozen blocks' output."""
        trunk = trunk or {"actor": Recorded(seq.shape), "critic": Recorded(seq.shape)}
        if not self.args.speedup("row_groups"):  # one group of every row and column
            groups = [RowGroup(torch.arange(len(seq), device=seq.device), 0, seq.shape[1])]
        else:
            # Under ZeRO-3 every forward gathers the weights with the other processes, so all of
            # them must run as many: one group each (still without the padding its rows share).
            groups = row_groups(attention_mask, max_groups=1 if self.engine.zero_stage == 3 else MAX_GROUPS)
        return Rows(seq, attention_mask, prompt_len, groups, trunk, index)

    def _forward(self, role: str, rows: Rows, record: bool = False) -> torch.Tensor:
        """`role`'s output for every row: the answer tokens' log-probabilities under the actor or
        the reference, the critic's values at the positions that predict them (both (B, A)) or
        the reward model's scores (B,). Run group by group on the columns each group's tokens
        span; `record` captures the frozen blocks' output, otherwise it is replayed."""
        engine, model = self.engine, self.engine.model
        module = getattr(engine, role)
        depth = self.trunk_depth[{"reference": "actor"}.get(role, role)]
        trunk = rows.trunk[{"reference": "actor", "reward": "critic"}.get(role, role)]
        kind = "reward" if role == "reward" else "actor"  # whose inputs (position ids or not)

        def run(g: RowGroup) -> torch.Tensor:
            columns, P = slice(g.start, g.stop), rows.prompt_len - g.start
            s = rows.seq[g.positions, columns]
            inputs = self._inputs(s, rows.attention_mask[g.positions, columns], kind)
            where = g.positions if rows.index is None else rows.index[g.positions]
            with (capture if record else replay)(module, depth, trunk, where, columns):
                if role == "reward":
                    return engine.reward_scores(**inputs).float()
                if role == "critic":
                    return model("critic", **inputs)[:, P - 1 : -1].float()
                # Logits only where they predict an answer token (position t predicts t+1):
                # projecting every prompt position onto the whole vocabulary would be the
                # costliest waste of a pass.
                forward = functools.partial(model, "actor") if role == "actor" else engine.reference_logits
                answer_len = s.shape[1] - P
                logits = forward(**inputs, logits_to_keep=answer_len + 1)
                # Of the distribution the answers were sampled from (as TRL does): with
                # temperature != 1, raw logits would make every ratio and KL off-policy.
                return token_logprobs(logits[:, -answer_len - 1 : -1] / self.args.temperature, s[:, P:])

        return stitch(rows.groups, run, None if role == "reward" else rows.seq.shape[1] - rows.prompt_len)

    @torch.no_grad()
    def generate_experience(self, prompt_batch: dict) -> Experience | None:
        """Sample answers to left-padded prompts and score them with all four models.

        Returns None when every answer was empty (those rows are dropped and counted).
        """
        model = self.engine.model
        model.eval()
        prompts, prompt_mask = prompt_batch["input_ids"], prompt_batch["attention_mask"]
        start = time.perf_counter()
        with self.engine.actor_for_generation() as actor:
            try:
                seq = actor.generate(
                    input_ids=prompts, attention_mask=prompt_mask, generation_config=self.generation_config
                )
            except RuntimeError as err:  # torch.multinomial on NaN/inf: the last update diverged
                if "probability tensor" not in str(err):
                    raise
                raise NonFiniteError("the actor's next-token distribution", self.global_step) from err
        generated = time.perf_counter()
        P = prompts.shape[1]
        mask = answer_mask(seq[:, P:], self.eos_id)
        empty = seq[:, P] == self.eos_id  # an answer that is only EOS says nothing ...
        keep = ~empty if self.args.empty_answer_score is None else torch.ones_like(empty)
        n_empty = int((~keep).sum())
        self.empty_dropped += n_empty  # counted even when the whole batch goes
        if not keep.any():
            return None
        seq, mask, prompt_mask, empty = seq[keep], mask[keep], prompt_mask[keep], empty[keep]
        attention_mask = torch.cat([prompt_mask, mask.to(prompt_mask.dtype)], dim=1)

        # The actor's and critic's passes record their frozen blocks' output for the reference's
        # and reward model's (and the updates') to reuse (trunk.py).
        rows = self._rows(seq, attention_mask, P)
        with self._graph_kept("actor"):
            logprobs = self._forward("actor", rows, record=True)
        ref_logprobs = self._forward("reference", rows)
        with self._graph_kept("critic"):
            values = self._forward("critic", rows, record=True)
        # The outputs with their graphs: the first update's forward passes (see _update).
        graph = {"step": self.global_step} | {
            role: out for role, out in (("actor", logprobs), ("critic", values)) if out.requires_grad
        }
        logprobs, values = logprobs.detach(), values.detach()
        scores = self._forward("reward", rows)
        has_eos = (seq[:, P:] == self.eos_id).any(1)
        if self.args.no_eos_penalty:
            scores = scores - self.args.no_eos_penalty * (~has_eos).float()
        if self.args.empty_answer_score is not None:  # ... which a reward model may still like best
            scores = torch.where(empty.to(scores.device), self.args.empty_answer_score, scores)
        if not torch.isfinite(scores).all():
            raise NonFiniteError("the reward model's score", self.global_step)
        return Experience(
            seq=seq,
            attention_mask=attention_mask,
            prompt_len=P,
            mask=mask,
            logprobs=logprobs,
            ref_logprobs=ref_logprobs,
            values=values,
            scores=scores,
            has_eos=has_eos,
            n_empty=n_empty,
            time_generation=generated - start,
            time_scoring=time.perf_counter() - generated,
            trunk=rows.trunk,
            graph=graph,
        )

    @contextlib.contextmanager
    def _graph_kept(self, role: str):
        """Run `role`'s scoring forward as a training forward when it will serve as the first
        update's (engine.reuse_rollout_forward): with autograd on, in train mode (so gradient
        checkpointing applies; without dropout both modes compute the same)."""
        if not self.engine.reuse_rollout_forward[role]:
            yield
            return
        model = self.engine.model
        with torch.enable_grad():
            model.train()
            try:
                yield
            finally:
                model.eval()

    # ---------------------------------------------------------------- training

    def train_rlhf(self, exp: Experience | list[Experience]) -> tuple[float, float]:
        """`ppo_epochs` passes of clipped PPO updates, in mini-batches of
        per_device_training_batch_size, over one experience or a buffer of them (all made by the
        same policy). Returns the mean actor and critic losses; `self.stats` has the rest."""
        start = time.perf_counter()
        a = self.args
        exps = [exp] if isinstance(exp, Experience) else list(exp)
        shaped = [self._advantages(e) for e in exps]
        self.engine.model.train()
        history: dict[str, list[float]] = {}
        for _ in range(a.ppo_epochs):
            for e, (advantages, returns, _) in zip(exps, shaped):
                for idx in torch.randperm(len(e.mask), device=e.mask.device).split(a.per_device_training_batch_size):
                    for k, v in self._update(e, idx, advantages, returns).items():
                        history.setdefault(k, []).append(v)
        seq_kl = torch.cat([kl.sum(1) for _, _, kl in shaped]).mean().item()
        seq_k3 = torch.cat([kl_k3(e.logprobs, e.ref_logprobs, e.mask).sum(1) for e in exps]).mean().item()
        self.kl_ctl.update(seq_kl, sum(len(e.mask) for e in exps))
        self.stats = (
            {k: sum(v) / len(v) for k, v in history.items()}
            | _mean_stats([self._experience_stats(e, adv, ret) for e, (adv, ret, _) in zip(exps, shaped)])
            | {
                "kl/sequence": seq_kl,
                "kl/sequence_k3": seq_k3,
                "kl/coef": self.kl_ctl.value,
                "answer/empty_dropped": self.empty_dropped,
                "time/training": time.perf_counter() - start,
                "lr/actor": self.engine.scheduler.get_last_lr()[0],
            }
        )
        self.empty_dropped = 0
        return self.stats["loss/actor"], self.stats["loss/critic"]

    def _advantages(self, exp: Experience) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, mask = self.args, exp.mask
        rewards, kl = kl_shaped_rewards(
            exp.logprobs, exp.ref_logprobs, exp.scores, mask, self.kl_ctl.value, a.clip_reward_value
        )
        advantages, returns = gae_advantages(rewards, exp.values, mask, a.gamma, a.lam)
        if a.whiten_advantages:
            advantages = masked_whiten(advantages, mask)
        return advantages, returns, kl

    @staticmethod
    def _experience_stats(exp: Experience, advantages: torch.Tensor, returns: torch.Tensor) -> dict:
        mask = exp.mask
        adv_mean = masked_mean(advantages, mask)
        return {
            "reward/score": exp.scores.mean().item(),
            "values/mean": masked_mean(exp.values, mask).item(),
            "returns/mean": masked_mean(returns, mask).item(),
            "advantages/mean": adv_mean.item(),
            "advantages/std": masked_mean((advantages - adv_mean) ** 2, mask).sqrt().item(),
            "answer/length": mask.sum(1).mean().item(),
            "answer/eos_share": exp.has_eos.float().mean().item(),
            "time/generation": exp.time_generation,
            "time/scoring": exp.time_scoring,
        }

    def _update(self, exp: Experience, idx: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor) -> dict:
        a, model, mask = self.args, self.engine.model, exp.mask[idx]
        # The scoring forward is this update's own when no step has changed the weights since and
        # this mini-batch holds every row: then only the backward pass remains to be done.
        graph, exp.graph = exp.graph, {}  # used once at most: no graph outlives its update
        if graph.get("step") != self.global_step or len(idx) != len(exp):
            graph = {}
        rows = self._rows(exp.seq[idx], exp.attention_mask[idx], exp.prompt_len, exp.trunk, idx)
        logprobs = graph["actor"][idx] if "actor" in graph else self._forward("actor", rows)
        actor_loss, actor_stats = policy_loss(logprobs, exp.logprobs[idx], advantages[idx], mask, a.cliprange)
        values = graph["critic"][idx] if "critic" in graph else self._forward("critic", rows)
        critic_loss, critic_stats = value_loss(values, exp.values[idx], returns[idx], mask, a.cliprange_value)
        loss = actor_loss + critic_loss
        ptx_loss = None
        if self.ptx_batches is not None:
            batch = next(self.ptx_batches)
            logits = model("actor", input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            ptx_loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=-100
            )
            loss = loss + a.ptx_coef * ptx_loss
        if not torch.isfinite(loss):
            raise NonFiniteError("the PPO loss", self.global_step)
        self.accelerator.backward(loss)
        if a.max_grad_norm > 0:  # each model clipped on its own, as DeepSpeed-Chat's two engines do
            for params in self.trained.values():
                self.accelerator.clip_grad_norm_(params, a.max_grad_norm)
        self.engine.optimizer.step()
        self.engine.scheduler.step()
        self.engine.optimizer.zero_grad()
        if self.ema is not None:
            ema_update(self.ema, self.trained["actor"], a.ema_beta)
        self.global_step += 1
        stats = {
            "loss/actor": actor_loss.item(),
            "loss/critic": critic_loss.item(),
            "clipfrac/actor": float(actor_stats["clipfrac"]),
            "clipfrac/critic": float(critic_stats["clipfrac"]),
            "kl/approx_policy_change": float(actor_stats["approx_kl"]),
        }
        if ptx_loss is not None:
            stats["loss/ptx"] = ptx_loss.item()
        return stats

    # ---------------------------------------------------------------- state

    def state_dict(self) -> dict:
        return {"global_step": self.global_step, "kl_ctl": self.kl_ctl.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.global_step = state["global_step"]
        self.kl_ctl.load_state_dict(state["kl_ctl"])

    @torch.no_grad()
    def swap_ema(self) -> None:
        """Exchange the actor's trained weights with their EMA (call twice to swap back)."""
        for p, e in zip(self.trained["actor"], self.ema, strict=True):
            tmp = p.detach().clone()
            p.copy_(e)
            e.copy_(tmp)


def _mean_stats(dicts: list[dict]) -> dict:
    return {k: sum(d[k] for d in dicts) / len(dicts) for k in dicts[0]}


def total_updates(num_batches: int, args: PPOArguments) -> int:
    """Optimizer steps a run of `num_batches` generation batches takes: it sizes the schedule."""
    # train_rlhf splits each experience into its own mini-batches, and a last, partly filled
    # buffer is trained too: count per generation batch (an upper bound once answers are dropped).
    per_batch = math.ceil(args.per_device_generation_batch_size / args.per_device_training_batch_size)
    return num_batches * per_batch * args.ppo_epochs
