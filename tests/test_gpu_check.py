"""`make gpu-check` on a CPU with tiny models (`--device cpu --tiny`): the GPU check's whole path
(model folders, data, the three recipes, a ZeRO-2 launch, the planner) runs in CI, so it cannot rot
between the sessions that have a GPU."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_on_a_cpu_with_tiny_models(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--device",
            "cpu",
            "--tiny",
            "--steps",
            "2",
            "--workdir",
            str(tmp_path / "work"),
            "--output",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["tiny"] and set(report["runs"]) == {"sft", "rm", "ppo", "sft-zero2"}
    for name, run in report["runs"].items():
        assert run["peak_rss_gb"] > 0.3 and run["seconds_per_step"] > 0, name
        assert run["planned_gb"] > 0 and abs(run["planner_error"]) < 1, name  # a CPU run's runtime dominates
    assert json.loads(proc.stdout) == report
