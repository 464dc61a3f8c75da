"""Each step's peak memory per phase (generation, scoring, training, optimizer step) on given hardware."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .activations import inference_bytes, logits_peaks, training_activation_bytes
from .architectures import (
    CPU_RUNTIME_BYTES,
    CUDA_ALLOCATOR_MARGIN,
    CUDA_CONTEXT_BYTES,
    GB,
    TRL_TOKEN_CHUNK,
    TRL_VOCAB_CHUNK,
)
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

    @property
    def zero3(self) -> bool:
        return self.deepspeed and self.zero_stage == 3


@dataclass
class Trained:
    """Memory of the trained parameters of one process (all trained models of a step together)."""

    weights_delta: int = 0  # DeepSpeed turns trainable fp32 adapters into 16-bit weights (per GPU)
    gradients: int = 0
    optimizer: int = 0
    step_temp: int = 0
    host: int = 0  # offloaded to the host


def trained_memory(counts: list[ModelCount], hw: Hardware, d: int, fused: bool = False) -> Trained:
    """Gradients and optimizer states of `counts`' trainable parameters on `hw`; `fused`: torch's
    fused AdamW (the HF Trainer's default on a GPU), which needs no temporaries."""
    n_params = sum(m.trainable for m in counts)
    n_bytes = sum(m.trainable_bytes for m in counts)
    if not hw.deepspeed:
        # torch's AdamW keeps exp_avg and exp_avg_sq in each parameter's dtype. Its foreach path on
        # a GPU makes one temporary per dtype group, the groups one after another; on the CPU it
        # goes tensor by tensor.
        out = Trained(gradients=n_bytes, optimizer=2 * n_bytes)
        if hw.device == "cuda":
            out.step_temp = 0 if fused else max((m.largest_group_bytes for m in counts), default=0)
            if hw.num_gpus > 1:
                out.gradients += n_bytes  # DDP's gradient buckets (a second copy)
        else:
            out.step_temp = 2 * max((m.largest_trainable_bytes for m in counts), default=0)
        return out
    # DeepSpeed: trained weights and gradients in d bytes (these partitioned from ZeRO-2 on), an fp32
    # master copy and two fp32 Adam states (12 bytes per parameter) partitioned over the GPUs; at
    # the step each rank upcasts its gradient partition to fp32 (4 bytes / N).
    N = hw.num_gpus
    weights_delta = (n_params * d - n_bytes) // (N if hw.zero_stage == 3 else 1)
    out = Trained(weights_delta, n_params * d // (N if hw.zero_stage >= 2 else 1))
    states = 12 * n_params // N
    if hw.offload != "none":
        out.host = states + 4 * n_params // N
    else:
        out.optimizer = states
        out.step_temp = 4 * n_params // N
    return out


@dataclass(frozen=True)
class SFTSettings:  # also step 2's
    model: ModelSpec
    batch: int  # rm: pairs per device (chosen and rejected run as one batch of 2 x batch)
    seq_len: int
    autocast: bool = False  # bf16/fp16 mixed precision (TRL's bf16: true)
    fused_optimizer: bool = True  # the HF Trainer's adamw_torch_fused (not with lora_learning_rate)


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
        hw = self.hardware
        gb = lambda v: round(v / GB, 3)
        return {
            "step": self.step,
            "device": hw.device,
            "budget_gb": gb(hw.mem_bytes),
            "num_gpus": hw.num_gpus,
            "zero_stage": hw.zero_stage,
            "offload": hw.offload,
            "peak_gb": gb(self.total),
            "fits": self.fits,
            "headroom_gb": gb(hw.mem_bytes - self.total),
            "peak_phase": self.phase,
            "components_gb": {k: gb(v) for k, v in self.components.items()},
            "phases_gb": {k: gb(v) for k, v in self.phases.items()},
            "phase_components_gb": {p: {k: gb(v) for k, v in parts.items()} for p, parts in self.breakdown.items()},
            "host_offload_gb": gb(self.host_bytes),
            "models": self.models,
            "notes": self.notes,
            "suggestions": self.suggestions,
        }


def _weights_on_device(m: ModelCount, hw: Hardware) -> int:
    if hw.zero3:
        return 0 if hw.offload == "all" else m.weight_bytes // hw.num_gpus
    return m.weight_bytes


def _zero3_gather(counts: list[ModelCount], hw: Hardware) -> int:
    """ZeRO-3 gathers a block's weights before using it and prefetches the next one."""
    return 2 * 2 * max(m.largest_block_params for m in counts) if hw.zero3 else 0


def _model_row(role: str, m: ModelCount) -> dict:
    s, weights_gb = m.spec.settings, round(m.weight_bytes / GB, 3)
    row = dict(role=role, path=s.name_or_path, params=m.params, trainable=m.trainable, weights_gb=weights_gb)
    return row | dict(dtype=s.dtype, quant=s.quantization, lora_r=m.spec.lora.r if m.spec.lora else 0)


def _finish(plan: StepPlan, phases: dict, resident: dict, t: Trained, activations: int, logits: int) -> StepPlan:
    """`phases`, then training and the optimizer step, each with its runtime; the peak is the largest."""
    hw = plan.hardware
    plan.host_bytes = t.host
    if hw.device == "cpu" and any(row["quant"] != "none" for row in plan.models):
        plan.notes.append("8/4-bit loading needs bitsandbytes on a CUDA GPU")
    phases["training"] = resident | {"gradients": t.gradients, "activations": activations, "logits": logits}
    phases["optimizer step"] = resident | {"gradients": t.gradients, "optimizer": t.optimizer + t.step_temp}
    for parts in phases.values():
        cuda = CUDA_CONTEXT_BYTES + int(CUDA_ALLOCATOR_MARGIN * sum(parts.values()))
        parts["runtime"] = cuda if hw.device == "cuda" else CPU_RUNTIME_BYTES
    plan.breakdown = {name: {k: int(parts.get(k, 0)) for k in COMPONENTS} for name, parts in phases.items()}
    plan.phases = {name: sum(parts.values()) for name, parts in plan.breakdown.items()}
    plan.phase = max(plan.phases, key=plan.phases.get)
    plan.components = dict(plan.breakdown[plan.phase])
    return plan


def plan_sft(s: SFTSettings, hw: Hardware) -> StepPlan:
    """Step 1 (TRL SFTTrainer) or, with a reward model, step 2 (RewardTrainer)."""
    m, step = count_model(s.model), "rm" if s.model.reward else "sft"
    d = 2 if s.autocast and hw.device == "cuda" else m.compute_bytes
    B = s.batch * (2 if step == "rm" else 1)
    plan = StepPlan(step, hw, s, models=[_model_row("policy" if step == "sft" else "reward", m)])
    t = trained_memory([m], hw, d, fused=s.fused_optimizer)
    resident = {"weights": _weights_on_device(m, hw) + t.weights_delta, "optimizer": t.optimizer}
    act = training_activation_bytes(m, B, s.seq_len, d, s.autocast and hw.device == "cuda", hw.device)
    logits = 0
    if step == "sft":
        # TRL's chunked LM head: one tile of logits at a time (~3 fp32 copies of it on the CPU); its
        # backward accumulates the hidden state's (and a trained head's) gradient in fp32.
        N, V, out_dim = B * s.seq_len, m.shape.vocab, m.shape.out_dim
        tile = min(N, TRL_TOKEN_CHUNK) * min(V, TRL_VOCAB_CHUNK)
        head = V * out_dim * (4 + d) if m.head_trained else 0
        logits = tile * (d if hw.device == "cuda" else d + 12) + N * out_dim * (4 + d) + head
    return _finish(plan, {}, resident, t, act + _zero3_gather([m], hw), logits)


plan_rm = plan_sft


def plan_ppo(s: PPOSettings, hw: Hardware) -> StepPlan:
    """Step 3 with the project's engine: actor (+LoRA), reference, critic, reward model."""
    actor, critic, reward = count_model(s.actor), count_model(s.critic), count_model(s.reward)
    ref = None if s.actor.lora else count_model(replace(s.actor, trained=False))
    frozen = [x for x in (ref, reward) if x is not None]
    d = actor.compute_bytes
    Bg, Bt, P, A = s.generation_batch, s.training_batch, s.prompt_len, s.answer_len
    T, V = P + A, actor.shape.vocab
    rows = [("actor", actor), ("critic", critic), ("reference", ref), ("reward", reward)]
    plan = StepPlan("ppo", hw, s, models=[_model_row(role, m) for role, m in rows if m is not None])
    t = trained_memory([actor, critic], hw, d)
    weights = sum(_weights_on_device(x, hw) for x in [actor, critic, *frozen]) + t.weights_delta
    if s.ema:
        # PPOTrainer clones the actor's trained parameters (in their dtype: 16-bit under DeepSpeed).
        weights += actor.trainable * 2 if hw.deepspeed and d != 4 else actor.trainable_bytes
        if hw.zero3:
            plan.notes.append("enable_ema is refused under ZeRO-3 (the engine needs the actor's full weights)")
    resident = {"weights": weights, "optimizer": t.optimizer}
    gather = _zero3_gather([actor, critic, *frozen], hw)

    # Generation: the KV cache of every block and the prefill's temporaries. ZeRO-3 gathers the
    # whole actor for generate; otherwise fp32 LoRA layers use merged copies (engine.merged_lora).
    kv = 2 * actor.shape.layers * Bg * T * actor.shape.kv * d
    prefill = inference_bytes(actor, Bg, P, d) + 3 * Bg * V * 4
    gathered = actor.weight_bytes - _weights_on_device(actor, hw) if hw.zero3 else 0
    merged = 0 if hw.zero3 else actor.lora_base_bytes
    generation = {"weights": weights + gathered + merged, "kv_cache": kv, "activations": prefill}
    phases = {"generation": resident | generation}
    # Scoring: no-grad forwards of the four models, the actor's logits the largest part. A reused
    # actor / critic forward (PPOArguments.reuses_rollout_forward) is the first update's, so its
    # graph stays alive through the reference and reward forwards.
    forward_logits = logits_peaks(Bg, A + 1, A, V, d)[0]
    _, train_logits, kept_logits = logits_peaks(Bt, A + 1, A, V, d)
    experience = Bg * T * 8 * 3 + Bg * A * 4 * 8
    reused = set() if hw.zero3 else set(s.reuse)
    roles = {"actor": actor, "critic": critic}
    kept = sum(training_activation_bytes(roles[r], Bg, T, d, device=hw.device) for r in reused)
    no_grad = [roles[r] for r in roles if r not in reused] + frozen
    phases["scoring"] = resident | {
        "activations": kept + max(inference_bytes(x, Bg, T, d) for x in no_grad) + gather + experience,
        "logits": forward_logits + (kept_logits if "actor" in reused else 0),
    }
    # Training: one mini-batch through actor and critic, kept for their summed backward.
    act = sum(training_activation_bytes(x, Bt, T, d, device=hw.device) for x in (actor, critic))
    if s.ptx:  # the pretraining mix: a language-modelling loss on the actor's full (B, T, V) logits
        train_logits += Bt * T * V * (d + 8)
    plan = _finish(plan, phases, resident, t, act + gather + experience, train_logits)
    # GRPO and RLOO (TRL's trainers) keep the actor, its reference and the reward model but no critic.
    c = trained_memory([critic], hw, d)
    no_critic = _weights_on_device(critic, hw) + c.gradients + c.optimizer + c.weights_delta
    no_critic += training_activation_bytes(critic, Bt, T, d, device=hw.device)
    plan.notes.append(
        f"without a critic (GRPO, RLOO) the training peak would be about {no_critic / GB:.2f} GB lower: "
        "the critic's weights, gradients, optimizer states and activations"
    )
    if gathered and plan.phase == "generation":
        plan.notes.append(
            f"under ZeRO-3 generation gathers the whole actor on every GPU "
            f"(RLHFEngine.actor_for_generation): {actor.weight_bytes / GB:.1f} GB of weights at once"
        )
    return plan


PLANNERS = {"sft": plan_sft, "rm": plan_rm, "ppo": plan_ppo}
