"""Peak memory of a real PPO step next to `rlhf_lite.plan`'s estimate of it.

    python benchmarks/bench_memory.py                       # both cases on this CPU (~11 min on 2 idle cores)
    python benchmarks/bench_memory.py --cases demo          # only the demo preset (~1 min)
    python benchmarks/bench_memory.py --cases opt-1.3b+350m --opt-batch 4 --opt-prompt-len 256 --opt-answer-len 256
    python benchmarks/bench_memory.py --device cuda         # on a GPU (see below)

Cases:
  demo            the demo preset's PPO step (recipes/configs/demo/ppo.yaml as it is: batch 8,
                  prompts of 96 tokens, answers of 40, top 8 layers trained, fp32): the embedded
                  SmolLM2-135M as the actor and, with a fresh one-output head, as critic and reward
                  model.
  opt-1.3b+350m   random-initialised OPT-1.3B (actor) and OPT-350M (critic = reward model), built
                  from their real configs (vocabulary 50272) in bf16, with opt-1.3b-4090's ppo.yaml
                  (LoRA 128 actor, full critic, gradient checkpointing, EMA). Batch and sequence
                  lengths are cut to 2 x (16 + 8) tokens by default (--opt-batch / --opt-prompt-len
                  / --opt-answer-len): without AVX-512 bf16, torch runs the bf16 backward matmuls
                  through its scalar fallback GEMM and one such step already takes ~9 minutes on
                  two idle cores. The planner is asked about exactly the same settings
                  (--set ppo.<field>=<value>).

Each case runs in fresh processes: one builds the model folders (with an offline tokenizer), one
loads them through the project's engine (RLHFEngine + PPOTrainer) and runs `--steps` PPO steps
(generate_experience + train_rlhf) on random prompts of exactly max_prompt_seq_len tokens whose
answers are forced to max_answer_seq_len tokens (min_new_tokens), and one asks
`python -m rlhf_lite.plan --device cpu --json` about the same settings (see STEPS for how many
PPO steps each case runs and why).

Measured: the process's peak resident set (getrusage ru_maxrss, which is VmHWM). With
`--device cuda` the step runs on the GPU and torch.cuda.max_memory_allocated is compared with the
GPU plan's tensors (its total without the "runtime + allocator" line, which max_memory_allocated
does not see).

Prints one JSON object and writes it to benchmarks/results/bench_memory.json (which keeps the
latest result of a case that was not run this time, with its measured_at):
  {"demo": {"measured_gb", "planned_gb", "planner_error", ...}, "opt-1.3b+350m": {...},
   "planner_error": <largest |error|>}
planner_error = (planned - measured) / measured; GB are GiB (2**30 bytes). Exits 1 when an
|error| exceeds 0.25 (the issue's bound), unless --no-check.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from model_folders import fresh_head_critic, random_opt_folder  # benchmarks/, the script's own folder
from saved_results import with_unrun_cases

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_memory.json"
GB = 2**30
BOUND = 0.25
CASES = ("demo", "opt-1.3b+350m")
# PPO steps per run. AdamW allocates its states at the end of the first update, so a first step
# peaks at max(training without states, optimizer step with them) while the planner estimates the
# steady state: the demo runs two steps. The OPT case runs one (a bf16 step of the 1.3B model
# takes many minutes on a CPU without bf16 units): at its sizes the planner's peak is the
# optimizer step (weights + gradients + states), which the first update reaches, and its
# training phase is within 1% of it (both are in the report: planned_phases_gb).
STEPS = {"demo": 2, "opt-1.3b+350m": 1}
PRESET = {"demo": "demo", "opt-1.3b+350m": "opt-1.3b-4090"}


def _status(key: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _clean_env(threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env


def _run(argv: list[str], env: dict, what: str) -> str:
    """Run a child process; returns its stdout (its stderr, with progress lines, is passed through)."""
    proc = subprocess.run([sys.executable, *argv], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    return proc.stdout


# ------------------------------------------------------------------ child: build the model folders


def prepare(case: str, folder: str) -> dict:
    out = Path(folder)
    if case == "demo":
        from rlhf_lite.models import resolve_model_path

        actor = Path(resolve_model_path("embedded:smollm2-135m"))
        return {"actor": str(actor), "critic": str(fresh_head_critic(actor, out / "smollm2-rm"))}

    paths = {}
    for role, name in (("actor", "facebook/opt-1.3b"), ("critic", "facebook/opt-350m")):
        # the model keeps its 50272 embedding rows; the offline tokenizer has fewer tokens
        paths[role] = str(random_opt_folder(name, out / name.split("/")[1], "bf16", reward=role == "critic"))
    return paths


# ------------------------------------------------------------------ child: one measured run


def measure(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    from rlhf_lite.args import parse
    from rlhf_lite.models import load_tokenizer
    from rlhf_lite.ppo import PPOArguments, PPOTrainer, RLHFEngine

    start = time.perf_counter()
    (args,) = parse([PPOArguments], "ppo", spec["argv"])
    tokenizer = load_tokenizer(args.actor_model_name_or_path)
    engine = RLHFEngine(
        args.actor_model_name_or_path,
        args.critic_model_name_or_path,
        tokenizer,
        num_total_iters=spec["steps"],
        args=args,
    )
    trainer = PPOTrainer(engine, args)
    device = engine.accelerator.device
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    loaded = {
        "rss_after_load_gb": _status("VmRSS") / GB,
        "hwm_after_load_gb": _status("VmHWM") / GB,
        "load_seconds": time.perf_counter() - start,
    }
    _log(f"models loaded in {loaded['load_seconds']:.0f} s, RSS {loaded['rss_after_load_gb']:.2f} GB")
    special = {
        i
        for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id)
        if i is not None
    }
    low = max(special) + 1
    high = min(len(tokenizer), engine.actor.get_input_embeddings().num_embeddings)
    generator = torch.Generator().manual_seed(0)
    B, P = args.per_device_generation_batch_size, args.max_prompt_seq_len
    steps = []
    for _ in range(spec["steps"]):
        t0 = time.perf_counter()
        ids = torch.randint(low, high, (B, P), generator=generator)
        batch = {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}
        exp = trainer.generate_experience(batch)
        assert exp is not None and exp.seq.shape == (B, P + args.max_answer_seq_len), "answers were not full length"
        after_experience = _status("VmHWM") / GB
        t1 = time.perf_counter()
        _log(f"experience in {t1 - t0:.0f} s, peak RSS {after_experience:.2f} GB")
        trainer.train_rlhf(exp)
        _log(f"training in {time.perf_counter() - t1:.0f} s, peak RSS {_status('VmHWM') / GB:.2f} GB")
        steps.append(
            {
                "experience_seconds": round(t1 - t0, 1),
                "training_seconds": round(time.perf_counter() - t1, 1),
                "hwm_after_experience_gb": round(after_experience, 3),
                "hwm_gb": round(_status("VmHWM") / GB, 3),
            }
        )
    # ru_maxrss is in KiB on Linux: the peak resident set of this whole process.
    result = {
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB,
        "steps": steps,
        **{k: round(v, 3) for k, v in loaded.items()},
    }
    if cuda:
        result["cuda_max_allocated_gb"] = torch.cuda.max_memory_allocated() / GB
    return result


# ------------------------------------------------------------------ parent


def settings(case: str, paths: dict, a: argparse.Namespace) -> list[str]:
    """ppo.yaml overrides shared, field for field, by the measured run and the planner."""
    values = {
        "actor_model_name_or_path": paths["actor"],
        "critic_model_name_or_path": paths["critic"],
        "report_to": "none",
    }
    if case == "demo":
        if a.demo_answer_len:
            values["max_answer_seq_len"] = a.demo_answer_len
    else:
        values.update(
            per_device_generation_batch_size=a.opt_batch,
            per_device_training_batch_size=a.opt_batch,
            max_prompt_seq_len=a.opt_prompt_len,
            max_answer_seq_len=a.opt_answer_len,
        )
    return [f"{k}={v}" for k, v in values.items()]


def run_case(case: str, folder: str, a: argparse.Namespace) -> dict:
    env = _clean_env(a.threads)
    me = str(Path(__file__).resolve())
    paths = json.loads(_run([me, "--_prepare", case, folder], env, f"{case}: building the models").splitlines()[-1])
    sets = settings(case, paths, a)
    preset = PRESET[case]
    config = ROOT / "recipes" / "configs" / preset / "ppo.yaml"
    import yaml

    answer = (
        dict(s.split("=", 1) for s in sets).get("max_answer_seq_len")
        or yaml.safe_load(config.read_text())["max_answer_seq_len"]
    )
    sets.append(f"min_new_tokens={answer}")  # every answer runs to max_answer_seq_len
    argv = ["--config", str(config)] + [x for s in sets for x in ("--" + s.split("=", 1)[0], s.split("=", 1)[1])]
    steps = a.steps or STEPS[case]
    spec = {"argv": argv, "steps": steps, "threads": a.threads}
    print(f"{case}: {steps} PPO step(s) with {' '.join(sets)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    # The settings go through a file: the child's command line stays short and generic.
    spec_file = Path(folder) / f"{case}.measure.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    measured = json.loads(_run([me, "--_measure", str(spec_file)], env, f"{case}: the PPO run").splitlines()[-1])
    seconds = time.perf_counter() - t0
    plan_argv = ["-m", "rlhf_lite.plan", "--preset", preset, "--steps", "ppo", "--device", a.device, "--json"]
    plan_argv += [x for s in sets for x in ("--set", f"ppo.{s}")]
    plan = json.loads(_run(plan_argv, env, f"{case}: the planner"))["steps"]["ppo"]
    if a.device == "cuda":
        measured_gb = measured["cuda_max_allocated_gb"]
        planned_gb = plan["peak_gb"] - plan["components_gb"]["runtime"]
    else:
        measured_gb, planned_gb = measured["peak_rss_gb"], plan["peak_gb"]
    return {
        "measured_gb": round(measured_gb, 3),
        "planned_gb": round(planned_gb, 3),
        "planner_error": round((planned_gb - measured_gb) / measured_gb, 4),
        "planned_phase": plan["peak_phase"],
        "planned_components_gb": plan["components_gb"],
        "planned_phases_gb": plan["phases_gb"],
        "settings": {s.split("=", 1)[0]: s.split("=", 1)[1] for s in sets if "_path" not in s},
        "preset": preset,
        "ppo_steps": steps,
        "run": measured,
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="PPO steps per run (default: demo 2, so that the second runs at steady state; "
        "opt-1.3b+350m 1, see STEPS)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--demo-answer-len", type=int, default=None, help="override the demo's max_answer_seq_len")
    p.add_argument("--opt-batch", type=int, default=2, help="generation = training batch of the OPT case (preset: 4)")
    p.add_argument("--opt-prompt-len", type=int, default=16, help="preset: 256")
    p.add_argument("--opt-answer-len", type=int, default=8, help="preset: 256")
    p.add_argument("--workdir", default=None, help="keep the built model folders here (default: a temp dir)")
    p.add_argument("--no-check", action="store_true", help=f"do not fail when |planner_error| > {BOUND}")
    p.add_argument("--_prepare", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--_measure", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._prepare:
        print(json.dumps(prepare(*a._prepare)))
        return 0
    if a._measure:
        print(json.dumps(measure(json.loads(Path(a._measure).read_text(encoding="utf-8")))))
        return 0

    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    if not cases or any(c not in CASES for c in cases):
        p.error(f"--cases takes {', '.join(CASES)}")
    with tempfile.TemporaryDirectory(prefix="bench_memory.") as tmp:
        folder = a.workdir or tmp
        Path(folder).mkdir(parents=True, exist_ok=True)
        report = {
            "benchmark": "bench_memory",
            "device": a.device,
            "unit": "GiB",
            "measure": "torch.cuda.max_memory_allocated" if a.device == "cuda" else "peak RSS (ru_maxrss)",
        }
        for case in cases:
            report[case] = run_case(case, folder, a)
    for case in cases:
        report[case]["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    report["planner_error"] = worst = max(abs(report[c]["planner_error"]) for c in cases)
    report["bound"] = BOUND
    print(json.dumps(report))
    report = with_unrun_cases(RESULTS, a.device, CASES, report)
    report["planner_error"] = max(abs(report[c]["planner_error"]) for c in CASES if c in report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if not a.no_check and worst > BOUND:
        print(f"planner_error {worst:.3f} exceeds {BOUND}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
