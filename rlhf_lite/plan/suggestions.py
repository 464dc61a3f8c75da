"""What to change when a step does not fit: candidate settings, largest saving first."""

from __future__ import annotations

import dataclasses

from ..errors import RLHFLiteError
from .architectures import GB
from .counting import ModelSpec
from .steps import PLANNERS, Hardware, StepPlan


def _halve(n: int) -> int:
    return max(1, n // 2)


def _tuned(m: ModelSpec, rank: int = 0, **settings) -> ModelSpec:
    """`m` with LoRA of rank and alpha `rank` (0: as it is) and other ModelSettings changed."""
    if rank:
        from ..models import LoraSettings

        settings["lora"] = LoraSettings(rank, rank)
    return dataclasses.replace(m, settings=dataclasses.replace(m.settings, **settings))


def _candidates(step: str, s, hw: Hardware) -> list[tuple[str, object, Hardware]]:
    """(what to change, new settings, new hardware) for every single change that saves memory."""
    out = []
    rep = dataclasses.replace
    if hw.device == "cuda":
        if hw.num_gpus > 1 and hw.zero_stage < 3:
            for stage in range(max(hw.zero_stage + 1, 2), 4):
                out.append(
                    (
                        f"accelerate launch --config_file accelerate_configs/zero{stage}.yaml "
                        f"(ZeRO-{stage} over {hw.num_gpus} GPUs)",
                        s,
                        rep(hw, zero_stage=stage),
                    )
                )
        if hw.offload == "none" and hw.zero_stage < 3:
            out.append(
                (
                    "accelerate_configs/zero2_offload.yaml (ZeRO-2, optimizer states in host memory)",
                    s,
                    rep(hw, zero_stage=2, offload="optimizer"),
                )
            )
        if hw.zero_stage == 3 and hw.offload != "all":
            out.append(
                (
                    "accelerate_configs/zero3_offload.yaml (optimizer states and parameters in host memory)",
                    s,
                    rep(hw, offload="all"),
                )
            )
    if step in ("sft", "rm"):
        m = s.model
        if not m.lora:
            out.append(
                (
                    "use_lora: true, lora_r: 128 (train LoRA adapters only)",
                    rep(s, model=_tuned(m, rank=128)),
                    hw,
                )
            )
        if not m.checkpointing:
            out.append(("activation_checkpointing: true", rep(s, model=_tuned(m, gradient_checkpointing=True)), hw))
        if m.settings.quantization == "none" and hw.device == "cuda" and not (hw.deepspeed and hw.zero_stage == 3):
            out.append(
                (
                    "load_in_8bit: true" + ("" if m.lora else " with use_lora: true"),
                    rep(s, model=_tuned(m, rank=0 if m.lora else 128, load_in_8bit=True)),
                    hw,
                )
            )
        if s.batch > 1:
            out.append(
                (
                    f"per_device_train_batch_size: {_halve(s.batch)} (double gradient_accumulation_steps "
                    "to keep the effective batch)",
                    rep(s, batch=_halve(s.batch)),
                    hw,
                )
            )
        return out
    a, c, r = s.actor, s.critic, s.reward
    if not a.lora:
        out.append(
            (
                "actor_lora_dim: 128 (LoRA actor; the reference becomes the actor without its adapter, "
                "no second copy)",
                rep(s, actor=_tuned(a, rank=128)),
                hw,
            )
        )
    if not a.checkpointing:
        out.append(("actor_gradient_checkpointing: true", rep(s, actor=_tuned(a, gradient_checkpointing=True)), hw))
    if not c.checkpointing:
        out.append(("critic_gradient_checkpointing: true", rep(s, critic=_tuned(c, gradient_checkpointing=True)), hw))
    if not c.lora:
        out.append(("critic_lora_dim: 128 (LoRA critic)", rep(s, critic=_tuned(c, rank=128)), hw))
    if hw.device == "cuda" and not (hw.deepspeed and hw.zero_stage == 3):  # bitsandbytes + ZeRO-3: no
        if a.settings.quantization == "none":
            out.append(
                (
                    "actor_quantization: 8bit" + ("" if a.lora else " with actor_lora_dim: 128"),
                    rep(s, actor=_tuned(a, rank=0 if a.lora else 128, load_in_8bit=True)),
                    hw,
                )
            )
        if r.settings.quantization == "none":
            out.append(("reward_quantization: 8bit", rep(s, reward=_tuned(r, load_in_8bit=True)), hw))
    if s.ema:
        out.append(("enable_ema: false (no EMA copy of the actor's trained weights)", rep(s, ema=False), hw))
    if s.generation_batch > 1 or s.training_batch > 1:
        g, t = _halve(s.generation_batch), _halve(s.training_batch)
        out.append(
            (
                f"per_device_generation_batch_size: {g}, per_device_training_batch_size: {t}",
                rep(s, generation_batch=g, training_batch=t),
                hw,
            )
        )
    return out


def _options(current: StepPlan) -> list[tuple[int, str, StepPlan]]:
    """(saving, change, new plan) of every single change that lowers `current`'s peak, best first."""
    planner = PLANNERS[current.step]
    out = []
    for what, s, hw in _candidates(current.step, current.settings, current.hardware):
        try:
            new = planner(s, hw)
        except RLHFLiteError:
            continue
        if new.total < current.total:
            out.append((current.total - new.total, what, new))
    return sorted(out, key=lambda o: -o[0])


def suggest(plan: StepPlan, limit: int = 6) -> list[dict]:
    """Single changes that lower the peak, largest saving first; when none fits on its own, also
    the greedy combination (best change, then the best on top of it, ...) that does."""
    options = _options(plan)
    out = [
        {"change": what, "saves_gb": round(saving / GB, 2), "peak_gb": round(new.total / GB, 2), "fits": new.fits}
        for saving, what, new in options[:limit]
    ]
    if options and not any(new.fits for _, _, new in options):
        changes, current = [], plan
        while len(changes) < 6:
            better = _options(current)
            if not better:
                break
            _, what, current = better[0]
            changes.append(what)
            if current.fits:
                break
        if current.fits:
            out.append(
                {
                    "change": " + ".join(changes),
                    "saves_gb": round((plan.total - current.total) / GB, 2),
                    "peak_gb": round(current.total / GB, 2),
                    "fits": True,
                    "combined": True,
                }
            )
        else:
            plan.notes.append(
                f"no combination of these changes fits: the lowest peak found is "
                f"{current.total / GB:.2f} GB; more memory per GPU is needed"
            )
    return out
