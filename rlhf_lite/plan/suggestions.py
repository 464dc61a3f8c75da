"""What to change when a step does not fit, largest saving first."""

from __future__ import annotations

from dataclasses import replace

from ..errors import RLHFLiteError
from .architectures import GB
from .steps import PLANNERS, Hardware, StepPlan


def _candidates(step: str, s, hw: Hardware) -> list[tuple[str, object, Hardware]]:
    """(what to change, new settings, new hardware) for every single change that saves memory."""
    out = []

    def add(what: str, settings=s, hardware=hw):
        out.append((what, settings, hardware))

    def tuned(role: str, rank: int = 0, **settings):
        """`s` with model `role` given LoRA of rank and alpha `rank` (0: as it is) and other ModelSettings."""
        if rank:
            from ..models import LoraSettings

            settings["lora"] = LoraSettings(rank, rank)
        m = getattr(s, role)
        return replace(s, **{role: replace(m, settings=replace(m.settings, **settings))})

    if hw.device == "cuda":
        if hw.num_gpus > 1 and hw.zero_stage < 3:
            for stage in range(max(hw.zero_stage + 1, 2), 4):
                launch = f"accelerate launch --config_file accelerate_configs/zero{stage}.yaml"
                add(f"{launch} (ZeRO-{stage} over {hw.num_gpus} GPUs)", hardware=replace(hw, zero_stage=stage))
        if hw.offload == "none" and hw.zero_stage < 3:
            what = "accelerate_configs/zero2_offload.yaml (ZeRO-2, optimizer states in host memory)"
            add(what, hardware=replace(hw, zero_stage=2, offload="optimizer"))
        if hw.zero_stage == 3 and hw.offload != "all":
            what = "accelerate_configs/zero3_offload.yaml (optimizer states and parameters in host memory)"
            add(what, hardware=replace(hw, offload="all"))
    bnb = hw.device == "cuda" and not hw.zero3  # bitsandbytes + ZeRO-3: no
    if step in ("sft", "rm"):
        m = s.model
        if not m.lora:
            add("use_lora: true, lora_r: 128 (train LoRA adapters only)", tuned("model", 128))
        if not m.checkpointing:
            add("activation_checkpointing: true", tuned("model", gradient_checkpointing=True))
        if m.settings.quantization == "none" and bnb:
            with_lora = "" if m.lora else " with use_lora: true"
            add("load_in_8bit: true" + with_lora, tuned("model", 0 if m.lora else 128, load_in_8bit=True))
        if s.batch > 1:
            b, keep = s.batch // 2, "double gradient_accumulation_steps to keep the effective batch"
            add(f"per_device_train_batch_size: {b} ({keep})", replace(s, batch=b))
        return out
    a, c, r = s.actor, s.critic, s.reward
    if not a.lora:
        why = "LoRA actor; the reference becomes the actor without its adapter, no second copy"
        add(f"actor_lora_dim: 128 ({why})", tuned("actor", 128))
    if not a.checkpointing:
        add("actor_gradient_checkpointing: true", tuned("actor", gradient_checkpointing=True))
    if not c.checkpointing:
        add("critic_gradient_checkpointing: true", tuned("critic", gradient_checkpointing=True))
    if not c.lora:
        add("critic_lora_dim: 128 (LoRA critic)", tuned("critic", 128))
    if bnb and a.settings.quantization == "none":
        with_lora = "" if a.lora else " with actor_lora_dim: 128"
        add("actor_quantization: 8bit" + with_lora, tuned("actor", 0 if a.lora else 128, load_in_8bit=True))
    if bnb and r.settings.quantization == "none":
        add("reward_quantization: 8bit", tuned("reward", load_in_8bit=True))
    if s.ema:
        add("enable_ema: false (no EMA copy of the actor's trained weights)", replace(s, ema=False))
    if s.generation_batch > 1 or s.training_batch > 1:
        g, t = (max(1, b // 2) for b in (s.generation_batch, s.training_batch))
        what = f"per_device_generation_batch_size: {g}, per_device_training_batch_size: {t}"
        add(what, replace(s, generation_batch=g, training_batch=t))
    return out


def _options(current: StepPlan) -> list[tuple[int, str, StepPlan]]:
    """(saving, change, new plan) of every single change that lowers `current`'s peak, best first."""
    out = []
    for what, s, hw in _candidates(current.step, current.settings, current.hardware):
        try:
            new = PLANNERS[current.step](s, hw)
        except RLHFLiteError:
            continue
        if new.total < current.total:
            out.append((current.total - new.total, what, new))
    return sorted(out, key=lambda o: -o[0])


def _row(change: str, saving: int, new: StepPlan, **more) -> dict:
    return dict(change=change, saves_gb=round(saving / GB, 2), peak_gb=round(new.total / GB, 2), fits=new.fits) | more


def suggest(plan: StepPlan) -> list[dict]:
    """Up to 6 single changes that lower the peak, largest saving first; when none fits on its own,
    also the greedy combination (best change, then the best on top of it, ...) that does."""
    options = _options(plan)
    out = [_row(what, saving, new) for saving, what, new in options[:6]]
    if not options or any(new.fits for _, _, new in options):
        return out
    changes, current = [], plan
    while len(changes) < 6 and not current.fits:
        better = _options(current)
        if not better:
            break
        _, what, current = better[0]
        changes.append(what)
    if current.fits:
        out.append(_row(" + ".join(changes), plan.total - current.total, current, combined=True))
    else:
        plan.notes.append(
            f"no combination of these changes fits: the lowest peak found is "
            f"{current.total / GB:.2f} GB; more memory per GPU is needed"
        )
    return out
