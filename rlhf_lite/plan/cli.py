"""The planner's report and command line."""

from __future__ import annotations

import json
import re
import sys

from ..errors import ArgumentParser, ConfigError
from ..ranges import option
from .architectures import GB, STEPS
from .counting import ModelSpec
from .settings import plan_preset
from .steps import COMPONENTS, StepPlan

LABELS = {"optimizer": "optimizer states", "kv_cache": "generation KV cache", "runtime": "runtime + allocator"}


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
            f"   {LABELS.get(k, k):<22}" + "".join(f"{p.breakdown[n][k] / GB:13.2f}" for n in names)
            for k in COMPONENTS
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
    p.add_argument("--gpu-mem-gb", type=option("gpu_mem_gb"), help="GiB per GPU (hardware.yaml, else 24; cpu: RAM)")
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
    if args.json:
        steps = {p.step: p.to_json() for p in plans}
        out = dict(preset=args.preset, device=args.device, unit="GiB", steps=steps, fits=all(p.fits for p in plans))
        print(json.dumps(out, indent=1))
    else:
        sys.stdout.write(render(plans, args.preset))
    return 0
