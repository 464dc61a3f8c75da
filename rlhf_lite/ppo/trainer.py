"""PPO with DeepSpeed-Chat's API: `generate_experience` scores answers, `train_rlhf` learns from them."""

import functools
import inspect
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
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
    def __init__(self, what: str, step: int):
        super().__init__(
            f"{what} is NaN or infinite at optimizer step {step}; the update was not applied. "
            "Lower the learning rates, raise clip_reward_value's strictness or check the reward model."
        )
        self.step = step


@dataclass
class Rows:
    """What forwards run on: row groups (padding.py), frozen-block outputs (trunk.py), experience rows."""

    seq: Tensor
    attention_mask: Tensor
    prompt_len: int
    groups: list[RowGroup]
    trunk: dict[str, Recorded]
    index: Tensor | None = None


def answer_mask(answers: Tensor, eos_id: int) -> Tensor:
    """1 on every generated token up to and including the first EOS, 0 after it."""
    is_eos = (answers == eos_id).int()
    return ((is_eos.cumsum(1) - is_eos) == 0).float()


def _accepts_position_ids(model) -> bool:
    model = getattr(model, "module", model)  # a DeepSpeed engine (frozen models under ZeRO-3)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "position_ids" in inspect.signature(base.forward).parameters


class PPOTrainer:
    def __init__(self, engine: RLHFEngine, args: PPOArguments):
        self.engine, self.args, self.tokenizer = engine, args, engine.tokenizer
        self.accelerator = engine.accelerator
        self.kl_ctl = make_kl_controller(args.init_kl_coef, args.target_kl, args.kl_horizon)
        self.ptx_batches = None  # an iterator of pretraining batches (data.ptx_batches) for ptx_coef
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
        self._positions = {role: _accepts_position_ids(getattr(engine, role)) for role in ("actor", "reward")}
        # The trained parameters of each model, for clipping, EMA and its swap (fixed after prepare).
        self.trained = {
            r: [p for p in getattr(engine, r).parameters() if p.requires_grad] for r in ("actor", "critic")
        }
        self.ema = [p.detach().clone() for p in self.trained["actor"]] if args.enable_ema else None
        # The reward model replays the critic's frozen blocks only if it reads the same inputs.
        self.trunk_depth = dict(engine.trunk_depth)
        if self._positions["reward"] != self._positions["actor"]:
            self.trunk_depth["reward"] = 0

    def _rows(self, seq, attention_mask, prompt_len: int, trunk: dict | None = None, index=None) -> Rows:
        """Rows to run forward passes on; without `trunk`, the first passes, which record it."""
        trunk = trunk or {"actor": Recorded(seq.shape), "critic": Recorded(seq.shape)}
        if not self.args.speedup("row_groups"):  # one group of every row and column
            groups = [RowGroup(torch.arange(len(seq), device=seq.device), 0, seq.shape[1])]
        else:
            # Under ZeRO-3 every forward gathers the weights with the other processes, so all of them
            # must run as many forwards: one group each (still without the padding its rows share).
            groups = row_groups(attention_mask, max_groups=1 if self.engine.zero_stage == 3 else MAX_GROUPS)
        return Rows(seq, attention_mask, prompt_len, groups, trunk, index)

    def _forward(self, role: str, rows: Rows, record: bool = False) -> Tensor:
        """Answer log-probabilities (actor, reference), values (critic) or scores (reward), group by group.
        `record` (the actor's and critic's scoring passes) captures the frozen blocks' output."""
        engine, model = self.engine, self.engine.model
        module = getattr(engine, role)
        depth = self.trunk_depth[{"reference": "actor"}.get(role, role)]
        trunk = rows.trunk[{"reference": "actor", "reward": "critic"}.get(role, role)]
        kind = "reward" if role == "reward" else "actor"  # whose inputs (position ids or not)

        def run(g: RowGroup) -> Tensor:
            columns, P = slice(g.start, g.stop), rows.prompt_len - g.start
            s, m = rows.seq[g.positions, columns], rows.attention_mask[g.positions, columns]
            inputs = {"input_ids": s, "attention_mask": m}
            if self._positions[kind]:
                inputs["position_ids"] = (m.long().cumsum(1) - 1).clamp(min=0)
            where = g.positions if rows.index is None else rows.index[g.positions]
            with (capture if record else replay)(module, depth, trunk, where, columns):
                if role == "reward":
                    return engine.reward_scores(**inputs).float()
                if role == "critic":
                    return model("critic", **inputs)[:, P - 1 : -1].float()
                # Logits only where they predict an answer token: the prompt's would be the costliest waste.
                forward = functools.partial(model, "actor") if role == "actor" else engine.reference_logits
                answer_len = s.shape[1] - P
                logits = forward(**inputs, logits_to_keep=answer_len + 1)
                # Of the distribution sampled from (as TRL does): raw logits would make every ratio off-policy.
                return token_logprobs(logits[:, -answer_len - 1 : -1] / self.args.temperature, s[:, P:])

        width = None if role == "reward" else rows.seq.shape[1] - rows.prompt_len
        if not (record and engine.reuse_rollout_forward[role]):
            return stitch(rows.groups, run, width)
        # Kept with its graph as the first update's forward (rollout_graphs): autograd on, and train
        # mode so that gradient checkpointing applies (without dropout both modes compute the same).
        with torch.enable_grad():
            model.train()
            out = stitch(rows.groups, run, width)
        model.eval()
        return out

    @torch.no_grad()
    def generate_experience(self, prompt_batch: dict) -> Experience | None:
        """Sample answers to left-padded prompts and score them; None when every answer was empty."""
        self.engine.model.eval()
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

        rows = self._rows(seq, attention_mask, P)
        logprobs = self._forward("actor", rows, record=True)
        ref_logprobs = self._forward("reference", rows)
        values = self._forward("critic", rows, record=True)
        # The outputs with their graphs: the first update's forward passes (see _update).
        graph = {"step": self.global_step} | {
            role: out for role, out in (("actor", logprobs), ("critic", values)) if out.requires_grad
        }
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
            logprobs=logprobs.detach(),
            ref_logprobs=ref_logprobs,
            values=values.detach(),
            scores=scores,
            has_eos=has_eos,
            n_empty=n_empty,
            time_generation=generated - start,
            time_scoring=time.perf_counter() - generated,
            trunk=rows.trunk,
            graph=graph,
        )

    def train_rlhf(self, exp: Experience | list[Experience]) -> tuple[float, float]:
        """`ppo_epochs` passes of PPO updates over one or more experiences; mean actor, critic loss."""
        start = time.perf_counter()
        a = self.args
        exps = [exp] if isinstance(exp, Experience) else list(exp)
        shaped = [self._advantages(e) for e in exps]
        self.engine.model.train()
        updates = []
        for _ in range(a.ppo_epochs):
            for e, (advantages, returns, _) in zip(exps, shaped):
                for idx in torch.randperm(len(e.mask), device=e.mask.device).split(a.per_device_training_batch_size):
                    updates.append(self._update(e, idx, advantages, returns))
        seq_kl = torch.cat([kl.sum(1) for _, _, kl in shaped]).mean().item()
        seq_k3 = torch.cat([kl_k3(e.logprobs, e.ref_logprobs, e.mask).sum(1) for e in exps]).mean().item()
        self.kl_ctl.update(seq_kl, sum(len(e.mask) for e in exps))
        mean = lambda dicts: {k: sum(d[k] for d in dicts) / len(dicts) for k in dicts[0]}
        per_exp = [self._experience_stats(e, adv, ret) for e, (adv, ret, _) in zip(exps, shaped)]
        self.stats = mean(updates) | mean(per_exp)
        self.stats |= {
            "kl/sequence": seq_kl,
            "kl/sequence_k3": seq_k3,
            "kl/coef": self.kl_ctl.value,
            "answer/empty_dropped": self.empty_dropped,
            "time/training": time.perf_counter() - start,
            "lr/actor": self.engine.scheduler.get_last_lr()[0],
        }
        self.empty_dropped = 0
        return self.stats["loss/actor"], self.stats["loss/critic"]

    def _advantages(self, exp: Experience) -> tuple[Tensor, Tensor, Tensor]:
        a, mask = self.args, exp.mask
        rewards, kl = kl_shaped_rewards(
            exp.logprobs, exp.ref_logprobs, exp.scores, mask, self.kl_ctl.value, a.clip_reward_value
        )
        advantages, returns = gae_advantages(rewards, exp.values, mask, a.gamma, a.lam)
        if a.whiten_advantages:
            advantages = masked_whiten(advantages, mask)
        return advantages, returns, kl

    @staticmethod
    def _experience_stats(exp: Experience, advantages: Tensor, returns: Tensor) -> dict:
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

    def _update(self, exp: Experience, idx: Tensor, advantages: Tensor, returns: Tensor) -> dict:
        a, model, mask = self.args, self.engine.model, exp.mask[idx]
        # The scoring forward is this update's own if no step came between and it holds every row.
        graph, exp.graph = exp.graph, {}  # used once at most: no graph outlives its update
        if graph.get("step") != self.global_step or len(idx) != len(exp.mask):
            graph = {}
        rows = self._rows(exp.seq[idx], exp.attention_mask[idx], exp.prompt_len, exp.trunk, idx)
        logprobs = graph["actor"][idx] if "actor" in graph else self._forward("actor", rows)
        actor_loss, actor_stats = policy_loss(logprobs, exp.logprobs[idx], advantages[idx], mask, a.cliprange)
        values = graph["critic"][idx] if "critic" in graph else self._forward("critic", rows)
        critic_loss, critic_stats = value_loss(values, exp.values[idx], returns[idx], mask, a.cliprange_value)
        loss, ptx_loss = actor_loss + critic_loss, None
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
        return stats | ({"loss/ptx": ptx_loss.item()} if ptx_loss is not None else {})

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


def total_updates(num_batches: int, args: PPOArguments) -> int:
    """Optimizer steps a run of `num_batches` generation batches takes: it sizes the schedule."""
    # Each experience splits into its own mini-batches (an upper bound once answers are dropped).
    per_batch = math.ceil(args.per_device_generation_batch_size / args.per_device_training_batch_size)
    return num_batches * per_batch * args.ppo_epochs
