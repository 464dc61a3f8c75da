"""The three steps (and their evaluations) in one command, as DeepSpeed-Chat's `train.py`.

    python -m rlhf_lite.pipeline --preset demo                      # steps 1 2 3, then --eval
    python -m rlhf_lite.pipeline --preset opt-1.3b-4090 --steps 3 --accelerate-config zero2
    python -m rlhf_lite.pipeline --preset demo --algorithm dpo      # step 3: DPO, GRPO or RLOO instead
    python -m rlhf_lite.pipeline --actor-model facebook/opt-1.3b --reward-model facebook/opt-350m \\
        --deployment-type single_gpu                              # DeepSpeed-Chat's flags

Each step's recipe runs with the preset's YAML in a child process (under `accelerate launch` when a
config applies); the evaluations write JSON to outputs/<preset>/eval/ and a summary closes the run.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from importlib import import_module
from pathlib import Path

from .errors import ArgumentParser, ConfigError, RLHFLiteError, cli
from .presets import accelerate_config, preset_file, read_yaml
from .progress import ENV as PROGRESS_ENV
from .progress import Follower

STEPS = {1: "sft", 2: "rm", 3: "ppo"}
# Step 3: DeepSpeed-Chat's PPO (the project's engine) or one of TRL's trainers, from the same models.
ALGORITHMS = ("ppo", "dpo", "grpo", "rloo")
NEEDS = {"ppo": ("sft", "rm"), "dpo": ("sft",), "grpo": ("sft", "rm"), "rloo": ("sft", "rm")}
# DeepSpeed-Chat's --deployment-type -> our accelerate config (None: plain python, e.g. on a CPU).
DEPLOYMENTS = {"single_gpu": "single_gpu", "single_node": "zero3", "multi_node": "multi_node"}


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m rlhf_lite.pipeline", description=__doc__.splitlines()[0])
    p.add_argument("--preset", help="a folder of recipes/configs (default: demo, or opt-1.3b-4090 with --actor-model)")
    p.add_argument("--steps", type=int, nargs="*", choices=sorted(STEPS), default=[1, 2, 3])
    p.add_argument("--algorithm", choices=ALGORITHMS, default="ppo", help="step 3's algorithm")
    p.add_argument("--actor-model", help="step 1's base model (overrides the preset's)")
    p.add_argument("--reward-model", help="step 2's base model (overrides the preset's)")
    p.add_argument("--deployment-type", choices=sorted(DEPLOYMENTS), help="single_node: 8 GPUs, ZeRO-3")
    p.add_argument("--accelerate-config", help="accelerate_configs/<name>.yaml (overrides --deployment-type)")
    p.add_argument("--output-dir", help="default outputs/<preset>")
    p.add_argument("--eval", action=argparse.BooleanOptionalAction, default=True, help="evaluate after the steps")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    args.preset = args.preset or ("opt-1.3b-4090" if args.actor_model else "demo")
    preset_file(args.preset, "sft")  # an unknown preset is an error here
    args.output_dir = Path(args.output_dir or Path("outputs") / args.preset)
    return args


def launcher(args) -> list[str]:
    config = args.accelerate_config or DEPLOYMENTS.get(args.deployment_type)
    if config is None:
        return [sys.executable]
    path = accelerate_config(config, args.output_dir / "logs")
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path)]


def step_name(args, step: int | str) -> str:
    return args.algorithm if step == 3 else STEPS.get(step, step)


def actor_dir(out: Path, name: str) -> Path:
    """Where step `name` saves the model that answers: PPO's actor is one of its two."""
    return out / "ppo" / "actor" if name == "ppo" else out / name


def step_overrides(args, name: str) -> list[str]:
    """What the pipeline sets in step `name`'s configuration: its output and input models."""
    out = args.output_dir
    extra = ["--output_dir", str(out / name)]
    base = {"sft": args.actor_model, "rm": args.reward_model}.get(name)
    if base:
        extra += ["--model_name_or_path", base]
    if name == "ppo":
        extra += ["--actor_model_name_or_path", str(out / "sft"), "--critic_model_name_or_path", str(out / "rm")]
    elif name in ALGORITHMS:
        extra += ["--model_name_or_path", str(out / "sft")]
        extra += ["--reward_model_name_or_path", str(out / "rm")] if "rm" in NEEDS[name] else []
    return extra


def step_command(args, step: int | str) -> list[str]:
    """The command of step 1, 2 or 3 (`args.algorithm`), or of a step named so ("judge" too)."""
    name, out = step_name(args, step), args.output_dir
    config = str(preset_file(args.preset, name))
    # `accelerate launch -m` as `python -m`; the judge is step 2's recipe on other pairs
    module = "rm" if name == "judge" else name
    cmd = [*launcher(args), "-m", f"rlhf_lite.{module}", "--config", config, *step_overrides(args, name)]
    for step_dir in NEEDS.get(name, ()):
        if not (out / step_dir / "config.json").is_file():
            number = 1 if step_dir == "sft" else 2
            raise ConfigError(
                f"{name} needs step {number}'s model in {out / step_dir}, which is "
                f"missing. Run first:\n  python -m rlhf_lite.pipeline --preset "
                f"{args.preset} --steps {number}\nor: make {step_dir} PRESET={args.preset}"
            )
    return cmd


def eval_data_flags(preset: str) -> list[str]:
    """The evaluation scripts' data options: the reward model's held-out pairs, read as step 2 read them."""
    step2 = read_yaml(preset_file(preset, "rm"))
    data = ["--data", (step2.get("datasets") or ["demo"])[0]]
    for key, flag in (("data_dir", "--data-dir"), ("eval_split", "--split")):
        data += [flag, step2[key]] if step2.get(key) else []
    if step2.get("max_length", 0) > 512:  # a reward model trained on longer texts is scored on as long
        data += ["--max-length", str(step2["max_length"])]
    return data


def eval_commands(args) -> dict[str, list[str]]:
    """The evaluations whose inputs exist: name -> command (each writes eval/<name>.json)."""
    out, data = args.output_dir, eval_data_flags(args.preset)
    base = args.actor_model or read_yaml(preset_file(args.preset, "sft")).get("model_name_or_path")
    have = lambda step: (out / step / "config.json").is_file()
    judge = ["--judge", str(out / "judge")] if have("judge") else []
    cmds = {}
    actor = actor_dir(out, args.algorithm)
    trained = have("sft") and have("rm") and (actor / "config.json").is_file()
    for rm in ("rm", "judge"):
        if have(rm) and not trained:  # the step 3 evaluation reports both reward models' accuracies itself
            cmds[f"{rm}_eval"] = ["rm_eval", "--model", str(out / rm), *data]
    if trained:
        models = ["--baseline", str(out / "sft"), "--model", str(actor), "--reward", str(out / "rm")]
        settings = ["--open-prompts", "--max-new-tokens", "40", "--batch-size", "32", "--show", "3"]
        cmds[f"{args.algorithm}_eval"] = ["ppo_eval", *models, *judge, "--base", base, *data, *settings]
    elif have("sft"):  # without a PPO actor: base vs SFT on the open prompts
        cmds["prompt_eval"] = ["prompt_eval", "--baseline", base, "--finetuned", str(out / "sft"), *judge, "--open"]
    return {
        name: [sys.executable, "-m", f"rlhf_lite.eval.{script}", *rest, "--output", str(out / "eval" / f"{name}.json")]
        for name, (script, *rest) in cmds.items()
    }


TITLES = {
    "sft": "step 1, supervised fine-tuning",
    "rm": "step 2, reward model",
    **{a: f"step 3, {a.upper()}" for a in ALGORITHMS},
    "judge": "a judge reward model, trained on pairs step 2 never saw",
    "prompt_eval": "open prompts, base vs SFT",
    "rm_eval": "reward-model accuracy on held-out pairs",
    "judge_eval": "judge accuracy on held-out pairs",
    **{f"{a}_eval": f"base, SFT and {a.upper()} on held-out and open prompts, judged" for a in ALGORITHMS},
}


def run(name: str, cmd: list[str], log: Path) -> float:
    """Run one child process, its output in `log` and its progress drawn as one bar; its wall time.
    The wall time and peak memory also go to `usage(log)`'s file."""
    print(f"{name}: {TITLES.get(name, name)} (log: {log})", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    events = log.with_suffix(".progress")
    events.unlink(missing_ok=True)
    follower = Follower(str(events), name)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", PROGRESS_ENV: str(events)}
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
        try:
            while not (waited := os.wait4(proc.pid, os.WNOHANG))[0]:  # wait4: the child's own peak memory
                follower.poll()
                time.sleep(0.3)
            proc.returncode = os.waitstatus_to_exitcode(waited[1])
        except KeyboardInterrupt:  # the step got Ctrl-C too: let it save its checkpoint
            proc.wait()
            raise
        finally:
            account = follower.close()
    events.unlink(missing_ok=True)
    elapsed = time.perf_counter() - start
    # ru_maxrss (KiB): the largest resident set of the child and of the processes it waited for
    peak = {"minutes": round(elapsed / 60, 2), "peak_rss_gb": round(waited[2].ru_maxrss / 2**20, 2)}
    log.with_suffix(".usage.json").write_text(json.dumps(peak), encoding="utf-8")
    if proc.returncode:
        tail = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        raise RLHFLiteError(
            f"{name} failed (exit {proc.returncode}); the end of its log {log}:\n  " + "\n  ".join(tail[-8:])
        )
    if not follower.live:  # off a terminal no bar was drawn: one line says where it ended
        print(f"{name}: {account + ', ' if account else ''}{elapsed / 60:.1f} min", flush=True)
    return elapsed


def usage(log: Path) -> dict | None:
    """The wall time and peak memory `run` recorded for the step logging to `log` (None if it did not)."""
    path = log.with_suffix(".usage.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


MEASURES = (
    ("reward", "reward, step 2's model", "{:+.3f}"),
    ("judge", "reward, judge", "{:+.3f}"),
    ("facts", "fact accuracy", "{:.3f}"),
    ("distinct_1", "distinct-1", "{:.3f}"),
    ("distinct_2", "distinct-2", "{:.3f}"),
    ("repeated_3gram_rate", "repeated 3-grams", "{:.3f}"),
    ("echo_share", "echoes the question", "{:.3f}"),
    ("short_share", "under 3 tokens", "{:.3f}"),
    ("mean_length", "mean length, tokens", "{:.1f}"),
    ("eos_share", "ends with EOS", "{:.3f}"),
)


def comparison_table(ppo: dict, algorithm: str = "ppo") -> list[str]:
    """base -> SFT -> step 3 on every measure, held-out and open prompts, then step 3's gains over SFT."""
    roles, names = list(ppo["models"]), {"base": "base", "baseline": "SFT", "model": algorithm.upper()}
    lines = [f"{'':<28}" + "".join(f"{names[r]:>10}" for r in roles)]
    sets = [("held-out prompts", ppo)] + ([("open prompts", ppo["open"])] if "open" in ppo else [])
    for title, part in sets:
        n = part["n"] if "facts" not in part["models"][roles[0]] else f"{part['n']}, facts {ppo.get('facts_n')}"
        lines.append(f"{title} (n={n})")
        for key, label, fmt in MEASURES:
            if key in part["models"][roles[0]]:
                lines.append(f"  {label:<26}" + "".join(f"{fmt.format(part['models'][r][key]):>10}" for r in roles))
    for title, part in sets:
        gains = [
            f"{name} {part[f'{key}_gain']:+.3f} ± {part[f'{key}_gain_stderr']:.3f} "
            f"(win {part['win_rate' if key == 'reward' else 'judge_win_rate']:.2f})"
            for key, name in (("reward", "step 2's model"), ("judge", "judge"))
            if f"{key}_gain" in part
        ]
        kl = ""
        if "kl_to_baseline" in part:
            kl = f"; KL {part['kl_to_baseline']:.3f} (k3 {part['kl_k3_to_baseline']:.3f})"
        lines.append(f"{algorithm.upper()} vs SFT, {title}: gain under {'; under '.join(gains)}{kl}")
    return lines


def summary(args, times: dict[str, float]) -> str:
    ev = args.output_dir / "eval"
    read = lambda name: json.loads((ev / f"{name}.json").read_text()) if (ev / f"{name}.json").is_file() else None
    minutes = "  ".join(f"{name} {t / 60:.1f}" for name, t in times.items())
    lines = [
        f"\n=== summary ({args.preset}, outputs in {args.output_dir})",
        f"{minutes}  total {sum(times.values()) / 60:.1f} min",
    ]
    ppo = read(f"{args.algorithm}_eval") or {}
    for name, key, what in (
        ("rm_eval", "reward_accuracy", "reward model (step 2)"),
        ("judge_eval", "judge_accuracy", "judge"),
    ):
        result = read(name) or {"accuracy": ppo.get(key), "n": ppo.get("n")}
        if result["accuracy"] is not None:
            lines.append(f"{what} accuracy on held-out pairs: {result['accuracy']:.3f} (n={result['n']})")
    if ppo:
        lines += comparison_table(ppo, args.algorithm)
        from .eval.ppo_eval import answer_samples

        name = args.algorithm.upper()
        lines += [f"sample answers of base, SFT (baseline) and {name} (model):", *answer_samples(ppo, 3)]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    logs, times = args.output_dir / "logs", {}
    if args.steps:  # parse every step's configuration first: a mistake in step 3's must not wait for 1 and 2
        from .plan import load_preset

        names = [step_name(args, s) for s in args.steps]
        try:
            overrides = {name: step_overrides(args, name) for name in STEPS.values()}
            load_preset(args.preset, overrides, tuple(n for n in names if n in STEPS.values()))
            if args.algorithm in names and args.algorithm != "ppo":  # the planner knows steps 1 to 3 only
                config = ["--config", str(preset_file(args.preset, args.algorithm))]
                import_module(f"rlhf_lite.{args.algorithm}").arguments(
                    [*config, *step_overrides(args, args.algorithm)]
                )
        except RLHFLiteError as e:
            raise ConfigError(f"{preset_file(args.preset, 'sft').parent}: {e}") from None
    try:
        for step in args.steps:
            name = step_name(args, step)
            times[name] = run(name, step_command(args, step), logs / f"{name}.log")
        # the judge (judge.yaml: step 2's recipe on pairs step 2 never saw), which the evaluations score with
        if args.eval and preset_file(args.preset, "judge").is_file():
            times["judge"] = run("judge", step_command(args, "judge"), logs / "judge.log")
        if args.eval:
            for name, cmd in eval_commands(args).items():
                times[name] = run(name, cmd, logs / f"{name}.log")
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume from the last checkpoint", file=sys.stderr)
        raise SystemExit(130) from None
    print(summary(args, times))


if __name__ == "__main__":
    cli(main)
