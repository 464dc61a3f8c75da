"""rlhf_lite.plot: PNGs from SFT- and PPO-like metrics.jsonl files, and its one-line errors."""

import json
import subprocess
import sys

import pytest

from rlhf_lite.plot import main, read_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def write_run(path, records):
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def sft_run(tmp_path):
    train = [{"step": s, "epoch": s / 10, "loss": 3.0 - s / 10, "learning_rate": 1e-4} for s in range(1, 11)]
    evals = [{"step": s, "epoch": s / 10, "eval_loss": 3.1 - s / 10, "eval_accuracy": 0.5 + s / 40} for s in (5, 10)]
    return write_run(tmp_path / "sft", train + evals + [{"step": 10, "train_loss": 2.5, "epoch": 1.0}])


def ppo_run(tmp_path):
    return write_run(
        tmp_path / "ppo",
        [
            {
                "step": s,
                "reward/score": s / 5,
                "reward/score_ema": s / 6,
                "kl/sequence": 0.01 * s,
                "kl/coef": 0.1,
                "loss/actor": -0.1,
                "loss/critic": 0.5 / s,
                "answer/length": 20 + s,
                "clipfrac/actor": 0.1,
            }
            for s in range(1, 6)
        ],
    )


def test_sft_and_ppo_runs_give_one_valid_png_per_group(tmp_path, capsys):
    sft, ppo = sft_run(tmp_path), ppo_run(tmp_path)
    written = main([str(sft), str(ppo)])
    assert sorted(p.name for p in written if p.parent == sft / "plots") == ["accuracy.png", "loss.png"]
    assert sorted(p.name for p in written if p.parent == ppo / "plots") == [
        "answer_length.png",
        "kl.png",
        "ppo_loss.png",
        "reward.png",
    ]
    assert all(p.read_bytes().startswith(PNG) for p in written)
    assert capsys.readouterr().out.split() == [str(p) for p in written]


def test_out_folder_and_several_runs(tmp_path):
    sft, ppo = sft_run(tmp_path), ppo_run(tmp_path)
    assert {p.parent for p in main([str(sft), "--out", str(tmp_path / "one")])} == {tmp_path / "one"}
    assert {p.parent.name for p in main([str(sft), str(ppo), "--out", str(tmp_path / "many")])} == {"sft", "ppo"}


def test_series_sorted_with_latest_value_per_step(tmp_path):
    run = write_run(
        tmp_path / "resumed",
        [{"step": 2, "loss": 1.0}, {"step": 1, "loss": 2.0}, {"step": 2, "loss": 0.5, "eval_loss": None}],
    )
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() + "\n")  # blank line is fine
    assert read_metrics(run) == {"loss": [(1, 2.0), (2, 0.5)]}


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "does not exist"),
        ("no_metrics", "has no metrics.jsonl"),
        ("bad_json", "metrics.jsonl, line 2: not valid JSON"),
        ("no_step", "metrics.jsonl, line 1: expected a JSON object with a numeric 'step'"),
        ("nothing_to_plot", "holds none of the plotted metrics"),
    ],
)
def test_errors_are_one_line_exit_2(tmp_path, case, message):
    run = tmp_path / "run"
    if case != "missing":
        run.mkdir()
    lines = {
        "bad_json": '{"step": 1, "loss": 1}\n{"step": 2, "loss": \n',
        "no_step": '{"loss": 1}\n',
        "nothing_to_plot": '{"step": 1, "train_runtime": 3}\n',
    }
    if case in lines:
        (run / "metrics.jsonl").write_text(lines[case])
    result = subprocess.run([sys.executable, "-m", "rlhf_lite.plot", str(run)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
