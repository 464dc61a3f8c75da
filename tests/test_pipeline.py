"""`python -m rlhf_lite.pipeline`: each flag changes the commands it runs (the recipes and
evaluation scripts themselves are tested in their own files)."""

import json
import sys
from pathlib import Path

import pytest
import yaml

from rlhf_lite import pipeline
from rlhf_lite.errors import ConfigError, RLHFLiteError, cli
from rlhf_lite.presets import CONFIGS


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
    assert sft[:3] == [sys.executable, "-m", "rlhf_lite.sft"]  # the package's module, not the checkout's script
    assert sft[sft.index("--config") + 1] == str(CONFIGS / "presets/demo/sft.yaml")
    assert sft[sft.index("--output_dir") + 1] == str(tmp_path / "out" / "sft")
    ppo = ran[2][1]
    assert ppo[ppo.index("--actor_model_name_or_path") + 1] == str(tmp_path / "out" / "sft")
    assert [name for name, _ in ran[3:]] == ["judge", "rm_eval", "prompt_eval"]  # no PPO actor (nor judge) here


def test_deepspeed_chat_flags(monkeypatch, tmp_path):
    ran = commands(
        [
            "--actor-model",
            "facebook/opt-1.3b",
            "--reward-model",
            "facebook/opt-350m",
            "--deployment-type",
            "single_gpu",
            "--steps",
            "1",
            "2",
            "--no-eval",
        ],
        monkeypatch,
        tmp_path,
    )
    (_, sft), (_, rm) = ran
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(tmp_path / "out" / "logs" / "accelerate_single_gpu.yaml"),
        "-m",
    ]
    assert sft[:6] == launch and rm[:6] == launch
    assert yaml.safe_load(Path(launch[4]).read_text()) == yaml.safe_load(
        (CONFIGS / "accelerate/single_gpu.yaml").read_text()
    )
    assert "presets/opt-1.3b-4090/sft.yaml" in sft[sft.index("--config") + 1]  # the preset follows
    assert sft[sft.index("--model_name_or_path") + 1] == "facebook/opt-1.3b"
    assert rm[rm.index("--model_name_or_path") + 1] == "facebook/opt-350m"


def test_accelerate_config_overrides_the_deployment_type(monkeypatch, tmp_path):
    ran = commands(
        ["--deployment-type", "multi_node", "--accelerate-config", "zero2", "--steps", "1", "--no-eval"],
        monkeypatch,
        tmp_path,
    )
    config = yaml.safe_load(Path(ran[0][1][4]).read_text())
    assert config["distributed_type"] == "DEEPSPEED"  # with its DeepSpeed file found from any folder:
    assert config["deepspeed_config"]["deepspeed_config_file"] == str(CONFIGS / "deepspeed" / "zero2.json")
    assert pipeline.launcher(pipeline.parse_args(["--deployment-type", "single_node"]))[4].endswith("zero3.yaml")


def test_flags_are_taken_in_snake_case_too(tmp_path):
    kebab = pipeline.parse_args(["--actor-model", "m", "--output-dir", str(tmp_path), "--no-eval"])
    snake = pipeline.parse_args(["--actor_model", "m", f"--output_dir={tmp_path}", "--no_eval"])
    assert vars(snake) == vars(kebab) and snake.actor_model == "m" and not snake.eval


def test_steps_and_no_eval_choose_what_runs(monkeypatch, tmp_path):
    assert commands(["--steps", "--no-eval"], monkeypatch, tmp_path) == []
    fake_outputs(tmp_path / "out", "sft", "rm", "ppo/actor")
    names = [name for name, _ in commands(["--steps"], monkeypatch, tmp_path)]
    assert names == ["judge", "ppo_eval"]  # the judge is trained before the evaluations
    (tmp_path / "out" / "ppo" / "actor" / "config.json").unlink()
    assert [n for n, _ in commands(["--steps"], monkeypatch, tmp_path)] == ["judge", "rm_eval", "prompt_eval"]
    fake_outputs(tmp_path / "out", "ppo/actor")
    fake_outputs(tmp_path / "out", "judge")
    ran = dict(commands(["--steps"], monkeypatch, tmp_path))
    assert list(ran) == ["judge", "ppo_eval"]  # which reports both reward models' accuracies
    judge = ran["judge"]
    assert judge[1:3] == ["-m", "rlhf_lite.rm"] and judge[judge.index("--config") + 1].endswith("demo/judge.yaml")
    ppo_eval = ran["ppo_eval"]
    for flag in ("--judge", "--base", "--open-prompts"):
        assert flag in ppo_eval
    assert ppo_eval[ppo_eval.index("--judge") + 1] == str(tmp_path / "out" / "judge")
    assert ppo_eval[1:3] == ["-m", "rlhf_lite.eval.ppo_eval"]


@pytest.mark.parametrize(
    "preset, data, split, length",
    [
        ("hh-cpu", "Dahoas/rm-static", "test", ""),
        ("zh-cpu", "zwh9029/rm-static-m2m100-zh-jianti", "test", " --max-length 1024"),
    ],
)
def test_evaluations_read_the_held_out_pairs_as_step_2_does(monkeypatch, tmp_path, preset, data, split, length):
    fake_outputs(tmp_path / "out", "sft", "rm", "ppo/actor", "judge")
    ran = dict(commands(["--preset", preset, "--steps"], monkeypatch, tmp_path))
    assert ran["judge"][ran["judge"].index("--config") + 1].endswith(f"{preset}/judge.yaml")
    ppo_eval = " ".join(ran["ppo_eval"])
    assert f"--data {data} --data-dir ../shared/datasets --split {split}{length} --open-prompts" in ppo_eval


def test_step_3_without_step_outputs_names_the_command(tmp_path):
    args = pipeline.parse_args(["--preset", "demo", "--output-dir", str(tmp_path)])
    with pytest.raises(ConfigError, match="make sft PRESET=demo"):
        pipeline.step_command(args, 3)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--accelerate-config", "nope", "--steps", "1"], "unknown accelerate config 'nope'; known: cpu, multi_gpu"),
    ],
)
def test_bad_flags_are_one_line_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: pipeline.main([*argv, "--output-dir", str(tmp_path)]))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_run_keeps_the_output_in_the_log_and_shows_progress(tmp_path, capsys):
    log = tmp_path / "logs" / "x.log"
    child = (
        "import warnings; from rlhf_lite.progress import Progress\n"
        "print('hello'); warnings.warn('library noise')\n"
        "with Progress(4, 'x') as bar:\n"
        "    for i in range(4): bar.update(1, loss=1.0 / (i + 1))\n"
    )
    assert pipeline.run("x", [sys.executable, "-c", child], log) > 0
    out = capsys.readouterr()
    assert "hello" in log.read_text() and "library noise" in log.read_text()
    console = (out.out + out.err).strip().splitlines()  # off a terminal: what it does, then where it ended
    assert console[0] == f"x: x (log: {log})" and console[1].startswith("x: 4/4  loss 0.25, ") and len(console) == 2
    assert not log.with_suffix(".progress").exists()


def test_a_failed_step_shows_the_end_of_its_log(tmp_path):
    log = tmp_path / "logs" / "x.log"
    with pytest.raises(
        RLHFLiteError, match=r"(?s)x failed \(exit 3\); the end of its log .*x.log:\n  .*why it failed"
    ):
        pipeline.run("x", [sys.executable, "-c", "print('why it failed'); raise SystemExit(3)"], log)


def test_summary_reports_times_accuracies_the_comparison_table_and_samples(tmp_path):
    args = pipeline.parse_args(["--output-dir", str(tmp_path)])
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "rm_eval.json").write_text(json.dumps({"accuracy": 0.93, "n": 102}))
    (tmp_path / "eval" / "judge_eval.json").write_text(json.dumps({"accuracy": 0.85, "n": 102}))
    measures = lambda r, j: {
        "reward": r,
        "judge": j,
        "facts": 0.5,
        "distinct_1": 0.4,
        "distinct_2": 0.7,  # noqa: E731
        "repeated_3gram_rate": 0.01,
        "echo_share": 0.0,
        "short_share": 0.1,
        "mean_length": 12.5,
        "eos_share": 0.9,
        "n": 40,
    }
    gains = {
        "reward_gain": 0.5,
        "reward_gain_stderr": 0.1,
        "win_rate": 0.7,
        "judge_gain": 0.2,
        "judge_gain_stderr": 0.05,
        "judge_win_rate": 0.6,
        "kl_to_baseline": 1.2,
        "kl_k3_to_baseline": 0.8,
    }
    models = {"base": measures(-1.0, -0.5), "baseline": measures(0.1, 0.3), "model": measures(0.6, 0.5)}
    opened = {
        **gains,
        "n": 64,
        "models": {k: {kk: vv for kk, vv in v.items() if kk != "facts"} for k, v in models.items()},
    }
    answers = [
        {"prompt": f"Human: hi {i}", "baseline": {"text": " yo", "reward": 0.1, "judge": 0.2}} for i in range(5)
    ]
    (tmp_path / "eval" / "ppo_eval.json").write_text(
        json.dumps({**gains, "n": 40, "facts_n": 30, "models": models, "open": opened, "answers": answers})
    )
    text = pipeline.summary(args, {"sft": 120.0, "rm": 180.0})
    assert "sft 2.0  rm 3.0  total 5.0 min" in text
    assert (
        "reward model (step 2) accuracy on held-out pairs: 0.930" in text
        and "judge accuracy on held-out pairs: 0.850" in text
    )
    lines = text.splitlines()
    assert any(line.split() == ["base", "SFT", "PPO"] for line in lines)
    assert "held-out prompts (n=40, facts 30)" in text and "open prompts (n=64)" in text
    assert next(line for line in lines if "reward, judge" in line).split()[-3:] == ["-0.500", "+0.300", "+0.500"]
    assert sum("fact accuracy" in line for line in lines) == 1  # the open prompts have no answer key
    assert "gain under step 2's model +0.500 ± 0.100 (win 0.70); under judge +0.200 ± 0.050 (win 0.60)" in text
    assert "KL 1.200 (k3 0.800)" in text
    assert (
        f"{'=' * 30} prompt 3/40 {'=' * 30}\nHuman: hi 2\n--- baseline (reward 0.1000, judge 0.2000) ---\nyo" in text
    )
    assert "Human: hi 3" not in text  # three samples


def test_a_bad_value_in_step_3s_config_stops_the_pipeline_before_step_1(monkeypatch, tmp_path, capsys):
    from rlhf_lite import presets

    (tmp_path / "presets" / "bad").mkdir(parents=True)
    for step in ("sft", "rm", "ppo"):
        text = (CONFIGS / "presets" / "demo" / f"{step}.yaml").read_text()
        if step == "ppo":
            text = text.replace("init_kl_coef: 0.05", "init_kl_coef: -0.05")
        (tmp_path / "presets" / "bad" / f"{step}.yaml").write_text(text)
    monkeypatch.setattr(presets, "CONFIGS", tmp_path)
    monkeypatch.setattr(pipeline, "run", lambda *a: pytest.fail("a step ran"))
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: pipeline.main(["--preset", "bad", "--output-dir", str(tmp_path / "out")]))
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert "presets/bad" in err and "init_kl_coef must be a number >= 0, got -0.05" in err


@pytest.mark.parametrize("algorithm", ["dpo", "grpo", "rloo"])
def test_algorithm_runs_as_step_3_from_step_1s_model_and_is_evaluated(monkeypatch, tmp_path, algorithm):
    out = tmp_path / "out"
    fake_outputs(out, "sft", "rm", algorithm, "judge")
    ran = dict(commands(["--algorithm", algorithm, "--steps", "3"], monkeypatch, tmp_path))
    step = ran[algorithm]
    assert step[step.index("-m") + 1] == f"rlhf_lite.{algorithm}"
    assert step[step.index("--config") + 1] == str(CONFIGS / f"presets/demo/{algorithm}.yaml")
    assert step[step.index("--model_name_or_path") + 1] == str(out / "sft")
    assert ("--reward_model_name_or_path" in step) == (algorithm != "dpo")
    evaluation = ran[f"{algorithm}_eval"]
    assert evaluation[evaluation.index("--model") + 1] == str(out / algorithm)
    assert evaluation[evaluation.index("--baseline") + 1] == str(out / "sft")


def test_algorithm_config_mistake_is_refused_before_step_1(monkeypatch, tmp_path):
    bad = tmp_path / "grpo.yaml"  # 16 answers a step cannot be groups of 3
    bad.write_text(
        (CONFIGS / "presets/demo/grpo.yaml").read_text().replace("num_generations: 4", "num_generations: 3")
    )
    real = pipeline.preset_file
    monkeypatch.setattr(pipeline, "preset_file", lambda preset, name: bad if name == "grpo" else real(preset, name))
    with pytest.raises(ConfigError, match="num_generations"):
        commands(["--algorithm", "grpo", "--steps", "1", "3"], monkeypatch, tmp_path)


def test_dpo_without_the_sft_model_names_the_command(tmp_path):
    args = pipeline.parse_args(["--preset", "demo", "--output-dir", str(tmp_path), "--algorithm", "dpo"])
    with pytest.raises(ConfigError, match="(?s)dpo needs step 1.s model.*make sft PRESET=demo"):
        pipeline.step_command(args, 3)
