"""A preset's step configs and hardware, read as the planner's settings (YAML keys, as the steps parse them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ConfigError
from ..presets import preset_file, read_yaml
from .architectures import GB, STEPS
from .counting import ModelSpec, quiet
from .steps import PLANNERS, Hardware, PPOSettings, SFTSettings, StepPlan
from .suggestions import suggest

# accelerate config -> (ZeRO stage, offload)
_LAUNCH = {
    "zero1": (1, "none"),
    "zero2": (2, "none"),
    "zero2_offload": (2, "optimizer"),
    "zero3": (3, "none"),
    "zero3_offload": (3, "all"),
    "multi_gpu": (0, "none"),
    "single_gpu": (0, "none"),
    "multi_node": (3, "none"),
}


def preset_hardware(name: str) -> dict:
    """The hardware.yaml of a preset (gpu_mem_gb, num_gpus, accelerate_config) in _hardware's keys."""
    path = preset_file(name, "hardware")
    raw = read_yaml(path)
    unknown = set(raw) - {"gpu_mem_gb", "num_gpus", "accelerate_config"}
    if unknown or raw.get("accelerate_config", "single_gpu") not in _LAUNCH:
        raise ConfigError(
            f"{path}: unknown key(s) {sorted(unknown)} or accelerate_config; "
            f"accelerate_config is one of {', '.join(_LAUNCH)}"
        )
    out = {k: raw[k] for k in ("gpu_mem_gb", "num_gpus") if k in raw}
    if "accelerate_config" in raw:
        out["zero_stage"], out["offload"] = _LAUNCH[raw["accelerate_config"]]
    return out


@dataclass
class Preset:
    settings: dict  # step -> SFTSettings / PPOSettings
    hardware: dict  # preset_hardware


def load_preset(name: str, overrides: dict[str, list[str]] | None = None, steps: tuple[str, ...] = STEPS) -> Preset:
    """Parse a preset's YAML files with the recipes' own dataclasses (plus command-line style
    `overrides` per step) into the planner's settings."""
    hardware = preset_hardware(name)
    from ..args import ModelArguments, RMArguments, SFTArguments, parse

    parsed, settings, ppo = {}, {}, None
    for step in [s for s in STEPS if s in steps or (s != "ppo" and "ppo" in steps)]:
        path = preset_file(name, step)
        if not path.is_file():
            raise ConfigError(f"preset '{name}' has no {step}.yaml")
        extra = (overrides or {}).get(step, [])
        argv = ["--config", str(path), *extra]
        with quiet():
            if step == "ppo":
                from ..ppo.config import PPOArguments

                (ppo,) = parse([PPOArguments], "ppo", argv)
                continue
            from trl import RewardConfig, SFTConfig

            # Parsing with the YAML's bf16/fp16 (autocast) on fails on a CPU machine: read them here.
            argv += ["--bf16", "false", "--fp16", "false"]
            script, config = (SFTArguments, SFTConfig) if step == "sft" else (RMArguments, RewardConfig)
            _, model_args, training = parse([script, ModelArguments, config], step, argv)
        raw = read_yaml(path) | {k[2:]: v for k, v in zip(extra[::2], extra[1::2])}
        autocast = any(str(raw.get(k, False)).lower() in ("1", "true", "yes") for k in ("bf16", "fp16"))
        parsed[step] = (model_args, training)
        model = model_args.settings(bool(training.activation_checkpointing))
        if getattr(training, "disable_dropout", False):  # TRL's RewardConfig turns the model's dropout off
            model = replace(model, dropout=0.0)
        optim = str(getattr(training.optim, "value", training.optim))
        fused = model_args.lora_learning_rate is None and "fused" in optim
        batch, seq_len = training.per_device_train_batch_size, training.max_length or 1024
        settings[step] = SFTSettings(ModelSpec(model, reward=step == "rm"), batch, seq_len, autocast, fused)

    if ppo is not None:
        for role, step in (("actor", "sft"), ("critic", "rm")):
            if not getattr(ppo, f"{role}_model_name_or_path"):
                # What step 1/2 wrote, if it ran; otherwise the model it starts from (same architecture).
                model_args, training = parsed[step]
                out = Path(training.output_dir)
                path = str(out) if (out / "config.json").is_file() else model_args.model_name_or_path
                setattr(ppo, f"{role}_model_name_or_path", path)
        settings["ppo"] = PPOSettings(
            actor=ModelSpec(ppo.model_settings("actor")),
            critic=ModelSpec(ppo.model_settings("critic"), reward=True),
            reward=ModelSpec(ppo.model_settings("reward"), reward=True, trained=False),
            generation_batch=ppo.per_device_generation_batch_size,
            training_batch=ppo.per_device_training_batch_size,
            prompt_len=ppo.max_prompt_seq_len,
            answer_len=ppo.max_answer_seq_len,
            ema=ppo.enable_ema,
            ptx=bool(ppo.ptx_datasets),
            reuse=tuple(r for r in ("actor", "critic") if ppo.reuses_rollout_forward(r)),
        )
    return Preset({s: settings[s] for s in steps}, hardware)


def plan_preset(
    preset: str,
    steps: tuple[str, ...] = STEPS,
    device: str = "cuda",
    gpu_mem_gb: float | None = None,
    num_gpus: int | None = None,
    zero_stage: int | None = None,
    offload: str | None = None,
    overrides: dict[str, list[str]] | None = None,
) -> list[StepPlan]:
    """The plan of each step of `preset`; hardware not given comes from the preset's hardware.yaml
    (else one 24 GB GPU, no ZeRO). `device="cpu"` plans a run on this machine's CPU."""
    loaded = load_preset(preset, overrides, steps)
    hw = _hardware(device, loaded.hardware, gpu_mem_gb, num_gpus, zero_stage, offload)
    plans = [PLANNERS[step](loaded.settings[step], hw) for step in steps]
    for plan in plans:
        if not plan.fits:
            plan.suggestions = suggest(plan)
    return plans


def _hardware(device: str, found: dict, gpu_mem_gb, num_gpus, zero_stage, offload) -> Hardware:
    if device == "cpu":
        mem = gpu_mem_gb * GB if gpu_mem_gb else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return Hardware("cpu", int(mem), 1, 0, "none")
    stage = found.get("zero_stage", 0) if zero_stage is None else zero_stage
    off = found.get("offload", "none") if offload is None else offload
    gpus = num_gpus or found.get("num_gpus", 1)
    if stage not in (0, 1, 2, 3):
        raise ConfigError(f"--zero-stage must be 0, 1, 2 or 3, got {stage}")
    if off not in ("none", "optimizer", "all"):
        raise ConfigError(f"--offload must be none, optimizer or all, got '{off}'")
    if off != "none" and stage == 0:
        stage = 2 if off == "optimizer" else 3
    if off == "all" and stage != 3:
        raise ConfigError("--offload all (parameters too) needs --zero-stage 3")
    if gpus < 1:
        raise ConfigError(f"--num-gpus must be >= 1, got {gpus}")
    mem = gpu_mem_gb if gpu_mem_gb else found.get("gpu_mem_gb", 24)
    return Hardware("cuda", int(mem * GB), gpus, stage, off)
