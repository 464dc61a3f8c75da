"""Serving speed: rlhf_lite.serve (the app of `transformers serve`) against a bare `generate` on the same prompts.

    python benchmarks/bench_serve.py                     # the demo's PPO actor if trained, else the embedded model
    python benchmarks/bench_serve.py --model outputs/demo/sft --new-tokens 64 --repeats 5

Both sides answer the same open prompts (English and Chinese, rendered by the model's chat template)
one at a time, greedily, with the same generation config: EOS suppressed until --new-tokens
(min_new_tokens) and a Human turn as a stop string, so both generate the same tokens (checked).

  bare:       AutoModelForCausalLM.generate in this process, one prompt at a time.
  server:     `python -m rlhf_lite.serve` in its own process, the official `openai` client asking on
              loopback, non-streamed (wall time per request: HTTP, template, tokenizing, decoding).
  streamed:   the same requests streamed (time to the first token and to the last).
  concurrent: --clients streaming clients at once, each with its own prompt: all must complete
              (the server generates one answer at a time, so later clients wait for their first token);
  batched:    the same against `serve --continuous-batching`, which generates their answers together
              (transformers applies no per-request generation config there: answers may end at EOS).

The sides alternate over --repeats rounds after one warm-up round; medians are reported.
ratio_vs_generate = server tokens/s / bare tokens/s (the issue's target: >= 0.9).
Prints one JSON object and writes it to benchmarks/results/bench_serve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_serve.json"
DEMO_ACTOR = ROOT / "outputs" / "demo" / "ppo" / "actor"
EMBEDDED = "embedded:smollm2-135m"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = str(DEMO_ACTOR) if (DEMO_ACTOR / "config.json").is_file() else EMBEDDED
    p.add_argument("--model", default=default, help="model folder (default: the demo's PPO actor, else embedded)")
    p.add_argument("--prompts", type=int, default=8, help="open prompts per round, half English, half Chinese")
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--clients", type=int, default=8, help="concurrent streaming clients")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    from openai import OpenAI
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf_lite.data.chat_template import human_assistant_template
    from rlhf_lite.data.rows import HUMAN
    from rlhf_lite.eval.judging import LANGUAGES, OPEN_PROMPTS
    from rlhf_lite.eval.scoring import generation_config
    from rlhf_lite.models import resolve_model_path
    from rlhf_lite.serve import server_process

    path = str(resolve_model_path(a.model))
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = tokenizer.chat_template or human_assistant_template(tokenizer)  # as the server
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    config = generation_config(model, tokenizer, a.new_tokens)
    config.min_new_tokens, config.stop_strings = a.new_tokens, [HUMAN]
    per_language = -(-a.prompts // len(LANGUAGES))
    table = json.loads(OPEN_PROMPTS.read_text(encoding="utf-8"))
    questions = [q for lang in LANGUAGES for q in table[lang][:per_language]][: a.prompts]
    chats = [[{"role": "user", "content": q}] for q in questions]
    prompts = [tokenizer.apply_chat_template(c, add_generation_prompt=True)["input_ids"] for c in chats]

    request = dict(model=path, temperature=0, max_tokens=a.new_tokens)
    request["extra_body"] = {"generation_config": config.to_json_string(use_diff=False)}

    @torch.no_grad()
    def bare() -> tuple[float, list[int]]:
        start, counts = time.perf_counter(), []
        for ids in prompts:
            out = model.generate(torch.tensor([ids]), generation_config=config, tokenizer=tokenizer)
            counts.append(out.shape[1] - len(ids))
        return time.perf_counter() - start, counts

    def served(client) -> tuple[float, list[int]]:
        start, counts = time.perf_counter(), []
        for chat in chats:
            counts.append(client.chat.completions.create(messages=chat, **request).usage.completion_tokens)
        return time.perf_counter() - start, counts

    def stream(client, chat) -> tuple[float, int]:
        """(seconds to the first token, answer tokens) of one streamed request."""
        start, first, tokens = time.perf_counter(), None, 0
        for chunk in client.chat.completions.create(messages=chat, stream=True, **request):
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
            tokens = chunk.usage.completion_tokens if chunk.usage else tokens
        return (first or time.perf_counter()) - start, tokens

    def streamed(client) -> tuple[float, list[int], list[float]]:
        start, runs = time.perf_counter(), [stream(client, chat) for chat in chats]
        return time.perf_counter() - start, [r[1] for r in runs], [r[0] for r in runs]

    def concurrent(base: str) -> tuple[float, list[int], list[float]]:
        clients = [OpenAI(base_url=base, api_key="none", max_retries=0, timeout=600) for _ in range(a.clients)]
        runs = [None] * a.clients

        def run(i):
            runs[i] = stream(clients[i], chats[i % len(chats)])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(a.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - start, [r[1] for r in runs], [r[0] for r in runs]

    times = {side: [] for side in ("bare", "server", "streamed", "concurrent", "batched")}
    firsts = {side: [] for side in ("streamed", "concurrent", "batched")}
    tokens = {}
    os.environ["OMP_NUM_THREADS"] = str(a.threads)  # the server's, as this process's
    with server_process(path, timeout=600, output=subprocess.DEVNULL) as base:
        client = OpenAI(base_url=base, api_key="none", max_retries=0, timeout=600)
        for repeat in range(a.repeats + 1):  # round 0 warms every side up and is not counted
            rounds = {"bare": bare(), "server": served(client), "streamed": streamed(client)}
            rounds["concurrent"] = concurrent(base)
            for side, (seconds, counts, *first) in rounds.items():
                tokens[side] = counts
                if repeat:
                    times[side].append(seconds)
                    if first:  # the streamed sides'
                        firsts[side] += first[0]
    with server_process(path, flags=["--continuous-batching"], timeout=600, output=subprocess.DEVNULL) as base:
        for repeat in range(a.repeats + 1):
            seconds, tokens["batched"], first = concurrent(base)
            if repeat:
                times["batched"].append(seconds)
                firsts["batched"] += first
    assert tokens["bare"] == tokens["server"] == tokens["streamed"], tokens  # the same work on every side
    assert tokens["concurrent"] == [a.new_tokens] * a.clients, tokens["concurrent"]  # every client completed
    # Continuous batching takes no per-request generation config (no min_new_tokens): answers end at EOS.
    assert len(tokens["batched"]) == a.clients and all(tokens["batched"]), tokens["batched"]
    median = {side: statistics.median(t) for side, t in times.items()}
    total = sum(tokens["bare"])
    rate = {side: total / median[side] for side in ("bare", "server", "streamed")}

    def clients(side: str) -> dict:
        return {
            "clients": a.clients,
            "completed": len(tokens[side]),
            "seconds": round(median[side], 2),
            "tokens_per_s": round(sum(tokens[side]) / median[side], 1),
            "first_token_seconds": {"median": round(statistics.median(firsts[side]), 3),
                                    "max": round(max(firsts[side]), 3)},
        }  # fmt: skip

    result = {
        "ratio_vs_generate": round(rate["server"] / rate["bare"], 4),
        "streamed_ratio_vs_generate": round(rate["streamed"] / rate["bare"], 4),
        "tokens_per_s": {side: round(r, 1) for side, r in rate.items()},
        "first_token_seconds_median": round(statistics.median(firsts["streamed"]), 3),
        # one answer at a time: the last client waits for the others' answers
        "concurrent": clients("concurrent"),
        # --continuous-batching: the clients' answers generated together
        "concurrent_batched": clients("batched"),
        "seconds": {side: [round(t, 3) for t in ts] for side, ts in times.items()},
        "settings": {
            "model": a.model,
            "prompts": len(chats),
            "new_tokens": a.new_tokens,
            "prompt_tokens": [len(ids) for ids in prompts],
            "threads": a.threads,
            "repeats": a.repeats,
            "torch": torch.__version__,
        },
    }
    print(json.dumps(result, indent=2))
    a.results.parent.mkdir(parents=True, exist_ok=True)
    a.results.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
