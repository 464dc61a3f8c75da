"""`make bench`'s training and generation benchmarks, run once at toy sizes: they call the package
as the recipes do, so a change to the package that breaks them shows here, not in the next session
that measures."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_models import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]

SMOKE = {
    "bench_generate": ["--batch", "2", "--prompt-len", "32", "--new-tokens", "4", "--repeats", "1"],
    "bench_train": ["--repeats", "1", "--warmup", "0", "--peak-size", "256", "--set", "max_length=48"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_runs_and_reports_its_ratio(tmp_path, name):
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *SMOKE[name], "--results", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    ratios = [result["ratio_vs_generate"]] if name == "bench_generate" else result["ratio_vs_torch"].values()
    assert all(r > 0 for r in ratios)


@pytest.mark.slow
def test_bench_ppo_grpo_peer_runs_and_reports_per_token_times(tmp_path):
    """bench_ppo's GRPO peer (TRL's GRPOTrainer in this venv, no TRL 1.12 virtualenv to build) at toy
    size: one case, 2 blocks, 4 answers of 4 tokens (1 prompt x 4 generations on GRPO's side)."""
    out = tmp_path / "bench_ppo.json"
    argv = ["--cases", "lora", "--layers", "2", "--response-length", "4", "--batch", "4", "--repeats", "1"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ppo.py"), *argv, "--peers", "grpo", "--no-check"]
        + ["--workdir", str(tmp_path / "work"), "--results", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    grpo = result["lora"]["grpo"]
    assert grpo["tokens_per_iteration"] == 4 * 4
    assert grpo["prompts"] == {"ours": 4, "grpo": 1} and grpo["num_generations"] == {"ours": 1, "grpo": 4}
    for side in ("ours", "grpo"):
        times = grpo[side]
        assert times["seconds_per_1k_tokens"] == pytest.approx(times["seconds"] / 0.016, rel=1e-2)
        assert len(times["all_seconds"]) == 1 and times["seconds"] > 0
    assert grpo["ratio_vs_grpo"] > 0 and result["ratio_vs_grpo"] == grpo["ratio_vs_grpo"]
    assert "ratio_vs_trl" not in result and "trl" not in result["lora"]  # that peer was not asked for
    assert result["settings"]["grpo"]["beta"] > 0  # a reference forward on GRPO's side, as in our PPO


@pytest.mark.slow
def test_bench_serve_runs_and_reports_its_ratio(tmp_path):
    """bench_serve at toy size: a tiny Llama behind the server (transformers batches Llama, not OPT,
    continuously), 2 prompts, 3 concurrent clients."""
    model = make_tiny_model(tmp_path / "model", "llama")
    out = tmp_path / "bench_serve.json"
    argv = ["--model", str(model), "--prompts", "2", "--new-tokens", "4", "--clients", "3", "--repeats", "1"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_serve.py"), *argv, "--results", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["ratio_vs_generate"] > 0 and result["streamed_ratio_vs_generate"] > 0
    assert result["concurrent"]["completed"] == result["concurrent_batched"]["completed"] == 3
    assert len(result["seconds"]["bare"]) == len(result["seconds"]["batched"]) == 1
