"""Each step's peak memory per phase on given hardware (weights, gradients, optimizer, activations...)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .activations import inference_bytes, logits_peaks, sft_logits_bytes, training_activation_bytes
from .architectures import CPU_RUNTIME_BYTES, CUDA_ALLOCATOR_MARGIN, CUDA_CONTEXT_BYTES, GB
from .counting import ModelCount, ModelSpec, count_model


@dataclass(frozen=True)
class Hardware:
    device: str = "cuda"  # cuda: one GPU's memory; cpu: host memory of a CPU run
    mem_bytes: int = 24 * GB
    num_gpus: int = 1
    zero_stage: int = 0  # 0: plain PyTorch (DDP with several GPUs); 1-3: DeepSpeed ZeRO
    offload: str = "none"  # none, optimizer (zero2_offload), all (zero3_offload: + parameters)

    @property
    def deepspeed(self) -> bool:
        return self.device == "cuda" and self.zero_stage > 0


@dataclass
class Trained:
    """Memory of the trained parameters of one process (all trained models of a step together)."""

    weights_delta: int = 0  # DeepSpeed turns trainable fp32 adapters into 16-bit weights
    gradients: int = 0
    optimizer: int = 0
    step_temp: int = 0
    host: int = 0  # offloaded to the host


def trained_memory(counts: list[ModelCount], hw: Hardware, d: int, fused: bool = False) -> Trained:
    """Gradients and optimizer states of `counts`' trainable parameters on `hw`. `fused`: the
    optimizer is torch's fused AdamW (the HF Trainer's default on a GPU), which needs no
    temporaries."""
    n_params = sum(m.trainable for m in counts)
    n_bytes = sum(m.trainable_bytes for m in counts)
    out = Trained()
    if not hw.deepspeed:
        # torch.optim.AdamW: exp_avg and exp_avg_sq like each parameter (so bf16 for bf16
        # weights); gradients like the parameter. Its foreach path on a GPU makes one temporary
        # per dtype group (sqrt of exp_avg_sq); on the CPU it goes tensor by tensor.
        out.gradients = n_bytes
        out.optimizer = 2 * n_bytes
        if hw.device == "cuda":
            # one temporary per parameter group and dtype, and the groups run one after another
            out.step_temp = 0 if fused else max((b for m in counts for _, b in m.trainable_groups), default=0)
            if hw.num_gpus > 1:
                out.gradients += n_bytes  # DDP's gradient buckets (a second copy)
        else:
            out.step_temp = 2 * max((m.largest_trainable_bytes for m in counts), default=0)
        return out
    # DeepSpeed with bf16/fp16: trained weights in 16 bits, an fp32 master copy and two fp32
    # Adam states (12 bytes per parameter) partitioned over the GPUs from ZeRO-1 on; gradients
    # in 16 bits, partitioned from ZeRO-2 on; at the step each rank upcasts its gradient
    # partition to fp32 (4 bytes / N).
    N = hw.num_gpus
    half = 2 if d != 4 else 4
    out.weights_delta = n_params * half - n_bytes
    out.gradients = n_params * half // (N if hw.zero_stage >= 2 else 1)
    states = 12 * n_params // N
    if hw.offload in ("optimizer", "all"):
        out.host = states + 4 * n_params // N
    else:
        out.optimizer = states
        out.step_temp = 4 * n_params // N
    return out


@dataclass(frozen=True)
class SFTSettings:
    model: ModelSpec
    batch: int
    seq_len: int
    autocast: bool = False  # bf16/fp16 mixed precision (TRL's bf16: true)
    fused_optimizer: bool = True  # the HF Trainer's adamw_torch_fused (not with lora_learning_rate)


@dataclass(frozen=True)
class RMSettings:
    model: ModelSpec
    batch: int  # pairs per device: chosen and rejected run as one batch of 2 x batch
    seq_len: int
    autocast: bool = False
    fused_optimizer: bool = True


@dataclass(frozen=True)
class PPOSettings:
    actor: ModelSpec
    critic: ModelSpec
    reward: ModelSpec
    generation_batch: int
    training_batch: int
    prompt_len: int
    answer_len: int
    ema: bool = False
    ptx: bool = False
    reuse: tuple[str, ...] = ()  # roles whose scoring forward is the first update's (not under ZeRO-3)


COMPONENTS = ("weights", "gradients", "optimizer", "activations", "kv_cache", "logits", "runtime")


@dataclass
class StepPlan:
    step: str
    hardware: Hardware
    settings: object
    phase: str = ""  # the phase where the peak is
    components: dict = field(default_factory=dict)  # bytes at the peak, by COMPONENTS
    phases: dict = field(default_factory=dict)  # total bytes of every phase
    breakdown: dict = field(default_factory=dict)  # phase -> bytes by COMPONENTS
    host_bytes: int = 0  # offloaded to the host (GPU runs with offload)
    models: list = field(default_factory=list)  # per model: role, params, trainable, weights
    notes: list = field(default_factory=list)
    suggestions: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.components.values())

    @property
    def fits(self) -> bool:
        return self.total <= self.hardware.mem_bytes

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "device": self.hardware.device,
            "budget_gb": round(self.hardware.mem_bytes / GB, 3),
            "num_gpus": self.hardware.num_gpus,
            "zero_stage": self.hardware.zero_stage,
            "offload": self.hardware.offload,
            "peak_gb": round(self.total / GB, 3),
            "fits": self.fits,
            "headroom_gb": round((self.hardware.mem_bytes - self.total) / GB, 3),
            "peak_phase": self.phase,
            "components_gb": {k: round(v / GB, 3) for k, v in self.components.items()},
            "phases_gb": {k: round(v / GB, 3) for k, v in self.phases.items()},
            "phase_components_gb": {
                p: {k: round(v / GB, 3) for k, v in parts.items()} for p, parts in self.breakdown.items()
            },
            "host_offload_gb": round(self.host_bytes / GB, 3),
            "models": self.models,
            "notes": self.notes,
            "suggestions": self.suggestions,
        }


def _runtime(hw: Hardware) -> int:
    return CUDA_CONTEXT_BYTES if hw.device == "cuda" else CPU_RUNTIME_BYTES


def _weights_on_device(m: ModelCount, hw: Hardware) -> int:
    if hw.deepspeed and hw.zero_stage == 3:
        return 0 if hw.offload == "all" else m.weight_bytes // hw.num_gpus
    return m.weight_bytes


def _zero3_gather(counts: list[ModelCount], hw: Hardware) -> int:
    """ZeRO-3 gathers a block's weights before using it and prefetches the next one."""
    if not (hw.deepspeed and hw.zero_stage == 3):
        return 0
    return 2 * 2 * max(m.largest_block_params for m in counts)


def _model_row(role: str, m: ModelCount) -> dict:
    return {
        "role": role,
        "path": m.spec.settings.name_or_path,
        "params": m.params,
        "trainable": m.trainable,
        "weights_gb": round(m.weight_bytes / GB, 3),
        "dtype": m.spec.settings.dtype,
        "quant": m.spec.settings.quantization,
        "lora_r": m.spec.lora.r if m.spec.lora else 0,
    }


def _finish(plan: StepPlan, phases: dict[str, dict[str, int]], hw: Hardware) -> StepPlan:
    for parts in phases.values():
        tensors = sum(parts.values())
        parts["runtime"] = _runtime(hw) + (int(CUDA_ALLOCATOR_MARGIN * tensors) if hw.device == "cuda" else 0)
    plan.breakdown = {name: {k: int(parts.get(k, 0)) for k in COMPONENTS} for name, parts in phases.items()}
    plan.phases = {name: sum(parts.values()) for name, parts in plan.breakdown.items()}
    plan.phase = max(plan.phases, key=plan.phases.get)
    plan.components = dict(plan.breakdown[plan.phase])
    return plan


def plan_sft(s: SFTSettings, hw: Hardware, step: str = "sft") -> StepPlan:
    """Step 1 (TRL SFTTrainer) or, with a reward model, step 2 (RewardTrainer; see plan_rm)."""
    m = count_model(s.model)
    d = 2 if s.autocast and hw.device == "cuda" else m.compute_bytes
    B = s.batch * (2 if step == "rm" else 1)
    plan = StepPlan(step, hw, s, models=[_model_row("policy" if step == "sft" else "reward", m)])
    t = trained_memory([m], hw, d, fused=s.fused_optimizer)
    plan.host_bytes = t.host
    weights = _weights_on_device(m, hw) + t.weights_delta // (
        hw.num_gpus if hw.deepspeed and hw.zero_stage == 3 else 1
    )
    resident = {"weights": weights, "optimizer": t.optimizer}
    act = training_activation_bytes(m, B, s.seq_len, d, s.autocast and hw.device == "cuda", hw.device) + _zero3_gather(
        [m], hw
    )
    logits = 0 if step == "rm" else sft_logits_bytes(m, B, s.seq_len, d, hw.device)
    phases = {
        "training": resident | {"gradients": t.gradients, "activations": act, "logits": logits},
        "optimizer step": resident | {"gradients": t.gradients, "optimizer": t.optimizer + t.step_temp},
    }
    if s.model.settings.quantization != "none" and hw.device == "cpu":
        plan.notes.append("8/4-bit loading needs bitsandbytes on a CUDA GPU")
    return _finish(plan, phases, hw)


def plan_rm(s: RMSettings, hw: Hardware) -> StepPlan:
    return plan_sft(s, hw, step="rm")


def plan_ppo(s: PPOSettings, hw: Hardware) -> StepPlan:
    """Step 3 with the project's engine: actor (+LoRA), reference, critic, reward model."""
    actor, critic, reward = count_model(s.actor), count_model(s.critic), count_model(s.reward)
    ref = None if s.actor.lora else count_model(dataclasses.replace(s.actor, trained=False))
    frozen = [x for x in (ref, reward) if x is not None]
    d = actor.compute_bytes
    Bg, Bt, P, A = s.generation_batch, s.training_batch, s.prompt_len, s.answer_len
    T = P + A
    plan = StepPlan(
        "ppo",
        hw,
        s,
        models=[_model_row("actor", actor), _model_row("critic", critic)]
        + ([_model_row("reference", ref)] if ref else [])
        + [_model_row("reward", reward)],
    )
    t = trained_memory([actor, critic], hw, d)
    plan.host_bytes = t.host
    weights = sum(_weights_on_device(x, hw) for x in [actor, critic, *frozen])
    weights += t.weights_delta // (hw.num_gpus if hw.deepspeed and hw.zero_stage == 3 else 1)
    ema = 0
    if s.ema:
        # PPOTrainer clones the actor's trained parameters (in their dtype: 16-bit under DeepSpeed).
        ema = actor.trainable * 2 if hw.deepspeed and d != 4 else actor.trainable_bytes
        if hw.deepspeed and hw.zero_stage == 3:
            plan.notes.append("enable_ema is refused under ZeRO-3 (the engine needs the actor's full weights)")
    resident = {"weights": weights + ema, "optimizer": t.optimizer}
    gather = _zero3_gather([actor, critic, *frozen], hw)

    # Generation: the KV cache of every block for B x (P + A) tokens, the prefill's temporaries;
    # ZeRO-3 gathers the whole actor for the generate call; otherwise fp32 LoRA layers compute
    # with merged copies of their weights (engine.merged_lora; not under autocast).
    kv = 2 * actor.shape.layers * Bg * T * actor.shape.kv * d
    prefill = inference_bytes(actor, Bg, P, d) + 3 * Bg * actor.shape.vocab * 4
    zero3 = hw.deepspeed and hw.zero_stage == 3
    gathered = actor.weight_bytes - _weights_on_device(actor, hw) if zero3 else 0
    merged = 0 if zero3 else actor.lora_base_bytes
    phases = {
        "generation": resident
        | {"weights": resident["weights"] + gathered + merged, "kv_cache": kv, "activations": prefill}
    }
    # Scoring: forwards of actor, reference, critic and reward model over B x T tokens; the
    # actor's (and reference's) logits are the largest part. A reused actor / critic forward
    # (PPOArguments.reuses_rollout_forward) is the first update's, so its graph stays alive
    # through the reference and reward forwards.
    fwd_logits = logits_peaks(Bg, A + 1, A, actor.shape.vocab, d).forward
    train_logits = logits_peaks(Bt, A + 1, A, actor.shape.vocab, d)
    experience = Bg * T * 8 * 3 + Bg * A * 4 * 8
    reused = set() if zero3 else set(s.reuse)
    roles = {"actor": actor, "critic": critic}
    kept = sum(training_activation_bytes(roles[r], Bg, T, d, device=hw.device) for r in reused)
    no_grad = [roles[r] for r in roles if r not in reused] + frozen
    scoring_act = max(inference_bytes(x, Bg, T, d) for x in no_grad) + gather
    phases["scoring"] = resident | {
        "activations": kept + scoring_act + experience,
        "logits": fwd_logits + (train_logits.kept if "actor" in reused else 0),
    }
    # Training: one mini-batch through actor and critic, kept for their summed backward.
    act = (
        training_activation_bytes(actor, Bt, T, d, device=hw.device)
        + training_activation_bytes(critic, Bt, T, d, device=hw.device)
        + gather
        + experience
    )
    train_logits = train_logits.training
    if s.ptx:
        # The pretraining mix: a language-modelling loss on the actor's full (B, T, V) logits.
        train_logits += Bt * T * actor.shape.vocab * (d + 8)
    phases["training"] = resident | {"gradients": t.gradients, "activations": act, "logits": train_logits}
    phases["optimizer step"] = resident | {"gradients": t.gradients, "optimizer": t.optimizer + t.step_temp}
    if any(x.settings.quantization != "none" for x in (s.actor, s.critic, s.reward)) and hw.device == "cpu":
        plan.notes.append("8/4-bit loading needs bitsandbytes on a CUDA GPU")
    plan = _finish(plan, phases, hw)
    if gathered and plan.phase == "generation":
        plan.notes.append(
            f"under ZeRO-3 generation gathers the whole actor on every GPU "
            f"(RLHFEngine.actor_for_generation): {actor.weight_bytes / GB:.1f} GB of weights at once"
        )
    return plan


PLANNERS = {"sft": plan_sft, "rm": plan_rm, "ppo": plan_ppo}
