"""One PPO iteration of our engine next to TRL 1.12's `trl.experimental.ppo.PPOTrainer` and TRL's `GRPOTrainer`.

    python benchmarks/bench_ppo.py                          # LoRA and full fine-tuning on this CPU (see "Run time")
    python benchmarks/bench_ppo.py --cases lora --repeats 1 # a quick check
    python benchmarks/bench_ppo.py --peers grpo             # only the GRPO comparison (no TRL 1.12 virtualenv)
    python benchmarks/bench_ppo.py --layers 8 --response-length 16   # a smaller model and shorter answers
    python benchmarks/bench_ppo.py --device cuda --batch 32 --response-length 128   # on a GPU (see below)

What is compared. One PPO iteration = sample answers to one batch of prompts, score them
(reference log-probabilities, values, reward) and run the PPO update(s) on them:
  ours  rlhf_lite.ppo: RLHFEngine + PPOTrainer, `generate_experience(batch)` then `train_rlhf(exp)`;
  TRL   TRL 1.12's `trl.experimental.ppo.PPOTrainer` (TRL 1.13 deleted it), one update of its own
        `train()` loop, run by benchmarks/_trl_ppo_worker.py in a throw-away virtualenv that this
        script creates (default benchmarks/.venv-trl112, gitignored; reused while its pins match)
        with the project's own versions of transformers, accelerate and peft and the same torch,
        so that only the PPO implementation differs.
Identical settings on both sides: the same model folders read from disk (the embedded
SmolLM2-135M-Instruct as the actor and, with a seeded fresh one-output head, as the critic and
reward model; `--layers N` keeps its bottom N blocks), the same prompts (the first generation
batch of the demo preset's PPO prompts, left-padded with the pad token), batch size, answer
length (every answer is exactly --response-length tokens: min_new_tokens on our side, no stop
token on TRL's), sampling (temperature 1, no top-k / top-p), one PPO epoch in one mini-batch of
the whole batch, fp32, no gradient checkpointing, dropout off, constant learning rate, and
  lora  LoRA r=8, alpha 16, no dropout, on q/k/v/o/gate/up/down_proj of the actor; the reference is
        the actor with its adapter off. The critic trains in full: TRL's PPOTrainer applies
        peft_config to the policy only, so our critic_lora_dim is 0 too.
  full  every weight of actor and critic trained; the reference is a second copy of the actor.

GRPO (--peers grpo). The same iteration of ours next to one optimizer step of the project's own TRL
(the .venv's, 1.16 when written) `trl.GRPOTrainer`, run by benchmarks/_trl_grpo_worker.py in the
project's .venv, at equal numbers of generated and trained answer tokens: ours generates one answer
to each of --batch (B) prompts, GRPO G = --num-generations (default 4) answers to each of the first
B/G of them, every answer exactly --response-length (L) tokens on both sides (GRPO:
generation_kwargs min_new_tokens), so both sample and train on B x L answer tokens. GRPOConfig:
per_device_train_batch_size B (answers), gradient_accumulation_steps 1, steps_per_generation 1 and
num_iterations 1 (one optimizer step on each generation batch, as our one epoch of one mini-batch),
beta 0.05 (TRL's default is 0, which skips the reference model; with beta > 0 GRPO runs the
reference forward our KL penalty needs, at our kl_coef), the reward model folder above as its reward
function (rlhf_lite.online.RewardModelFunction, as the project's GRPO recipe scores), the same
sampling, learning rate, fp32, no gradient checkpointing, dropout off, and the lora / full cases as
above (LoRA on the policy, the reference its adapter off; full: a second copy). The work is not the
same: GRPO has no critic, no values and no GAE, and its B/G prompts hold fewer prompt tokens than
our B, so the comparison asks what our PPO costs per answer token next to a critic-free trainer,
not which loop is faster at equal work. Reported per case: seconds_per_1k_tokens = median seconds per iteration /
(B x L / 1000) for each side, and ratio_vs_grpo = ours / GRPO's.

How it is measured. For each case both sides are loaded once, in two processes that stay up,
then the parent alternates them iteration by iteration (ours/TRL, then TRL/ours, ...), so that
a change in the machine's load hits both alike; while one runs the other waits idle on its
stdin. The first iteration of each side is a warm-up (allocator, optimizer states, lazy
initialisation) and is left out; the report gives the median of --repeats iterations after it.
Both processes use --threads threads (torch.set_num_threads and OMP_NUM_THREADS). Each peer has its
own pair of processes: with both peers a case runs ours against TRL-PPO, then a fresh ours against
GRPO, so each comparison is measured exactly as when it runs alone.
Timed regions:
  ours  generate_experience + train_rlhf on a prompt batch already on the device; the split is
        the engine's own time/generation, time/scoring and time/training.
  TRL   from the parent's "run" command to the `on_step_end` callback of that update: fetching the
        prompt batch from its dataloader, generation, scoring, rewards / GAE / whitening, the PPO
        update, its metrics and the scheduler step. Split: generation = up to the end of its
        `batch_generation`; scoring = from there to its first training forward (so it also holds
        the rewards and GAE, which are in our training); training = the rest.
  GRPO  from the parent's "run" command to the `on_step_end` callback of that optimizer step:
        fetching the prompts from its dataloader, generation, the reference and reward forwards,
        the group advantages, the policy forward and backward, clipping, the optimizer and
        scheduler step. Split: generation = up to the end of its `_generate`; scoring = from there
        to the end of `_generate_and_score_completions`; training = the rest.

Prints one JSON object and writes it to benchmarks/results/bench_ppo.json (--results elsewhere; a
run of some peers writes only theirs):
  {"ratio_vs_trl": <worst case>, "ratio_vs_grpo": <worst case>, "target": 0.8,
   "lora": {"ratio_vs_trl", "ours": {"seconds", "generation", "scoring", "training", "all_seconds"}, "trl": {...},
            "grpo": {"ratio_vs_grpo", "tokens_per_iteration",
                     "ours": {"seconds_per_1k_tokens", "seconds", ...}, "grpo": {...}, ...}},
   "full": {...}, "settings": {...}, "versions": {...}, "timed_regions": {...}, ...}
seconds are medians over the repeats (each phase's median on its own, so the phases need not add
up exactly). ratio_vs_trl = our median / TRL's median. Exits 1 when a case's ratio_vs_trl exceeds
the target (0.8) unless --no-check; ratio_vs_grpo has no target (the work differs, see above).

Run time: setting up the TRL virtualenv the first time takes ~2 min (later runs only check its
pins); each case then loads both sides (~15 s each) and runs 2 x (1 + --repeats) iterations, and
as much again for the GRPO comparison.
The numbers are only as quiet as the machine: with other jobs running (a load average of 5 on
these 2 cores) one iteration of the full model took 100-230 s, the default run of the TRL-PPO
comparison 44 min, and one phase varied up to 10x between iterations. Run it on an idle machine
(load_average in the JSON tells); there an iteration takes 17-25 s and the TRL-PPO comparison
about 8 minutes.

On a GPU: run it from the project's .venv with CUDA torch (`make install` picks it when nvidia-smi
is present). `--device cuda` puts both sides on the GPU; the TRL virtualenv then installs
`torch==<the project's torch version>` from PyPI, which on Linux is the CUDA build (pass
--trl-torch to choose another requirement, e.g. for a different CUDA variant, and --trl-venv to
keep that virtualenv apart from a CPU one); the GRPO side needs nothing, it runs in the .venv.
Use larger settings there, e.g. --batch 32 --response-length 128, or the default ones for a
like-for-like run. On a CPU-only machine whose pip would fetch a CUDA build of torch for the TRL
virtualenv, set PIP_EXTRA_INDEX_URL to PyTorch's CPU index first, as for `make install`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from model_folders import fresh_head_critic, save_folder  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_ppo.json"
TRL_WORKER = ROOT / "benchmarks" / "_trl_ppo_worker.py"
GRPO_WORKER = ROOT / "benchmarks" / "_trl_grpo_worker.py"
DEFAULT_TRL_VENV = ROOT / "benchmarks" / ".venv-trl112"
TRL_REQUIREMENT = "trl==1.12.*"  # the last TRL with PPOTrainer
TARGET = 0.8  # the bound on ours / TRL's
CASES = ("lora", "full")
PEERS = ("trl_ppo", "grpo")  # TRL 1.12's PPOTrainer; the project's TRL's GRPOTrainer
KL_COEF = 0.05  # our PPO's init_kl_coef, TRL-PPO's kl_coef and GRPO's beta
EMBEDDED = "embedded:smollm2-135m"
LORA = {
    "r": 8,
    "alpha": 16,
    "dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _env(threads: int, ours: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TRL_EXPERIMENTAL_SILENCE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    if ours:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    else:  # the TRL venv must see none of the project's packages
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
    return env


# ------------------------------------------------------------------ the TRL 1.12 virtualenv


def _pins(torch_requirement: str) -> list[str]:
    """What the TRL venv holds: TRL 1.12 over the project's own versions of the libraries it shares."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in ("transformers", "accelerate", "peft")]
    return [torch_requirement, TRL_REQUIREMENT, *pins]


def ensure_trl_venv(venv: Path, torch_requirement: str) -> Path:
    """The python of a virtualenv holding TRL 1.12, created on first use and reused while its pins
    match (a marker file written last records them, so an interrupted install is redone)."""
    from filelock import FileLock

    pins = _pins(torch_requirement)
    python, marker = venv / "bin" / "python", venv / "bench_ppo_pins.json"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv) + ".lock"):
        if python.is_file() and marker.is_file() and json.loads(marker.read_text()) == pins:
            return python
        _log(f"setting up {venv} with {' '.join(pins)} (once; ~2 min)")
        if not python.is_file():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        # torch alone first: resolved together with TRL, a bare torch would pull a CUDA build.
        subprocess.run(pip + [pins[0]], check=True)
        subprocess.run(pip + pins, check=True)
        subprocess.run([str(python), "-c", "import trl.experimental.ppo"], check=True, env=_env(1, ours=False))
        marker.write_text(json.dumps(pins))
    return python


# ------------------------------------------------------------------ child: build the model folders and prompts


def prepare(folder: str, layers: int | None, batch: int, max_prompt_len: int) -> dict:
    """Actor and critic folders (plain safetensors HF checkpoints, read by both sides) and the
    token ids of the first generation batch of the demo preset's PPO prompts."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from rlhf_lite.data import load_step_rows
    from rlhf_lite.models import load_tokenizer, resolve_model_path
    from rlhf_lite.ppo import PPOArguments, PromptBatches, encode_prompts

    source = resolve_model_path(EMBEDDED)
    tokenizer = load_tokenizer(source)
    config = AutoConfig.from_pretrained(source)
    depth = config.num_hidden_layers if layers is None else min(layers, config.num_hidden_layers)
    out = Path(folder) / f"smollm2-135m-{depth}l"
    paths = {"actor": out / "actor", "critic": out / "critic"}
    if not (paths["actor"] / "config.json").is_file():
        config = AutoConfig.from_pretrained(source, num_hidden_layers=depth)
        model = AutoModelForCausalLM.from_pretrained(source, config=config, dtype=torch.float32)
        save_folder(model, tokenizer, paths["actor"])
        del model
    fresh_head_critic(source, paths["critic"], num_hidden_layers=depth)

    args = PPOArguments(
        per_device_generation_batch_size=batch, per_device_training_batch_size=batch, max_prompt_seq_len=max_prompt_len
    )
    rows, _ = load_step_rows(["demo"], "train", part=2, seed=args.seed)
    prompts = PromptBatches(encode_prompts(tokenizer, rows, max_prompt_len), args, tokenizer.pad_token_id)
    _, first = next(prompts.batches())
    ids = [row[mask.bool()].tolist() for row, mask in zip(first["input_ids"], first["attention_mask"])]
    return {
        "actor": str(paths["actor"]),
        "critic": str(paths["critic"]),
        "layers": depth,
        "total_layers": AutoConfig.from_pretrained(source).num_hidden_layers,
        "prompts": ids,
    }


# ------------------------------------------------------------------ child: our side


def our_worker(spec_path: str) -> int:
    """Our engine, one iteration per "run" line on stdin (the protocol of _trl_ppo_worker.py)."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # whatever the libraries print goes to stderr; stdout carries the protocol
    sys.stdout = sys.stderr
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    start = time.perf_counter()
    import torch

    torch.set_num_threads(spec["threads"])
    import accelerate
    import peft
    import transformers
    from accelerate.utils import set_seed

    from rlhf_lite.batching import pad_batch
    from rlhf_lite.models import load_tokenizer
    from rlhf_lite.ppo import PPOArguments, PPOTrainer, RLHFEngine
    from rlhf_lite.ppo.engine import make_accelerator

    def send(obj: dict) -> None:
        protocol.write(json.dumps(obj) + "\n")

    prompts, R, lora = spec["prompts"], spec["response_length"], spec["lora"]
    B = len(prompts)
    args = PPOArguments(
        actor_model_name_or_path=spec["actor"],
        critic_model_name_or_path=spec["critic"],
        dtype="fp32",
        actor_lora_dim=lora["r"] if lora else 0,
        critic_lora_dim=0,
        lora_alpha_ratio=lora["alpha"] / lora["r"] if lora else 2.0,
        lora_dropout=lora["dropout"] if lora else 0.0,
        lora_module_name=lora["target_modules"] if lora else None,
        per_device_generation_batch_size=B,
        per_device_training_batch_size=B,
        generation_batches=1,
        ppo_epochs=spec["ppo_epochs"],
        max_prompt_seq_len=max(map(len, prompts)),
        max_answer_seq_len=R,
        min_new_tokens=R,  # every answer exactly R tokens, as TRL's without a stop token
        temperature=spec["temperature"],
        top_k=0,
        top_p=1.0,
        actor_learning_rate=spec["learning_rate"],
        critic_learning_rate=spec["learning_rate"],
        lr_scheduler_type="constant",
        init_kl_coef=spec["kl_coef"],
        whiten_advantages=True,  # TRL always whitens
        seed=spec["seed"],
        report_to="none",
    )
    set_seed(spec["seed"])
    accelerator = make_accelerator(cpu=spec["device"] == "cpu")
    tokenizer = load_tokenizer(spec["actor"])
    engine = RLHFEngine(
        spec["actor"],
        spec["critic"],
        tokenizer,
        num_total_iters=spec["iterations"],
        args=args,
        accelerator=accelerator,
    )
    trainer = PPOTrainer(engine, args)
    device = accelerator.device
    ids, mask = pad_batch(prompts, tokenizer.pad_token_id, "left")
    batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    optimizer = engine.optimizer.optimizer if hasattr(engine.optimizer, "optimizer") else engine.optimizer
    send(
        {
            "event": "ready",
            "load_seconds": round(time.perf_counter() - start, 2),
            "versions": {
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "peft": peft.__version__,
                "accelerate": accelerate.__version__,
            },
            "trainable_parameters": sum(p.numel() for p in engine.model.parameters() if p.requires_grad),
            "optimizer": type(optimizer).__name__ + (" (fused)" if optimizer.defaults.get("fused") else ""),
            "device": str(device),
        }
    )
    while sys.stdin.readline().strip() == "run":
        t0 = time.perf_counter()
        exp = trainer.generate_experience(batch)
        assert exp is not None and exp.seq.shape == (B, ids.shape[1] + R), "answers were not full length"
        trainer.train_rlhf(exp)
        if device.type == "cuda":
            torch.cuda.synchronize()
        stats = trainer.stats
        send(
            {
                "event": "iteration",
                "seconds": time.perf_counter() - t0,
                "generation": stats["time/generation"],
                "scoring": stats["time/scoring"],
                "training": stats["time/training"],
                "sequence_shape": list(exp.seq.shape),
                "score_mean": stats["reward/score"],
            }
        )
    return 0


# ------------------------------------------------------------------ parent


class Worker:
    """One side's process: loaded once, then asked for one iteration at a time."""

    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path):
        self.name, self.log_path = name, log_path
        self.log: IO = open(log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = "".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines(True)[-30:])
            raise SystemExit(f"{self.name} side failed (exit {self.proc.returncode}); end of {self.log_path}:\n{tail}")
        return json.loads(line)

    def run(self) -> dict:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        result = self.read()
        assert result["event"] == "iteration", result
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _summary(iterations: list[dict]) -> dict:
    def median(key: str) -> float:
        return round(statistics.median(it[key] for it in iterations), 3)

    return {
        "seconds": median("seconds"),
        "generation": median("generation"),
        "scoring": median("scoring"),
        "training": median("training"),
        "all_seconds": [round(it["seconds"], 3) for it in iterations],
    }


def _spec(case: str, prepared: dict, folder: Path, a: argparse.Namespace) -> tuple[dict, Path]:
    """Our side's spec (also the TRL-PPO side's; the GRPO side's adds to it) and the file it is written to."""
    spec = {
        "actor": prepared["actor"],
        "critic": prepared["critic"],
        "prompts": prepared["prompts"],
        "lora": LORA if case == "lora" else None,
        "response_length": a.response_length,
        "ppo_epochs": a.ppo_epochs,
        "iterations": 1 + a.repeats,
        "threads": a.threads,
        "device": a.device,
        "seed": a.seed,
        "learning_rate": 1e-5,
        "kl_coef": KL_COEF,
        "temperature": 1.0,
        "output_dir": str(folder / f"trl-{case}"),
    }
    spec_file = folder / f"{case}.spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    return spec, spec_file


def _alternate(label: str, workers: dict[str, Worker], repeats: int) -> tuple[dict, dict]:
    """Wait until both workers are loaded, then run 1 + repeats iterations of each, alternated:
    (each side's ready message, each side's iterations, the warm-up first)."""
    try:
        ready = {}  # both load at the same time (not timed); nothing is timed before both are ready
        for name, worker in workers.items():
            ready[name] = worker.read()
            _log(
                f"{label}: {name} loaded in {ready[name]['load_seconds']:.0f} s "
                f"({ready[name]['trainable_parameters']:,} trainable parameters)"
            )
        names = list(workers)
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for i in range(1 + repeats):
            # Alternate who goes first, so that a drift in the machine's load is shared.
            for name in names if i % 2 == 0 else names[::-1]:
                result = workers[name].run()
                runs[name].append(result)
                _log(
                    f"{label}: {name} {'warm-up' if i == 0 else f'iteration {i}'}: {result['seconds']:.1f} s "
                    f"(generation {result['generation']:.1f}, scoring {result['scoring']:.1f}, "
                    f"training {result['training']:.1f})"
                )
    finally:
        for worker in workers.values():
            worker.close()
    return ready, runs


def _our_worker(case: str, spec_file: Path, folder: Path, a: argparse.Namespace, log_name: str) -> Worker:
    me = str(Path(__file__).resolve())
    argv = [sys.executable, me, "--_worker", str(spec_file)]
    return Worker("ours", argv, _env(a.threads, True), folder / f"{case}.{log_name}.log")


def run_case(case: str, prepared: dict, trl_python: Path, folder: Path, a: argparse.Namespace) -> tuple[dict, dict]:
    """Ours against TRL 1.12's PPOTrainer: (the case's report, each side's library versions)."""
    spec, spec_file = _spec(case, prepared, folder, a)
    workers = {
        "ours": _our_worker(case, spec_file, folder, a, "ours"),
        "trl": Worker(
            "trl",
            [str(trl_python), str(TRL_WORKER), str(spec_file)],
            _env(a.threads, False),
            folder / f"{case}.trl.log",
        ),
    }
    ready, runs = _alternate(case, workers, a.repeats)
    shapes = {name: {tuple(r["sequence_shape"]) for r in results} for name, results in runs.items()}
    if shapes["ours"] != shapes["trl"] or len(shapes["ours"]) != 1:
        raise SystemExit(f"{case}: the two sides did not work on the same shapes: {shapes}")
    ours, trl = _summary(runs["ours"][1:]), _summary(runs["trl"][1:])
    return {
        "ratio_vs_trl": round(ours["seconds"] / trl["seconds"], 3),
        "ours": ours,
        "trl": trl,
        "warmup_seconds": {name: round(results[0]["seconds"], 3) for name, results in runs.items()},
        "trainable_parameters": {name: r["trainable_parameters"] for name, r in ready.items()},
        "optimizer": {name: r["optimizer"] for name, r in ready.items()},
        "sequence_shape": runs["ours"][0]["sequence_shape"],
        "mean_score": {
            name: round(statistics.mean(r["score_mean"] for r in results), 4) for name, results in runs.items()
        },
    }, {name: r["versions"] for name, r in ready.items()}


def run_grpo_case(case: str, prepared: dict, folder: Path, a: argparse.Namespace) -> tuple[dict, dict]:
    """Ours against TRL's GRPOTrainer at equal answer tokens: (the case's "grpo" report, each side's
    library versions)."""
    spec, spec_file = _spec(case, prepared, folder, a)
    G = a.num_generations
    grpo_spec = {
        **spec,
        "prompts": prepared["prompts"][: a.batch // G],  # B/G prompts x G answers = our B answers
        "num_generations": G,
        "beta": KL_COEF,
        "output_dir": str(folder / f"grpo-{case}"),
    }
    grpo_file = folder / f"{case}.grpo.spec.json"
    grpo_file.write_text(json.dumps(grpo_spec), encoding="utf-8")
    workers = {
        "ours": _our_worker(case, spec_file, folder, a, "ours-vs-grpo"),
        "grpo": Worker(
            "grpo",
            [sys.executable, str(GRPO_WORKER), str(grpo_file)],
            _env(a.threads, True),
            folder / f"{case}.grpo.log",
        ),
    }
    ready, runs = _alternate(f"{case} vs GRPO", workers, a.repeats)
    tokens = a.batch * a.response_length
    answer_tokens = {r["answer_tokens"] for r in runs["grpo"]}
    if answer_tokens != {tokens}:
        raise SystemExit(f"{case}: GRPO trained on {answer_tokens} answer tokens per step, ours on {tokens}")
    ours, grpo = _summary(runs["ours"][1:]), _summary(runs["grpo"][1:])
    for side in (ours, grpo):
        side["seconds_per_1k_tokens"] = round(side["seconds"] / (tokens / 1000), 3)
    return {
        "ratio_vs_grpo": round(ours["seconds_per_1k_tokens"] / grpo["seconds_per_1k_tokens"], 3),
        "tokens_per_iteration": tokens,
        "prompts": {"ours": a.batch, "grpo": a.batch // G},
        "num_generations": {"ours": 1, "grpo": G},
        "ours": ours,
        "grpo": grpo,
        "warmup_seconds": {name: round(results[0]["seconds"], 3) for name, results in runs.items()},
        "trainable_parameters": {name: r["trainable_parameters"] for name, r in ready.items()},
        "optimizer": {name: r["optimizer"] for name, r in ready.items()},
        "sequence_shape": {name: results[0]["sequence_shape"] for name, results in runs.items()},
        "mean_score": {
            name: round(statistics.mean(r["score_mean"] for r in results), 4) for name, results in runs.items()
        },
    }, {name: r["versions"] for name, r in ready.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--repeats", type=int, default=3, help="timed iterations per side and case, after one warm-up")
    p.add_argument("--batch", type=int, default=8, help="prompts per iteration (= the PPO mini-batch)")
    p.add_argument("--response-length", type=int, default=40, help="answer tokens, exactly (demo preset: 40)")
    p.add_argument("--max-prompt-len", type=int, default=96, help="longer demo prompts are skipped (demo preset: 96)")
    p.add_argument("--ppo-epochs", type=int, default=1)
    p.add_argument(
        "--peers",
        nargs="+",
        choices=PEERS,
        default=list(PEERS),
        help="what ours is compared with: trl_ppo (TRL 1.12's PPOTrainer), grpo (TRL's GRPOTrainer); default both",
    )
    p.add_argument(
        "--num-generations", type=int, default=4, help="GRPO's group size G: --batch/G prompts x G answers (default 4)"
    )
    p.add_argument("--layers", type=int, default=None, help="keep only the bottom N of the model's 30 blocks")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each side")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--trl-venv", type=Path, default=DEFAULT_TRL_VENV, help="where the TRL 1.12 virtualenv lives")
    p.add_argument(
        "--trl-torch",
        default=None,
        help="torch requirement of the TRL virtualenv (default: torch==<the project's version>)",
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    p.add_argument("--workdir", default=None, help="keep the model folders, specs and logs here (default: a temp dir)")
    p.add_argument("--no-check", action="store_true", help=f"do not fail when ratio_vs_trl > {TARGET}")
    p.add_argument("--_prepare", help=argparse.SUPPRESS)
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._worker:
        return our_worker(a._worker)
    if a._prepare:
        print(json.dumps(prepare(a._prepare, a.layers, a.batch, a.max_prompt_len)))
        return 0

    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    if not cases or any(c not in CASES for c in cases):
        p.error(f"--cases takes {', '.join(CASES)}")
    if a.repeats < 1:
        p.error("--repeats must be >= 1")
    peers = [peer for peer in PEERS if peer in a.peers]
    if "grpo" in peers and (a.num_generations < 2 or a.batch % a.num_generations):
        p.error(f"--num-generations must be >= 2 and divide --batch ({a.batch})")
    began, load_start = time.perf_counter(), os.getloadavg()[0]
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda, but this torch sees no CUDA device")
    torch_requirement = a.trl_torch or f"torch=={torch.__version__.split('+')[0]}"
    trl_python = ensure_trl_venv(a.trl_venv.resolve(), torch_requirement) if "trl_ppo" in peers else None

    with tempfile.TemporaryDirectory(prefix="bench_ppo.") as tmp:
        folder = Path(a.workdir or tmp).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        me = str(Path(__file__).resolve())
        argv_prepare = [
            sys.executable,
            me,
            "--_prepare",
            str(folder),
            "--batch",
            str(a.batch),
            "--max-prompt-len",
            str(a.max_prompt_len),
        ] + (["--layers", str(a.layers)] if a.layers else [])
        proc = subprocess.run(argv_prepare, env=_env(a.threads, True), cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if proc.returncode:
            raise SystemExit(f"building the models failed (exit {proc.returncode})")
        prepared = json.loads(proc.stdout.splitlines()[-1])
        lengths = [len(x) for x in prepared["prompts"]]
        report: dict = {"benchmark": "bench_ppo", "device": a.device, "threads": a.threads, "target": TARGET}
        versions: dict = {}
        for case in cases:
            report[case] = {}
            if "trl_ppo" in peers:
                report[case], versions = run_case(case, prepared, trl_python, folder, a)
            if "grpo" in peers:
                report[case]["grpo"], grpo_versions = run_grpo_case(case, prepared, folder, a)
                versions = {**versions, "ours": grpo_versions["ours"], "grpo": grpo_versions["grpo"]}
    worst = None
    if "trl_ppo" in peers:
        report["ratio_vs_trl"] = worst = max(report[c]["ratio_vs_trl"] for c in cases)
    if "grpo" in peers:
        report["ratio_vs_grpo"] = max(report[c]["grpo"]["ratio_vs_grpo"] for c in cases)
    report["settings"] = {
        "model": f"{EMBEDDED} (SmolLM2-135M-Instruct), {prepared['layers']} of {prepared['total_layers']} blocks; "
        "critic = reward model = the same network with a seeded one-output head",
        "batch": a.batch,
        "prompt_tokens": {"padded_to": max(lengths), "lengths": lengths},
        "response_length": a.response_length,
        "ppo_epochs": a.ppo_epochs,
        "mini_batches": 1,
        "dtype": "fp32",
        "lora": {**LORA, "on": "actor only; critic trained in full on both sides"},
        "sampling": "temperature 1, top_k 0, top_p 1",
        "learning_rate": 1e-5,
        "lr_scheduler": "constant",
        "kl_coef": KL_COEF,
        "gradient_checkpointing": False,
        "warmup_iterations": 1,
        "repeats": a.repeats,
        "peers": peers,
        "threads": a.threads,
        "seed": a.seed,
    }
    if "grpo" in peers:
        report["settings"]["grpo"] = {
            "num_generations": a.num_generations,
            "prompts": a.batch // a.num_generations,
            "answers": a.batch,
            "answer_tokens_per_iteration": a.batch * a.response_length,
            "beta": KL_COEF,
            "per_device_train_batch_size": a.batch,
            "gradient_accumulation_steps": 1,
            "steps_per_generation": 1,
            "num_iterations": 1,
            "generation_kwargs": {"min_new_tokens": a.response_length},
            "reward_funcs": "rlhf_lite.online.RewardModelFunction over the reward model folder",
            "lora": "on the policy, as for our actor; the reference is the policy with its adapter off",
            "full": "every policy weight trained; the reference is a second copy loaded from the actor folder",
            "other": "TRL's defaults: loss_type dapo, scale_rewards group, epsilon 0.2, max_grad_norm 1.0",
        }
    report["versions"] = {**versions, "ours": {**versions.get("ours", {}), "rlhf_lite": _git_head()}}
    report["timed_regions"] = {
        "ours": "generate_experience + train_rlhf on a prompt batch already on the device; split = the "
        "engine's time/generation, time/scoring, time/training (advantages are in training)",
        "trl": "'run' command -> on_step_end of that update of train(): dataloader batch, generation, scoring, "
        "rewards/GAE/whitening, PPO update, metrics, scheduler step; split: generation = to the end of "
        "batch_generation, scoring = to the first training forward (includes rewards/GAE), training = rest",
        "grpo": "'run' command -> on_step_end of that optimizer step of train(): dataloader batch, generation, "
        "reference forward, reward model, group advantages, policy forward + backward, optimizer and scheduler "
        "step; split: generation = to the end of _generate, scoring = to the end of "
        "_generate_and_score_completions, training = rest; ours the same as in the TRL-PPO comparison",
    }
    report["notes"] = [
        "each side runs its own defaults where the settings do not reach: ours clips each model's gradient norm "
        "at 1.0 (DeepSpeed-Chat's default), TRL's PPO loop never clips; the optimizers are in 'optimizer' of "
        "each case (transformers' default for TRL is the fused AdamW)",
        "work each side does: TRL takes the actor's log-probabilities from the scores generate returns, runs "
        "3 scoring forwards (reference, value, reward) and 2 training forwards (policy, value) on the full "
        "padded batch; ours runs 4 scoring forwards (actor and critic with autograd on) whose graphs the "
        "first update reuses (so no training forward in one epoch of one mini-batch), on groups of rows "
        "that skip their shared padding, projects only the answer positions on the vocabulary, generates "
        "with merged copies of the LoRA weights, and on a CPU keeps freed memory in the process",
        "the sampled answers differ between the sides (mean_score is a sanity check, not a comparison); their "
        "shapes are identical and checked",
        "medians of --repeats iterations after one warm-up; the sides alternate iteration by iteration; "
        "load_average is the machine's 1-minute load at the start and end (2 or more on 2 cores means "
        "another job competed and the numbers are noisy)",
    ]
    if "grpo" in peers:
        report["notes"].append(
            "grpo: equal answer tokens, not equal work: ours generates one answer to each of --batch prompts and "
            "runs PPO on it (actor, reference, critic and reward forwards, actor and critic updates); GRPO "
            "generates --num-generations answers to each of --batch/G prompts (so fewer, repeated prompt tokens) "
            "and runs the reference and reward forwards, then one policy forward and backward (no critic); "
            "seconds_per_1k_tokens = median seconds / (batch x response_length / 1000) on both sides, and "
            "ratio_vs_grpo = ours / GRPO's; beta 0.05 (TRL's default is 0, no reference model) so that GRPO "
            "computes the reference log-probabilities our KL penalty needs"
        )
    report["load_average"] = {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)}
    report["seconds"] = round(time.perf_counter() - began, 1)
    report["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(json.dumps(report))
    a.results.parent.mkdir(parents=True, exist_ok=True)
    a.results.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if not a.no_check and worst is not None and worst > TARGET:
        print(f"ratio_vs_trl {worst:.3f} exceeds the target {TARGET}", file=sys.stderr)
        return 1
    return 0


def _git_head() -> str:
    """The commit our side ran, '+dirty' when the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "rlhf_lite"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
