"""`make compare` (rlhf_lite.eval.compare): trains only what is missing, then judges every algorithm
against the SFT model on the same prompts, on tiny models."""

import json
import shutil

import pytest

from rlhf_lite import pipeline
from rlhf_lite.eval import compare
from tests.tiny_models import make_tiny_model


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """outputs/<preset> with tiny stand-ins for every step's model (all algorithms: copies of the SFT model
    but DPO's, another seed, so that one algorithm really differs)."""
    root = tmp_path_factory.mktemp("compare")
    out = root / "out"
    sft = make_tiny_model(root / "m", "llama")
    other = make_tiny_model(root / "m2", "llama", seed=3)
    for step, source in [("sft", sft), ("ppo/actor", sft), ("dpo", other), ("grpo", sft), ("rloo", sft)]:
        shutil.copytree(source, out / step)
    shutil.copytree(make_tiny_model(root / "r", "llama", "reward", seed=1), out / "rm")
    shutil.copytree(make_tiny_model(root / "j", "llama", "reward", seed=2), out / "judge")
    return out


def test_only_missing_steps_are_trained_with_the_presets_commands(monkeypatch, tmp_path):
    out = tmp_path / "out"
    for step in ("sft", "rm", "judge", "ppo/actor"):
        (out / step).mkdir(parents=True)
        (out / step / "config.json").write_text("{}")
    ran = []
    monkeypatch.setattr(compare, "run", lambda name, cmd, log: ran.append((name, cmd)))
    args = compare.parser().parse_args(["--preset", "demo", "--output-dir", str(out)])
    args.output_dir = out
    compare.train_missing(args)
    assert [name for name, _ in ran] == ["dpo", "grpo", "rloo"]
    grpo = ran[1][1]
    assert grpo[grpo.index("-m") + 1] == "rlhf_lite.grpo"
    assert grpo[grpo.index("--reward_model_name_or_path") + 1] == str(out / "rm")
    assert grpo[grpo.index("--model_name_or_path") + 1] == str(out / "sft")


def test_every_algorithm_is_judged_against_sft_on_the_same_prompts(outputs, capsys):
    result = compare.main(["--output-dir", str(outputs), "-n", "6", "--max-new-tokens", "4", "--batch-size", "16"])
    assert set(result["algorithms"]) == set(pipeline.ALGORITHMS) and result["n"] == 6 and result["open_n"] > 0
    same, other = result["algorithms"]["grpo"], result["algorithms"]["dpo"]
    # a copy of the SFT model gains nothing, answers alike and has zero KL; another model differs
    assert same["reward_gain"] == same["judge_gain"] == same["open"]["judge_gain"] == 0
    assert same["kl_to_baseline"] == pytest.approx(0, abs=1e-4) and same["kl_k3_to_baseline"] == pytest.approx(
        0, abs=1e-4
    )
    assert other["judge_gain"] != 0 and other["kl_k3_to_baseline"] > 0
    assert other["judge_gain_stderr"] > 0 and 0 <= other["judge_win_rate"] <= 1
    for key in ("distinct_2", "repeated_3gram_rate", "echo_share", "mean_length"):
        assert key in other["model"] and key in other["sft"]
    saved = json.loads((outputs / "compare.json").read_text())
    assert saved["algorithms"]["dpo"]["judge_gain"] == other["judge_gain"]
    assert (outputs / "compare.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("SFT", "PPO", "DPO", "GRPO", "RLOO", "judge gain", "KL k3"))
