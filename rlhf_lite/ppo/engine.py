"""The four models of PPO (DeepSpeed-Chat's `DeepSpeedRLHFEngine`), prepared by accelerate. Actor
and critic are one `ActorCritic` module with one optimizer, as accelerate drives one DeepSpeed engine
per process; their summed losses give each model exactly its own gradients."""

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
from ..models import check_models, load_causal_lm, load_reward_model, score_head
from ..optim import param_groups
from ..trunk import frozen_depth
from .config import PPOArguments


@contextlib.contextmanager
def merged_lora(model: nn.Module):
    """Inside the block, every LoRA linear of `model` computes with a merged copy of its weight (one
    matrix product, not three), base weights untouched; only if all are plain fp32 linears without
    DoRA: in 16 bits W + delta loses a small delta."""
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
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
    def __init__(self, actor: nn.Module, critic: nn.Module):
        super().__init__()
        self.actor, self.critic = actor, critic
        self.config = actor.config  # accelerate sizes DeepSpeed's "auto" buckets from it

    def forward(self, role: str, **inputs) -> torch.Tensor:
        """'actor': next-token logits (B, T, V) (or of the last `logits_to_keep`); 'critic': values (B, T)."""
        if role == "actor":
            return self.actor(**inputs, use_cache=False).logits
        # The head's per-position output, before the model pools the last token; hooked per call
        # to run after ZeRO-3's hooks, whose output's backward gathers the head's weight first.
        values: dict = {}
        hook = score_head(self.critic).register_forward_hook(lambda m, i, out: values.update(v=out))
        try:
            self.critic(**inputs)
        finally:
            hook.remove()
        return values["v"].squeeze(-1)


def make_accelerator(**kwargs) -> Accelerator:
    """An Accelerator that counts a CPU-only DeepSpeed launch's processes (accelerate says 0 of 1)."""
    if (
        os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
        and "LOCAL_RANK" in os.environ
        and not (torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available())
    ):
        kwargs["kwargs_handlers"] = [*kwargs.get("kwargs_handlers", []), InitProcessGroupKwargs(backend="gloo")]
    return Accelerator(**kwargs)


class RLHFEngine:
    """Loads and prepares the four models; `num_total_iters` optimizer steps size the schedule."""

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
        self.accelerator = accelerator = accelerator or make_accelerator()
        if accelerator.device.type == "cpu":
            keep_freed_memory()
        rewards = {"critic": critic_model_name_or_path, "reward model": args.reward_path}  # the critic is one too
        check_models({"actor": actor_model_name_or_path}, rewards, trust_remote_code=args.trust_remote_code)
        plugin = accelerator.state.deepspeed_plugin
        self.zero_stage = plugin.zero_stage if plugin is not None else 0
        if plugin is not None:
            # A hand-written loop has no dataloader for accelerate to read the micro-batch from.
            config = plugin.deepspeed_config
            config["train_micro_batch_size_per_gpu"] = args.per_device_training_batch_size
            config["gradient_accumulation_steps"] = 1
            config["train_batch_size"] = args.per_device_training_batch_size * accelerator.num_processes
            if plugin.is_auto("gradient_clipping"):
                config["gradient_clipping"] = args.max_grad_norm
            if args.enable_ema and plugin.zero_stage == 3:
                raise ConfigError("enable_ema needs the actor's full weights in each process: use ZeRO-1/2")

        actor = load_causal_lm(args.model_settings("actor"), tokenizer)
        critic = load_reward_model(args.model_settings("critic"), tokenizer)
        groups = param_groups(
            actor, args.actor_learning_rate, args.actor_lora_learning_rate, args.actor_weight_decay
        ) + param_groups(critic, args.critic_learning_rate, args.critic_lora_learning_rate, args.critic_weight_decay)
        # Fused: ~10x faster steps on a CPU for a 135M critic. Not under DeepSpeed's own partitions.
        fused = plugin is None and all(p.is_floating_point() for g in groups for p in g["params"])
        optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.95), fused=fused)
        warmup = args.num_warmup_steps
        warmup = math.ceil(warmup * num_total_iters) if 0 < warmup < 1 else int(warmup)
        scheduler = get_scheduler(
            args.lr_scheduler_type, optimizer, num_warmup_steps=warmup, num_training_steps=max(num_total_iters, 1)
        )
        self.model, self.optimizer, self.scheduler = accelerator.prepare(
            ActorCritic(actor, critic), optimizer, scheduler
        )
        self.unwrapped: ActorCritic = accelerator.unwrap_model(self.model)
        self.actor, self.critic = self.unwrapped.actor, self.unwrapped.critic
        # After prepare fills the DeepSpeed config's "auto" values, which ZeRO-3's frozen engines reject.
        self.ref = None
        if not args.actor_lora_dim:
            ref_settings = dataclasses.replace(args.model_settings("actor"), gradient_checkpointing=False)
            self.ref = self._frozen(load_causal_lm(ref_settings, tokenizer))
        self.reference = self.ref if self.ref is not None else self.actor  # the reference forward's module
        self.reward = self._frozen(load_reward_model(args.model_settings("reward"), tokenizer))
        # Frozen bottom blocks each role replays (trunk.py); not under ZeRO-3 (which partitions the
        # blocks) or with dropout. The reward model shares the critic's when loaded the same way.
        self.trunk_depth = depth = {"actor": 0, "critic": 0, "reward": 0}
        if self.zero_stage != 3 and args.speedup("frozen_blocks"):
            depth["actor"] = frozen_depth(self.actor) if args.disable_actor_dropout else 0
            depth["critic"] = frozen_depth(self.critic) if args.disable_critic_dropout else 0
            if args.reward_path == critic_model_name_or_path and args.reward_quantization == args.critic_quantization:
                depth["reward"] = depth["critic"]
        self.reuse_rollout_forward = {r: args.reuses_rollout_forward(r, self.zero_stage) for r in ("actor", "critic")}

    def reference_logits(self, **inputs) -> torch.Tensor:
        if self.ref is not None:
            return self.ref(**inputs, use_cache=False).logits
        with self.actor.disable_adapter():  # LoRA: the SFT model is the actor without its adapter
            return self.model("actor", **inputs)

    def reward_scores(self, **inputs) -> torch.Tensor:
        return self.reward(**inputs).logits.squeeze(-1)

    @contextlib.contextmanager
    def actor_for_generation(self):
        """The actor, with every ZeRO-3 shard gathered for the whole generate call (not one all-gather
        per layer per token, slow and prone to hangs when ranks stop at different lengths). TRL's
        unwrap_model_for_generation would gather the whole prepared module: the critic's shards too."""
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

    def _frozen(self, model: nn.Module) -> nn.Module:
        model.requires_grad_(False)
        model.eval()
        if self.zero_stage == 3:
            from trl.models.utils import prepare_deepspeed  # partitions the frozen weights too

            return prepare_deepspeed(model, self.accelerator)
        if getattr(model, "is_quantized", False):
            return model  # bitsandbytes places quantised weights itself
        return model.to(self.accelerator.device)
