"""Does the opt-1.3b-4090 preset really fit one 24 GB GPU? A few steps of each of its three steps,
measured, next to the planner's estimate.

    python benchmarks/gpu_check.py                         # a CUDA GPU, no hub: the real sizes (~5 min on an H200)
    python benchmarks/gpu_check.py --device cpu --tiny     # CI: the same path on 2-block OPT models (~2 min)
    make gpu-check                                         # = the first

Random-weight OPT-1.3B (actor) and OPT-350M (reward model) are built from their real configs
(`rlhf_lite.plan.KNOWN_ARCHITECTURES`; an offline tokenizer with OPT's special ids), and a local
dataset whose prompts fill max_prompt_seq_len and whose answers fill max_length. Then the real
recipes run, each in a fresh process, with recipes/configs/opt-1.3b-4090/*.yaml as they are
(LoRA, bf16, gradient checkpointing; 8-bit where the preset asks for it) plus only `--max_steps`
and the paths: sft (`--steps` optimizer steps of 8 x 4 rows of 512 tokens), rm on its output,
ppo on both (answers forced to max_answer_seq_len), and sft once more through
`accelerate launch` with accelerate_configs/zero2.yaml on one GPU.

Per run it reports torch.cuda.max_memory_allocated and max_memory_reserved (peak RSS on a CPU),
seconds per step, the planner's estimate for exactly those settings (`python -m rlhf_lite.plan`,
its tensors without the CUDA context, as max_memory_allocated sees them) and its error, and the
verdict against --gpu-mem-gb (24): reserved memory plus the CUDA context must fit. Prints one
JSON object; a CUDA run at full size also writes it to benchmarks/results/gpu_check.json.

A GPU machine without network needs our dependencies as wheels besides torch: `make gpu-wheels`
(here, with network) downloads every locked package but torch and CUDA's into wheels/ for
CPython 3.12 on x86-64 Linux (PY_VERSION=3.11 for another); there,
`pip install --no-index --find-links wheels -e . && make gpu-check`.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from model_folders import random_opt_folder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "gpu_check.json"
PRESET = "opt-1.3b-4090"
GB = 2**30
# 2-block OPTs whose shapes keep the real ones' ratios, for the CPU run in CI.
TINY = {
    "hidden_size": 64,
    "ffn_dim": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "word_embed_proj_dim": 64,
    "max_position_embeddings": 512,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ inputs


def build_data(folder: Path, tokenizer, prompt_tokens: int, answer_tokens: int, rows: int) -> Path:
    """A preference set (local/jsonfile layout) whose prompts have about `prompt_tokens` tokens and
    whose answers about `answer_tokens`: the preset's lengths are what memory depends on."""
    from tests.tiny_models import CORPUS

    words = " ".join(CORPUS[:6]).split()

    def text(n_tokens: int, shift: int) -> str:
        ids = tokenizer(" ".join(words[(shift + i) % len(words)] for i in range(2 * n_tokens)))["input_ids"]
        return tokenizer.decode(ids[:n_tokens], skip_special_tokens=True).strip()

    make = lambda i: {
        "prompt": f"\n\nHuman: {text(prompt_tokens - 12, i)}\n\nAssistant:",  # noqa: E731
        "chosen": " " + text(answer_tokens, i + 1),
        "rejected": " " + text(answer_tokens, i + 2),
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.json").write_text(json.dumps([make(i) for i in range(rows)]))
    (folder / "eval.json").write_text(json.dumps([make(rows + i) for i in range(8)]))
    return folder


def step_overrides(a, work: Path) -> dict[str, list[str]]:
    """Each step's `--field value` overrides of the preset: shared by the runs and the planner."""
    common = ["--datasets", str(work / "data"), "--data_split", "1,1,1", "--report_to", "none"]
    trainer = [
        *common,
        "--max_steps",
        str(a.steps),
        "--save_strategy",
        "no",
        "--eval_strategy",
        "no",
        "--logging_steps",
        "1",
    ]
    sft = ["--model_name_or_path", str(work / "opt-1.3b"), *trainer]
    rm = ["--model_name_or_path", str(work / "opt-350m"), *trainer]
    ppo = [
        "--actor_model_name_or_path",
        str(work / "sft"),
        "--critic_model_name_or_path",
        str(work / "rm"),
        *common,
        "--max_steps",
        str(a.steps),
        "--save_steps",
        "0",
        "--num_warmup_steps",
        "0",
    ]
    if a.tiny:  # small enough for a CPU in seconds; bf16 matmuls have no fast path there
        trainer_small = [
            "--max_length",
            "64",
            "--gradient_accumulation_steps",
            "1",
            "--per_device_train_batch_size",
            "4",
        ]
        sft += trainer_small
        rm += trainer_small
        ppo += ["--max_prompt_seq_len", "32", "--max_answer_seq_len", "16"]
    if a.device == "cpu":
        sft += ["--use_cpu", "true", "--dtype", "fp32", "--bf16", "false"]
        rm += ["--use_cpu", "true", "--dtype", "fp32", "--bf16", "false"]
        ppo += ["--dtype", "fp32"]
    answer = "16" if a.tiny else str(preset_value("ppo", "max_answer_seq_len"))
    ppo += ["--min_new_tokens", answer]  # every answer runs to max_answer_seq_len
    return {"sft": sft, "rm": rm, "ppo": ppo}


def preset_value(step: str, key: str):
    import yaml

    return yaml.safe_load((ROOT / "recipes" / "configs" / PRESET / f"{step}.yaml").read_text())[key]


# ------------------------------------------------------------------ child: one recipe run


def child(spec: dict) -> dict:
    """Run recipes/<step>.py's main in this process; its peak memory."""
    import importlib.util

    import torch

    cuda = torch.cuda.is_available() and spec["device"] == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    path = ROOT / "recipes" / f"{spec['recipe']}.py"
    module_spec = importlib.util.spec_from_file_location(f"recipe_{spec['recipe']}", path)
    recipe = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(recipe)
    start = time.perf_counter()
    recipe.main(spec["argv"])
    out = {
        "wall_seconds": round(time.perf_counter() - start, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB, 3),
    }
    if cuda:
        out.update(
            max_allocated_gb=round(torch.cuda.max_memory_allocated() / GB, 3),
            max_reserved_gb=round(torch.cuda.max_memory_reserved() / GB, 3),
            gpu=torch.cuda.get_device_name(),
        )
    return out


# ------------------------------------------------------------------ parent


def run_step(name: str, recipe: str, argv: list[str], work: Path, a, launch: list[str] | None = None) -> dict:
    spec_file = work / f"{name}.spec.json"
    spec_file.write_text(json.dumps({"recipe": recipe, "argv": argv, "device": a.device}))
    result_file = work / f"{name}.result.json"
    cmd = [*(launch or [sys.executable]), str(Path(__file__).resolve()), "--_child", str(spec_file), str(result_file)]
    log(f"{name}: {' '.join(cmd[:6])} ...")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(work / f"{name}.log", "w", encoding="utf-8") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = (work / f"{name}.log").read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise SystemExit(f"{name} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return json.loads(result_file.read_text())


def seconds_per_step(output_dir: Path, recipe: str) -> float:
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    if recipe == "ppo":  # one generation batch = one step: generation + scoring + training
        times = [r["time/generation"] + r["time/scoring"] + r["time/training"] for r in rows if "time/training" in r]
        return round(sum(times) / len(times), 2)
    last = next(r for r in reversed(rows) if "train_runtime" in r)
    return round(last["train_runtime"] / last["step"], 2)


def planned(a, overrides: dict[str, list[str]], steps: tuple[str, ...], zero_stage: int | None = None) -> dict:
    """The planner's estimate of `steps` with the same settings (and ZeRO stage)."""
    from rlhf_lite.plan import plan_preset

    budget = a.gpu_mem_gb if a.device == "cuda" else None  # None: this machine's RAM
    out = {}
    for p in plan_preset(PRESET, steps, a.device, budget, 1, zero_stage, None, overrides):
        j = p.to_json()
        # max_memory_allocated sees the tensors, not the CUDA context and allocator margin
        tensors = j["peak_gb"] - j["components_gb"]["runtime"] if a.device == "cuda" else j["peak_gb"]
        out[p.step] = {
            "planned_gb": round(tensors, 3),
            "planned_peak_gb": j["peak_gb"],
            "planned_phase": j["peak_phase"],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--tiny", action="store_true", help="2-block OPT models and short sequences (CI on a CPU)")
    p.add_argument("--steps", type=int, default=3, help="optimizer steps (PPO: generation batches) per run")
    p.add_argument("--gpu-mem-gb", type=float, default=24.0, help="the budget of the verdict")
    p.add_argument("--no-zero2", action="store_true", help="skip the accelerate launch with ZeRO-2")
    p.add_argument("--workdir", help="keep the model folders and runs here (default: a temp dir)")
    p.add_argument("--output", help=f"write the JSON here (default: {RESULTS.relative_to(ROOT)} for a full CUDA run)")
    p.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._child:
        Path(a._child[1]).write_text(json.dumps(child(json.loads(Path(a._child[0]).read_text()))))
        return 0
    if a.device == "cpu":  # DeepSpeed (imported through PEFT) would announce it on stdout, which holds the JSON
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("no CUDA GPU is visible; use --device cpu --tiny for the CPU check")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as tmp:
        work = Path(a.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        dtype = "fp32" if a.device == "cpu" else "bf16"
        sizes = TINY if a.tiny else {}
        log("building random-weight OPT-1.3B and OPT-350M from their configs")
        from tests.tiny_models import make_tokenizer

        tokenizer = make_tokenizer("opt")
        vocab = {"vocab_size": len(tokenizer)} if a.tiny else {}
        random_opt_folder("facebook/opt-1.3b", work / "opt-1.3b", dtype, **sizes, **vocab)
        random_opt_folder("facebook/opt-350m", work / "opt-350m", dtype, **sizes, **vocab)
        lengths = (24, 40) if a.tiny else (preset_value("ppo", "max_prompt_seq_len") - 8, 300)
        build_data(work / "data", tokenizer, *lengths, rows=3 * 8 * 4 * a.steps + 24)

        overrides = step_overrides(a, work)
        report = {
            "preset": PRESET,
            "device": a.device,
            "tiny": a.tiny,
            "steps_per_run": a.steps,
            "budget_gb": a.gpu_mem_gb,
            "torch": torch.__version__,
            "runs": {},
        }
        for step in ("sft", "rm", "ppo"):
            out_dir = work / step
            run = run_step(
                step,
                step,
                [
                    "--config",
                    str(ROOT / "recipes" / "configs" / PRESET / f"{step}.yaml"),
                    *overrides[step],
                    "--output_dir",
                    str(out_dir),
                    "--overwrite_output_dir",
                    "true",
                ],
                work,
                a,
            )
            run["seconds_per_step"] = seconds_per_step(out_dir, step)
            report["runs"][step] = run
        if not a.no_zero2:
            launch = [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                "--config_file",
                str(ROOT / "accelerate_configs" / "zero2.yaml"),
                "--num_processes",
                "1",
            ]
            out_dir = work / "sft-zero2"
            run = run_step(
                "sft-zero2",
                "sft",
                [
                    "--config",
                    str(ROOT / "recipes" / "configs" / PRESET / "sft.yaml"),
                    *overrides["sft"],
                    "--output_dir",
                    str(out_dir),
                    "--overwrite_output_dir",
                    "true",
                ],
                work,
                a,
                launch,
            )
            run["seconds_per_step"] = seconds_per_step(out_dir, "sft")
            report["runs"]["sft-zero2"] = run
        # the same settings; on a CPU its host-memory estimate, against the peak RSS
        plans = planned(
            a, {k: [*v, "--output_dir", str(work / k)] for k, v in overrides.items()}, ("sft", "rm", "ppo")
        )
        if not a.no_zero2:
            zero2 = planned(a, {"sft": [*overrides["sft"], "--output_dir", str(work / "sft-zero2")]}, ("sft",), 2)
            plans["sft-zero2"] = zero2["sft"]
    from rlhf_lite.plan import CUDA_CONTEXT_BYTES

    for name, run in report["runs"].items():
        plan = plans[name]
        measured = run["max_allocated_gb"] if a.device == "cuda" else run["peak_rss_gb"]
        run.update(plan, planner_error=round((plan["planned_gb"] - measured) / measured, 4))
        if a.device == "cuda":
            need = run["max_reserved_gb"] + CUDA_CONTEXT_BYTES / GB
            run["fits"] = need <= a.gpu_mem_gb
            run["verdict"] = f"{'fits' if run['fits'] else 'does not fit'}: {need:.1f} of {a.gpu_mem_gb:g} GiB"
    report["fits"] = all(r.get("fits", True) for r in report["runs"].values())
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    report["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    text = json.dumps(report, indent=1)
    print(text)
    output = a.output or (RESULTS if a.device == "cuda" and not a.tiny else None)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
