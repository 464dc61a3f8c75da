"""Peak-memory planner: will a preset's three steps fit, and what to change if not.

    python -m rlhf_lite.plan --preset opt-1.3b-4090                  # one 24 GB GPU (from the preset)
    python -m rlhf_lite.plan --preset opt-13b-node --num-gpus 8 --zero-stage 3
    python -m rlhf_lite.plan --preset demo --device cpu              # host memory of a run on this CPU
    python -m rlhf_lite.plan --preset opt-1.3b-4090 --json --set ppo.max_answer_seq_len=128

Per step and phase: the peak memory of one process by component ("GB" means GiB), a verdict and,
when it does not fit, the changes that help, largest saving first. Parameters are counted exactly
(each model built on `meta` from its real config and passed through `prepare_for_training`);
activations are counted per block from what autograd saves (`tests/test_plan.py` checks them to the
byte); AdamW keeps two states per parameter in its dtype, DeepSpeed ZeRO 12 bytes, divided over the
GPUs or offloaded; the runtime is the CUDA context + a 10% allocator margin on a GPU and the
process's RSS on the CPU (`benchmarks/bench_memory.py` checks that estimate against a real run).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArgumentParser, ConfigError
from ..presets import preset_file, read_yaml
from ..ranges import option
from .memory import (
    COMPONENTS,
    CPU_RUNTIME_BYTES,
    CUDA_CONTEXT_BYTES,
    DTYPE_BYTES,
    GB,
    KNOWN_ARCHITECTURES,
    PLANNERS,
    STEPS,
    Hardware,
    ModelSpec,
    PPOSettings,
    RMSettings,
    SFTSettings,
    StepPlan,
    architecture,
    block_saved_bytes,
    count_model,
    plan_ppo,
    plan_rm,
    quiet,
    suggest,
)

__all__ = [
    "COMPONENTS",
    "CPU_RUNTIME_BYTES",
    "CUDA_CONTEXT_BYTES",
    "DTYPE_BYTES",
    "GB",
    "KNOWN_ARCHITECTURES",
    "PLANNERS",
    "STEPS",
    "Hardware",
    "ModelSpec",
    "architecture",
    "block_saved_bytes",
    "count_model",
    "load_preset",
    "main",
    "parser",
    "plan_ppo",
    "plan_preset",
    "plan_rm",
    "suggest",
]

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
    name: str
    settings: dict  # step -> SFTSettings / RMSettings / PPOSettings
    hardware: dict  # preset_hardware


def _flag_value(argv: list[str], key: str):
    for i, a in enumerate(argv):
        if a == f"--{key}" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(f"--{key}="):
            return a.split("=", 1)[1]
    return None


def load_preset(name: str, overrides: dict[str, list[str]] | None = None, steps: tuple[str, ...] = STEPS) -> Preset:
    """Parse a preset's YAML files with the recipes' own dataclasses (plus command-line style
    `overrides` per step) into the planner's settings."""
    hardware = preset_hardware(name)
    from ..args import ModelArguments, RMArguments, SFTArguments, parse

    overrides = overrides or {}
    parsed, ppo = {}, None
    for step in [s for s in STEPS if s in steps or (s != "ppo" and "ppo" in steps)]:
        path = preset_file(name, step)
        if not path.is_file():
            raise ConfigError(f"preset '{name}' has no {step}.yaml")
        extra = list(overrides.get(step, []))
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
        raw = read_yaml(path)
        autocast = any(
            str(_flag_value(extra, k) or raw.get(k, False)).lower() in ("1", "true", "yes") for k in ("bf16", "fp16")
        )
        parsed[step] = (model_args, training, autocast)

    settings = {}
    for step, (model_args, training, autocast) in parsed.items():
        model = model_args.settings(bool(training.activation_checkpointing))
        if getattr(training, "disable_dropout", False):  # TRL's RewardConfig turns the model's dropout off
            model = dataclasses.replace(model, dropout=0.0)
        cls = SFTSettings if step == "sft" else RMSettings
        optim = str(getattr(training.optim, "value", training.optim))
        fused = model_args.lora_learning_rate is None and "fused" in optim
        spec = ModelSpec(model, reward=step == "rm")
        settings[step] = cls(spec, training.per_device_train_batch_size, training.max_length or 1024, autocast, fused)

    if ppo is not None:
        for role, step in (("actor", "sft"), ("critic", "rm")):
            if not getattr(ppo, f"{role}_model_name_or_path"):
                # What step 1/2 wrote, if it ran; otherwise the model it starts from (same architecture).
                model_args, training, _ = parsed[step]
                out = Path(training.output_dir)
                path = str(out) if (out / "config.json").is_file() else model_args.model_name_or_path
                setattr(ppo, f"{role}_model_name_or_path", path)
        ppo.reward_model_name_or_path = ppo.reward_model_name_or_path or ppo.critic_model_name_or_path
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
    return Preset(name, {s: settings[s] for s in steps}, hardware)


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


LABELS = {k: k for k in COMPONENTS} | {
    "optimizer": "optimizer states",
    "kv_cache": "generation KV cache",
    "runtime": "runtime + allocator",
}


def _describe(plan: StepPlan) -> str:
    s = plan.settings
    if plan.step == "ppo":
        return (
            f"actor {_model_text(s.actor)}, critic {_model_text(s.critic)}, reward {_model_text(s.reward)}; "
            f"batch {s.generation_batch} gen / {s.training_batch} train, prompt {s.prompt_len} + answer "
            f"{s.answer_len} tokens" + (", EMA" if s.ema else "")
        )
    pairs = " pairs" if plan.step == "rm" else ""
    return f"{_model_text(s.model)}; batch {s.batch}{pairs} x {s.seq_len} tokens"


def _model_text(spec: ModelSpec) -> str:
    """A model as the plan's header shows it: path (dtype, LoRA, quantisation, freezing, checkpointing)."""
    m = spec.settings
    bits = (
        [m.dtype]
        + ([f"LoRA {spec.lora.r}"] if spec.lora else [])
        + ([m.quantization] if m.quantization != "none" else [])
        + ([f"top {m.trainable_layers} layers"] if m.trainable_layers and spec.trained else [])
        + (["ckpt"] if spec.checkpointing else [])
    )
    return f"{m.name_or_path} ({', '.join(bits)})"


def render(plans: list[StepPlan], preset: str) -> str:
    lines = []
    for p in plans:
        hw = p.hardware
        where = (
            f"{hw.mem_bytes / GB:.0f} GB GPU"
            + (f" x {hw.num_gpus}" if hw.num_gpus > 1 else "")
            + (f", ZeRO-{hw.zero_stage}" if hw.zero_stage else "")
            + (f", offload {hw.offload}" if hw.offload != "none" else "")
            if hw.device == "cuda"
            else f"CPU, {hw.mem_bytes / GB:.1f} GB host memory"
        )
        lines += [f"== {preset} / {p.step}: {where}", f"   {_describe(p)}"]
        lines += [
            f"   {row['role']:<9} {row['params'] / 1e6:9.1f}M params, "
            f"{row['trainable'] / 1e6:8.1f}M trained, weights {row['weights_gb']:.2f} GB"
            for row in p.models
        ]
        names = list(p.breakdown)
        heads = [(n + " *" if n == p.phase else n).replace("optimizer step", "opt. step") for n in names]
        lines.append(f"   {'GB':<22}" + "".join(f"{h:>13}" for h in heads))
        lines += [
            f"   {LABELS[k]:<22}" + "".join(f"{p.breakdown[n][k] / GB:13.2f}" for n in names) for k in COMPONENTS
        ]
        lines.append(f"   {'total':<22}" + "".join(f"{p.phases[n] / GB:13.2f}" for n in names))
        lines.append(f"   peak: {p.total / GB:.2f} GB during {p.phase} (*), budget {hw.mem_bytes / GB:.2f} GB")
        if p.host_bytes:
            lines.append(f"   host memory for offloaded states: {p.host_bytes / GB:.2f} GB")
        head = hw.mem_bytes - p.total
        if head >= 0:
            lines.append(f"   verdict: FITS, {head / GB:.2f} GB headroom ({100 * head / hw.mem_bytes:.0f}%)")
        else:
            lines.append(f"   verdict: DOES NOT FIT: {-head / GB:.2f} GB over")
        lines += [f"   note: {note}" for note in p.notes]
        if p.suggestions:
            fits = any(x["fits"] for x in p.suggestions)
            lines.append(f"   {'to make it fit' if fits else 'what lowers the peak'} (largest saving first):")
        for sug in p.suggestions:
            lead = "together: " if sug.get("combined") else ""
            lines.append(
                f"     - {lead}{sug['change']}: -{sug['saves_gb']:.2f} GB -> {sug['peak_gb']:.2f} GB "
                f"({'fits' if sug['fits'] else 'still over'})"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _overrides(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        m = re.fullmatch(r"(sft|rm|ppo)\.(\w+)=(.*)", item)
        if not m:
            raise ConfigError(f"--set expects STEP.FIELD=VALUE with STEP sft, rm or ppo, got '{item}'")
        out.setdefault(m.group(1), []).extend([f"--{m.group(2)}", m.group(3)])
    return out


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m rlhf_lite.plan", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", required=True, help="a folder of recipes/configs (demo, opt-1.3b-4090, ...)")
    p.add_argument("--steps", default="sft,rm,ppo", help="comma-separated: sft, rm, ppo")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: host memory of a run on this CPU")
    p.add_argument(
        "--gpu-mem-gb", type=option("gpu_mem_gb"), help="GiB per GPU; default: hardware.yaml, else 24 (cpu: RAM)"
    )
    p.add_argument("--num-gpus", type=option("num_gpus"), help="default: hardware.yaml, else 1")
    p.add_argument("--zero-stage", type=option("zero_stage"), help="DeepSpeed ZeRO stage 0-3 (0: none)")
    p.add_argument("--offload", choices=("none", "optimizer", "all"), help="DeepSpeed CPU offload (all: ZeRO-3)")
    p.add_argument(
        "--set", action="append", default=[], metavar="STEP.FIELD=VALUE", help="e.g. ppo.max_answer_seq_len=128"
    )
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    if not steps or any(s not in STEPS for s in steps):
        raise ConfigError(f"--steps takes sft, rm and ppo, got '{args.steps}'")
    hardware = (args.device, args.gpu_mem_gb, args.num_gpus, args.zero_stage, args.offload)
    plans = plan_preset(args.preset, steps, *hardware, _overrides(args.set))
    if not args.json:
        sys.stdout.write(render(plans, args.preset))
        return 0
    out = {
        "preset": args.preset,
        "device": args.device,
        "unit": "GiB",
        "steps": {p.step: p.to_json() for p in plans},
        "fits": all(p.fits for p in plans),
    }
    print(json.dumps(out, indent=1))
    return 0
