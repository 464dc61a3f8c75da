"""The three steps (and their evaluations) in one command, as DeepSpeed-Chat's `train.py`.

    python -m rlhf_lite.pipeline --preset demo                      # steps 1 2 3, then --eval
    python -m rlhf_lite.pipeline --preset opt-1.3b-4090 --steps 3 --accelerate-config zero2
    python -m rlhf_lite.pipeline --actor-model facebook/opt-1.3b --reward-model facebook/opt-350m \\
        --deployment-type single_gpu                              # DeepSpeed-Chat's flags

Each step runs its recipe in a child process (through `accelerate launch` when an accelerate
config applies), with the preset's YAML and the overrides below; the evaluations write JSON to
outputs/<preset>/eval/ and a summary closes the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .errors import ConfigError, RLHFLiteError, cli

ROOT = Path(__file__).resolve().parents[1]
STEPS = {1: "sft", 2: "rm", 3: "ppo"}
# DeepSpeed-Chat's --deployment-type -> our accelerate config (None: plain python, e.g. on a CPU).
DEPLOYMENTS = {"single_gpu": "single_gpu", "single_node": "zero3", "multi_node": "multi_node"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default=None, help="recipes/configs/<preset> (default: demo, or "
                   "opt-1.3b-4090 when --actor-model is given)")
    p.add_argument("--steps", type=int, nargs="*", choices=sorted(STEPS), default=[1, 2, 3])
    p.add_argument("--actor-model", help="step 1's base model (overrides the preset's)")
    p.add_argument("--reward-model", help="step 2's base model (overrides the preset's)")
    p.add_argument("--deployment-type", choices=sorted(DEPLOYMENTS),
                   help="single_gpu, single_node (8 GPUs, ZeRO-3) or multi_node")
    p.add_argument("--accelerate-config", help="accelerate_configs/<name>.yaml (overrides --deployment-type)")
    p.add_argument("--output-dir", help="default outputs/<preset>")
    p.add_argument("--eval", action=argparse.BooleanOptionalAction, default=True,
                   help="run the evaluations after the steps (default on)")
    args = p.parse_args(argv)
    args.preset = args.preset or ("opt-1.3b-4090" if args.actor_model else "demo")
    if not (ROOT / "recipes" / "configs" / args.preset).is_dir():
        known = sorted(d.name for d in (ROOT / "recipes" / "configs").iterdir() if d.is_dir())
        raise ConfigError(f"unknown preset '{args.preset}'; known: {', '.join(known)}")
    args.output_dir = Path(args.output_dir or Path("outputs") / args.preset)
    return args


def launcher(args) -> list[str]:
    config = args.accelerate_config or DEPLOYMENTS.get(args.deployment_type)
    if config is None:
        return [sys.executable]
    path = ROOT / "accelerate_configs" / f"{config}.yaml"
    if not path.is_file():
        raise ConfigError(f"accelerate config '{path}' does not exist")
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path)]


def step_command(args, step: int) -> list[str]:
    name, out = STEPS[step], args.output_dir
    cmd = [*launcher(args), str(ROOT / "recipes" / f"{name}.py"),
           "--config", str(ROOT / "recipes" / "configs" / args.preset / f"{name}.yaml"),
           "--output_dir", str(out / name)]
    if name == "sft" and args.actor_model:
        cmd += ["--model_name_or_path", args.actor_model]
    if name == "rm" and args.reward_model:
        cmd += ["--model_name_or_path", args.reward_model]
    if name == "ppo":
        cmd += ["--actor_model_name_or_path", str(out / "sft"), "--critic_model_name_or_path", str(out / "rm")]
        for step_dir, number in (("sft", 1), ("rm", 2)):
            if not (out / step_dir / "config.json").is_file():
                raise ConfigError(f"step 3 needs step {number}'s model in {out / step_dir}, which is "
                                  f"missing. Run first:\n  python -m rlhf_lite.pipeline --preset "
                                  f"{args.preset} --steps {number}\nor: make {step_dir} PRESET={args.preset}")
    return cmd


def preset_value(preset: str, step: str, key: str):
    import yaml
    with open(ROOT / "recipes" / "configs" / preset / f"{step}.yaml", encoding="utf-8") as fh:
        return (yaml.safe_load(fh) or {}).get(key)


def eval_commands(args) -> dict[str, list[str]]:
    """The evaluations whose inputs exist: name -> command (each writes eval/<name>.json)."""
    out, ev = args.output_dir, args.output_dir / "eval"
    data = (preset_value(args.preset, "rm", "datasets") or ["demo"])[0]
    base = args.actor_model or preset_value(args.preset, "sft", "model_name_or_path")
    script = lambda name: [sys.executable, str(ROOT / "evaluate" / f"{name}.py")]  # noqa: E731
    have = lambda step: (out / step / "config.json").is_file()  # noqa: E731
    cmds = {}
    if have("sft"):
        cmds["prompt_eval"] = [*script("prompt_eval"), "--baseline", base, "--finetuned", str(out / "sft")]
        cmds["perplexity"] = [*script("perplexity"), "--model", str(out / "sft"), "--data", data, "-n", "100"]
    if have("rm"):
        cmds["rm_eval"] = [*script("rm_eval"), "--model", str(out / "rm"), "--data", data]
    if have("sft") and have("rm") and (out / "ppo" / "actor" / "config.json").is_file():
        cmds["ppo_eval"] = [*script("ppo_eval"), "--baseline", str(out / "sft"), "--model",
                            str(out / "ppo" / "actor"), "--reward", str(out / "rm"), "--data", data,
                            "--show", "3"]
    return {name: [*cmd, "--output", str(ev / f"{name}.json")] for name, cmd in cmds.items()}


def run(name: str, cmd: list[str], log: Path) -> float:
    """Run one child process, its output shown and kept in `log`; returns its wall time."""
    print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=os.getcwd(), env={**os.environ, "PYTHONUNBUFFERED": "1"})
        for line in proc.stdout:
            sys.stdout.write(line)
            fh.write(line)
        proc.wait()
    if proc.returncode:
        raise RLHFLiteError(f"{name} failed (exit {proc.returncode}); its output is in {log}")
    return time.perf_counter() - start


def summary(args, times: dict[str, float]) -> str:
    ev = args.output_dir / "eval"
    read = lambda name: json.loads((ev / f"{name}.json").read_text()) if (ev / f"{name}.json").is_file() else None  # noqa: E731
    lines = [f"\n=== summary ({args.preset}, outputs in {args.output_dir})"]
    lines += [f"{name:<12} {t / 60:5.1f} min" for name, t in times.items()]
    lines.append(f"{'total':<12} {sum(times.values()) / 60:5.1f} min")
    if rm := read("rm_eval"):
        lines.append(f"reward model accuracy on held-out pairs: {rm['accuracy']:.3f} (n={rm['n']})")
    if ppo := read("ppo_eval"):
        lines.append(f"PPO vs SFT: reward {ppo['reward_baseline']:+.3f} -> {ppo['reward_model']:+.3f} "
                     f"(gain {ppo['reward_gain']:+.3f} ± {ppo['reward_gain_stderr']:.3f}, win rate {ppo['win_rate']:.2f}, "
                     f"KL {ppo['kl_to_baseline']:.3f}, n={ppo['n']})")
        log = (args.output_dir / "logs" / "ppo_eval.log").read_text(encoding="utf-8")
        start = log.find("=" * 30 + " prompt 1/")  # the samples ppo_eval printed (--show)
        if start >= 0:
            lines += ["sample answers, before (baseline = SFT) and after (model = PPO):",
                      log[start:log.find("\nmetric", start)].strip()]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    logs, times = args.output_dir / "logs", {}
    for step in args.steps:
        times[STEPS[step]] = run(STEPS[step], step_command(args, step), logs / f"{STEPS[step]}.log")
    if args.eval:
        for name, cmd in eval_commands(args).items():
            times[name] = run(name, cmd, logs / f"{name}.log")
    print(summary(args, times))


if __name__ == "__main__":
    cli(main)
