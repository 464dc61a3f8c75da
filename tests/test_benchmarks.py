"""`make bench`'s training and generation benchmarks, run once at toy sizes: they call the package
as the recipes do, so a change to the package that breaks them shows here, not in the next session
that measures."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
