"""Rollout generation speed: the PPO engine's generation vs a bare `generate` call.

    python benchmarks/bench_generate.py                    # demo settings on this CPU (~3 min on 2 idle cores)
    python benchmarks/bench_generate.py --batch 16 --new-tokens 64 --repeats 7
    python benchmarks/bench_generate.py --device cuda      # on a GPU: the same comparison there

Both sides use the embedded SmolLM2-135M (the demo's actor), the same left-padded batch of demo
prompts (split 2 of the demo data, as step 3 reads them) and the same sampling settings
(temperature 1, no top-k / top-p, like recipes/configs/demo/ppo.yaml). Every answer is forced to
--new-tokens tokens (min_new_tokens), so both sides generate exactly the same number of tokens.

  engine: PPOTrainer.generate_experience on an RLHFEngine (critic = the same model with a fresh
          one-output head); timed is its own "time/generation" (the generate call inside the
          engine's ZeRO-3-aware context, the answer mask and empty-answer check), not the scoring
          that follows.
  bare:   AutoModelForCausalLM.from_pretrained(...).generate(...) with the same GenerationConfig
          fields, on a separately loaded copy of the model.

The two alternate, after one warm-up call each; medians over --repeats are reported.
ratio_vs_generate = engine tokens/s / bare tokens/s (the issue's target: >= 0.95).
Prints one JSON object and writes it to benchmarks/results/bench_generate.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from model_folders import fresh_head_critic  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_generate.json"
EMBEDDED = "embedded:smollm2-135m"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8, help="prompts per generation (demo preset: 8)")
    p.add_argument("--prompt-len", type=int, default=96, help="max_prompt_seq_len (demo preset: 96)")
    p.add_argument("--new-tokens", type=int, default=40, help="answer length (demo preset's maximum: 40)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM, GenerationConfig

    from rlhf_lite.models import load_tokenizer, resolve_model_path
    from rlhf_lite.ppo import PPOArguments, PPOTrainer, PromptBatches, RLHFEngine, encode_prompts
    from rlhf_lite.training import step_rows

    actor = Path(resolve_model_path(EMBEDDED))
    with tempfile.TemporaryDirectory() as folder:
        critic = fresh_head_critic(actor, Path(folder) / "critic")
        args = PPOArguments(
            datasets=["demo"],
            data_split="2,4,4",
            output_dir=folder,
            report_to="none",
            per_device_generation_batch_size=a.batch,
            per_device_training_batch_size=a.batch,
            max_prompt_seq_len=a.prompt_len,
            max_answer_seq_len=a.new_tokens,
            min_new_tokens=a.new_tokens,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
        )
        tokenizer = load_tokenizer(str(actor))
        accelerator = Accelerator(cpu=a.device == "cpu")
        engine = RLHFEngine(str(actor), str(critic), tokenizer, num_total_iters=1, args=args, accelerator=accelerator)
    trainer = PPOTrainer(engine, args)
    rows, _ = step_rows(args, 2, need_answers=False)
    prompts = PromptBatches(
        encode_prompts(tokenizer, rows, a.prompt_len), args, tokenizer.pad_token_id, device=accelerator.device
    )
    _, batch = next(prompts.batches())

    bare = AutoModelForCausalLM.from_pretrained(actor, dtype=torch.float32).to(accelerator.device).eval()
    fields = (
        "max_new_tokens",
        "min_new_tokens",
        "do_sample",
        "temperature",
        "top_k",
        "top_p",
        "eos_token_id",
        "pad_token_id",
        "bos_token_id",
        "use_cache",
    )
    config = GenerationConfig(**{k: getattr(trainer.generation_config, k) for k in fields})
    tokens = batch["input_ids"].shape[0] * a.new_tokens

    def sync() -> None:
        if accelerator.device.type == "cuda":
            torch.cuda.synchronize()

    def engine_seconds() -> float:
        exp = trainer.generate_experience(batch)
        assert exp is not None and int(exp.mask.sum()) <= tokens
        return exp.time_generation

    @torch.no_grad()
    def bare_seconds() -> float:
        sync()
        start = time.perf_counter()
        out = bare.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], generation_config=config
        )
        sync()
        assert out.shape[1] == batch["input_ids"].shape[1] + a.new_tokens
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"engine": [], "bare": []}
    for repeat in range(a.repeats + 1):  # the first round warms both up and is not counted
        for side, run in (("engine", engine_seconds), ("bare", bare_seconds)):
            torch.manual_seed(repeat)
            seconds = run()
            if repeat:
                times[side].append(seconds)
    median = {side: statistics.median(t) for side, t in times.items()}
    result = {
        "ratio_vs_generate": round(median["bare"] / median["engine"], 4),
        "engine_tokens_per_s": round(tokens / median["engine"], 1),
        "bare_tokens_per_s": round(tokens / median["bare"], 1),
        "engine_seconds": [round(t, 3) for t in times["engine"]],
        "bare_seconds": [round(t, 3) for t in times["bare"]],
        "settings": {
            "model": EMBEDDED,
            "batch": int(batch["input_ids"].shape[0]),
            "prompt_tokens": int(batch["input_ids"].shape[1]),
            "new_tokens": a.new_tokens,
            "repeats": a.repeats,
            "threads": a.threads,
            "device": a.device,
            "sampling": "temperature 1",
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    a.results.parent.mkdir(parents=True, exist_ok=True)
    a.results.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
