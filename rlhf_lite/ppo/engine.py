"""The four models of PPO, their optimizer and scheduler, prepared by accelerate (+ DeepSpeed).

Roles, as in DeepSpeed-Chat's `DeepSpeedRLHFEngine`: the actor (trained; LoRA optional), the
reference (frozen; with LoRA it *is* the actor with its adapter switched off, so no second copy),
the critic (trained, initialised from the reward model) and the reward model (frozen).

Actor and critic live in one `ActorCritic` module with one optimizer whose parameter groups carry
their own learning rates and weight decays. accelerate drives a single DeepSpeed engine per
process, so two separately prepared models would share one backward/step path; one module keeps
DeepSpeed (ZeRO-1/2/3, offload) and plain PyTorch on the same, tested code path. Their losses
are summed before the backward pass, which gives each model exactly its own gradients.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs
from torch import nn
from transformers import get_scheduler

from ..errors import ConfigError
from ..host_memory import keep_freed_memory
from ..models import check_model_kind, check_same_vocab, load_causal_lm, load_reward_model, load_tokenizer, score_head
from ..optim import param_groups
from ..trunk import frozen_depth
from .config import PPOArguments


@contextlib.contextmanager
def merged_lora(model: nn.Module):
    """Inside the block, every LoRA-adapted linear of `model` computes with a merged copy of its
    weight, W + scale * B @ A, and its adapter off: one matrix product per linear instead of three,
    which on the demo's CPU takes a second off every 40-token generation. Copies, unlike PEFT's
    in-place merge and unmerge, leave the base weights (the reference model) bit for bit as they
    were. Only for fp32 weights: rounded to 16 bits, W + delta loses most of a small delta, and
    the answers would come from another policy than the one scored. A model with a 16-bit,
    quantised or DoRA layer keeps its adapters."""
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    # The adapter is switched off for the whole model: only when every LoRA layer can be merged.
    if not layers or not all(
        isinstance(m, LoraLinear)
        and type(m.get_base_layer()) is nn.Linear
        and m.get_base_layer().weight.dtype == torch.float32
        and not m.merged
        and not any(m.use_dora.get(a) for a in m.active_adapters)
        for m in layers
    ):
        yield
        return
    swapped = []
    try:
        with torch.no_grad():
            for m in layers:
                weight = m.get_base_layer().weight
                delta = sum(m.get_delta_weight(a) for a in m.active_adapters if a in m.lora_A)
                swapped.append((weight, weight.data))
                weight.data = weight.data + delta.to(weight.dtype)
        with model.disable_adapter():
            yield
    finally:
        for weight, original in swapped:
            weight.data = original


class ActorCritic(nn.Module):
    """The two trained models under one module (and so one DeepSpeed engine)."""

    def __init__(self, actor: nn.Module, critic: nn.Module):
        super().__init__()
        self.actor, self.critic = actor, critic
        self.config = actor.config  # accelerate sizes DeepSpeed's "auto" buckets from it

    def forward(self, role: str, **inputs) -> torch.Tensor:
        """role 'actor': next-token logits (B, T, V), or of the last `logits_to_keep` positions;
        'critic': a value per position (B, T)."""
        if role == "actor":
            return self.actor(**inputs, use_cache=False).logits
        # The head's per-position output, before the model pools the last token. The hook is
        # registered per call so that it runs after ZeRO-3's own forward hooks: those replace the
        # output by one whose backward gathers the head's partitioned weight first.
        values: dict = {}
        hook = score_head(self.critic).register_forward_hook(lambda m, i, out: values.update(v=out))
        try:
            self.critic(**inputs)
        finally:
            hook.remove()
        return values["v"].squeeze(-1)


def make_accelerator(**kwargs) -> Accelerator:
    """An Accelerator that also counts the processes of a DeepSpeed launch on a CPU-only machine.

    accelerate picks a process-group backend for DeepSpeed only when it sees a GPU-like
    device; without one, DeepSpeed still starts every process, but accelerate tells each that it
    is process 0 of 1 (so all would write the outputs, and DeepSpeed's batch-size check fails).
    """
    if (
        os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
        and "LOCAL_RANK" in os.environ
        and not (torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available())
    ):
        kwargs["kwargs_handlers"] = [*kwargs.get("kwargs_handlers", []), InitProcessGroupKwargs(backend="gloo")]
    return Accelerator(**kwargs)


class RLHFEngine:
    """Loads and prepares actor, reference, critic and reward model.

    `num_total_iters` is the number of optimizer steps the run will take (it sizes the
    learning-rate schedule and warmup)."""

    def __init__(
        self,
        actor_model_name_or_path: str,
        critic_model_name_or_path: str,
        tokenizer,
        num_total_iters: int,
        args: PPOArguments,
        accelerator: Accelerator | None = None,
    ):
        self.args, self.tokenizer = args, tokenizer
        args.actor_model_name_or_path = actor_model_name_or_path
        args.critic_model_name_or_path = critic_model_name_or_path
        args.reward_model_name_or_path = args.reward_model_name_or_path or critic_model_name_or_path
        self.accelerator = accelerator or make_accelerator()
        if self.accelerator.device.type == "cpu":
            keep_freed_memory()
        self._check_models()
        self._configure_deepspeed()

        actor = load_causal_lm(args.model_settings("actor"), tokenizer)
        critic = load_reward_model(args.model_settings("critic"), tokenizer)
        groups = param_groups(
            actor, args.actor_learning_rate, args.actor_lora_learning_rate, args.actor_weight_decay
        ) + param_groups(critic, args.critic_learning_rate, args.critic_lora_learning_rate, args.critic_weight_decay)
        # The fused kernel updates all tensors at once: ~10x faster steps on a CPU for a fully
        # trained 135M critic. DeepSpeed manages its own flattened partitions, so not under it.
        params = [p for g in groups for p in g["params"]]
        fused = self.accelerator.state.deepspeed_plugin is None and all(p.is_floating_point() for p in params)
        optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.95), fused=fused)
        warmup = args.num_warmup_steps
        warmup = math.ceil(warmup * num_total_iters) if 0 < warmup < 1 else int(warmup)
        scheduler = get_scheduler(
            args.lr_scheduler_type, optimizer, num_warmup_steps=warmup, num_training_steps=max(num_total_iters, 1)
        )
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            ActorCritic(actor, critic), optimizer, scheduler
        )
        # After prepare, which fills the DeepSpeed config's "auto" values: ZeRO-3 builds a
        # DeepSpeed engine for each frozen model too, and DeepSpeed rejects "auto".
        self.ref = (
            None
            if args.actor_lora_dim
            else self._frozen(
                load_causal_lm(
                    dataclasses.replace(args.model_settings("actor"), gradient_checkpointing=False), tokenizer
                )
            )
        )
        self.reward = self._frozen(load_reward_model(args.model_settings("reward"), tokenizer))
        self.trunk_depth = self._trunk_depths()
        self.reuse_rollout_forward = {
            role: args.reuses_rollout_forward(role, self.zero_stage) for role in ("actor", "critic")
        }

    # ---------------------------------------------------------------- views of the prepared module

    @property
    def zero_stage(self) -> int:
        """DeepSpeed's ZeRO stage; 0 without DeepSpeed."""
        plugin = self.accelerator.state.deepspeed_plugin
        return plugin.zero_stage if plugin is not None else 0

    @property
    def unwrapped(self) -> ActorCritic:
        return self.accelerator.unwrap_model(self.model)

    @property
    def actor(self) -> nn.Module:
        return self.unwrapped.actor

    @property
    def critic(self) -> nn.Module:
        return self.unwrapped.critic

    def reference_logits(self, **inputs) -> torch.Tensor:
        if self.ref is not None:
            return self.ref(**inputs, use_cache=False).logits
        with self.actor.disable_adapter():  # LoRA: the SFT model is the actor without its adapter
            return self.model("actor", **inputs)

    @property
    def reference(self) -> nn.Module:
        """The module the reference forward runs through (the actor itself under LoRA)."""
        return self.ref if self.ref is not None else self.actor

    def reward_scores(self, **inputs) -> torch.Tensor:
        return self.reward(**inputs).logits.squeeze(-1)

    @contextlib.contextmanager
    def actor_for_generation(self):
        """The actor, with every ZeRO-3 shard gathered for the whole generate call (one
        all-gather instead of one per layer per token, which is both slow and prone to hangs
        when ranks stop at different lengths). TRL's unwrap_model_for_generation does the same for
        a whole prepared module, which would gather the critic's shards too."""
        if self.zero_stage != 3:
            # (not under autocast, whose 16-bit copy of W + delta would lose the delta too)
            merge = self.accelerator.mixed_precision == "no" and self.args.speedup("merged_lora")
            with merged_lora(self.actor) if merge else contextlib.nullcontext():
                yield self.actor
            return
        import deepspeed
        from trl.models.utils import add_hooks, remove_hooks

        with deepspeed.zero.GatheredParameters(list(self.actor.parameters())):
            remove_hooks(self.model)
            try:
                yield self.actor
            finally:
                add_hooks(self.model)

    # ---------------------------------------------------------------- set-up

    def _check_models(self) -> None:
        a = self.args
        check_model_kind(a.actor_model_name_or_path, "causal_lm", a.trust_remote_code)
        for path in {
            a.critic_model_name_or_path,
            a.reward_model_name_or_path,
        }:  # the critic starts from the reward model
            check_model_kind(path, "reward_model", a.trust_remote_code)
            check_same_vocab(
                self.tokenizer,
                load_tokenizer(path, trust_remote_code=a.trust_remote_code),
                a.actor_model_name_or_path,
                path,
            )

    def _trunk_depths(self) -> dict[str, int]:
        """Frozen bottom blocks whose output each role can reuse (see trunk.py): the actor's for
        the actor and the reference, the critic's for the critic and, when it is the same
        checkpoint loaded the same way, the reward model."""
        a = self.args
        if self.zero_stage == 3 or not a.speedup("frozen_blocks"):  # (ZeRO-3 partitions the blocks)
            return {"actor": 0, "critic": 0, "reward": 0}
        # Dropout in the trunk would make a training pass differ from the recorded one.
        actor = frozen_depth(self.actor) if a.disable_actor_dropout else 0
        critic = frozen_depth(self.critic) if a.disable_critic_dropout else 0
        same_reward = (
            a.reward_model_name_or_path == a.critic_model_name_or_path
            and a.reward_quantization == a.critic_quantization
        )
        return {"actor": actor, "critic": critic, "reward": critic if same_reward else 0}

    def _frozen(self, model: nn.Module) -> nn.Module:
        model.requires_grad_(False)
        model.eval()
        if self.zero_stage == 3:
            from trl.models.utils import prepare_deepspeed  # partitions the frozen weights too

            return prepare_deepspeed(model, self.accelerator)
        if getattr(model, "is_quantized", False):
            return model  # bitsandbytes places quantised weights itself
        return model.to(self.accelerator.device)

    def _configure_deepspeed(self) -> None:
        plugin = self.accelerator.state.deepspeed_plugin
        if plugin is None:
            return
        # A hand-written loop has no dataloader for accelerate to read the micro-batch from.
        config = plugin.deepspeed_config
        config["train_micro_batch_size_per_gpu"] = self.args.per_device_training_batch_size
        config["gradient_accumulation_steps"] = 1
        config["train_batch_size"] = self.args.per_device_training_batch_size * self.accelerator.num_processes
        if plugin.is_auto("gradient_clipping"):
            config["gradient_clipping"] = self.args.max_grad_norm
        if self.args.enable_ema and plugin.zero_stage == 3:
            raise ConfigError("enable_ema needs the actor's full weights in each process: use ZeRO-1/2")
