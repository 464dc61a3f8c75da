"""`python -m rlhf_lite.pipeline`: each flag changes the commands it runs (the recipes and
evaluation scripts themselves are tested in their own files)."""

import json
import sys
from pathlib import Path

import pytest

from rlhf_lite import pipeline
from rlhf_lite.errors import ConfigError, RLHFLiteError, cli

ROOT = Path(__file__).resolve().parents[1]


def commands(argv, monkeypatch, tmp_path):
    """The (name, command) pairs main would run, without running them."""
    ran = []
    monkeypatch.setattr(pipeline, "run", lambda name, cmd, log: ran.append((name, cmd)) or 1.0)
    pipeline.main([*argv, "--output-dir", str(tmp_path / "out")])
    return ran


def fake_outputs(out: Path, *steps):
    for step in steps:
        (out / step).mkdir(parents=True, exist_ok=True)
        (out / step / "config.json").write_text("{}")


def test_default_is_the_demo_preset_with_its_three_steps_then_evaluation(monkeypatch, tmp_path):
    fake_outputs(tmp_path / "out", "sft", "rm")  # step 3 checks that steps 1 and 2 wrote their models
    ran = commands([], monkeypatch, tmp_path)
    assert [name for name, _ in ran[:3]] == ["sft", "rm", "ppo"]
    sft = ran[0][1]
    assert sft[:2] == [sys.executable, str(ROOT / "recipes" / "sft.py")]
    assert sft[sft.index("--config") + 1] == str(ROOT / "recipes/configs/demo/sft.yaml")
    assert sft[sft.index("--output_dir") + 1] == str(tmp_path / "out" / "sft")
    ppo = ran[2][1]
    assert ppo[ppo.index("--actor_model_name_or_path") + 1] == str(tmp_path / "out" / "sft")
    assert {"prompt_eval", "perplexity", "rm_eval"} <= {name for name, _ in ran[3:]}


def test_deepspeed_chat_flags(monkeypatch, tmp_path):
    ran = commands(["--actor-model", "facebook/opt-1.3b", "--reward-model", "facebook/opt-350m",
                    "--deployment-type", "single_gpu", "--steps", "1", "2", "--no-eval"], monkeypatch, tmp_path)
    (_, sft), (_, rm) = ran
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(ROOT / "accelerate_configs" / "single_gpu.yaml")]
    assert sft[:5] == launch and rm[:5] == launch
    assert "recipes/configs/opt-1.3b-4090/sft.yaml" in sft[sft.index("--config") + 1]  # the preset follows
    assert sft[sft.index("--model_name_or_path") + 1] == "facebook/opt-1.3b"
    assert rm[rm.index("--model_name_or_path") + 1] == "facebook/opt-350m"


def test_accelerate_config_overrides_the_deployment_type(monkeypatch, tmp_path):
    ran = commands(["--deployment-type", "multi_node", "--accelerate-config", "zero2", "--steps", "1", "--no-eval"],
                   monkeypatch, tmp_path)
    assert ran[0][1][4] == str(ROOT / "accelerate_configs" / "zero2.yaml")
    assert pipeline.launcher(pipeline.parse_args(["--deployment-type", "single_node"]))[4].endswith("zero3.yaml")


def test_steps_and_no_eval_choose_what_runs(monkeypatch, tmp_path):
    assert commands(["--steps", "--no-eval"], monkeypatch, tmp_path) == []
    fake_outputs(tmp_path / "out", "sft", "rm", "ppo/actor")
    names = [name for name, _ in commands(["--steps"], monkeypatch, tmp_path)]
    assert names == ["prompt_eval", "perplexity", "rm_eval", "ppo_eval"]


def test_step_3_without_step_outputs_names_the_command(tmp_path):
    args = pipeline.parse_args(["--preset", "demo", "--output-dir", str(tmp_path)])
    with pytest.raises(ConfigError, match="make sft PRESET=demo"):
        pipeline.step_command(args, 3)


@pytest.mark.parametrize("argv, message", [(["--preset", "nope"], "unknown preset 'nope'"),
                                           (["--accelerate-config", "nope", "--steps", "1"], "does not exist")])
def test_bad_flags_are_one_line_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: pipeline.main([*argv, "--output-dir", str(tmp_path)]))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_run_keeps_the_output_and_fails_clearly(tmp_path, capsys):
    log = tmp_path / "logs" / "x.log"
    assert pipeline.run("x", [sys.executable, "-c", "print('hello')"], log) > 0
    assert log.read_text() == "hello\n" and "hello" in capsys.readouterr().out
    with pytest.raises(RLHFLiteError, match="x failed .exit 3.; its output is in"):
        pipeline.run("x", [sys.executable, "-c", "raise SystemExit(3)"], log)


def test_summary_reports_times_accuracy_reward_gain_and_samples(tmp_path):
    args = pipeline.parse_args(["--output-dir", str(tmp_path)])
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "rm_eval.json").write_text(json.dumps({"accuracy": 0.93, "n": 102}))
    (tmp_path / "eval" / "ppo_eval.json").write_text(json.dumps(
        {"reward_baseline": 0.1, "reward_model": 0.6, "reward_gain": 0.5, "reward_gain_stderr": 0.1, "win_rate": 0.7, "kl_to_baseline": 1.2,
         "n": 40}))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "ppo_eval.log").write_text(
        f"{'=' * 30} prompt 1/40 {'=' * 30}\nHuman: hi\n--- baseline (reward 0.1) ---\nyo\n\nmetric  value\n")
    text = pipeline.summary(args, {"sft": 120.0, "rm": 180.0})
    assert "sft            2.0 min" in text and "total          5.0 min" in text
    assert "accuracy on held-out pairs: 0.930" in text and "gain +0.500 ± 0.100" in text and "win rate 0.70" in text
    assert "Human: hi" in text and "metric" not in text.split("Human: hi")[1]
