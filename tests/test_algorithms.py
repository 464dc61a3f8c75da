"""DPO, GRPO and RLOO (recipes over TRL's trainers) end to end on tiny models."""

import json
import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf_lite.eval.scoring import score_answers
from rlhf_lite.models import ModelSettings, load_reward_model, load_tokenizer
from rlhf_lite.online import RewardModelFunction
from tests.test_recipes import FAST, ROOT, metrics, recipe, run_cli, separable_pairs
from tests.tiny_models import make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("algorithms")
    return {
        "llama": make_tiny_model(root, "llama"),
        "rm": make_tiny_model(root, "llama", "reward", seed=1),
        "data": separable_pairs(root / "pairs", n_train=60),
    }


def common_args(tiny, out):
    data = ["--datasets", str(tiny["data"]), "--data_split", "1,1,1"]
    return ["--model_name_or_path", str(tiny["llama"]), *data, "--output_dir", str(out), *FAST]


def dpo_args(tiny, out, *extra):
    return [*common_args(tiny, out), "--max_length", "64", *extra]


def online_args(tiny, out, *extra):
    return [
        *common_args(tiny, out),
        "--reward_model_name_or_path",
        str(tiny["rm"]),
        "--max_prompt_length",
        "32",
        "--max_completion_length",
        "8",
        "--num_generations",
        "2",
        "--max_steps",
        "2",
        *extra,
    ]


def first_loss(out) -> float:
    return next(m["loss"] for m in metrics(out) if "loss" in m)


# ------------------------------------------------------------------ DPO


@pytest.mark.parametrize(
    "loss_type, beta, expected",
    # At the first step the policy is its reference, so every log-ratio margin is 0:
    [("sigmoid", 0.1, math.log(2)), ("hinge", 0.1, 1.0), ("ipo", 0.1, (1 / (2 * 0.1)) ** 2), ("ipo", 0.5, 1.0)],
)
def test_dpo_first_loss_is_the_hand_computed_value_of_its_loss_type(tiny, tmp_path, loss_type, beta, expected):
    # -log sigmoid(0) = ln 2; hinge max(0, 1 - 0) = 1; ipo (0 - 1 / (2 beta))^2
    out = tmp_path / "dpo"
    recipe("dpo")(dpo_args(tiny, out, "--max_steps", "1", "--loss_type", loss_type, "--beta", str(beta)))
    assert first_loss(out) == pytest.approx(expected, rel=1e-4)


def test_dpo_trains_a_standard_folder_that_prefers_the_chosen_answers(tiny, tmp_path):
    out = tmp_path / "dpo"
    recipe("dpo")(dpo_args(tiny, out, "--max_steps", "12", "--learning_rate", "1e-3"))
    model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert model is not None and tok.pad_token_id is not None
    logged = [m for m in metrics(out) if "loss" in m]
    assert len(logged) == 12 and logged[-1]["loss"] < 0.6 * logged[0]["loss"]
    margins = [m["rewards/margins"] for m in logged]
    assert margins[0] == 0 and margins == sorted(margins) and logged[-1]["rewards/accuracies"] == 1


def test_dpo_with_lora_has_the_adapter_switched_off_as_its_reference(tiny, tmp_path):
    out = tmp_path / "dpo"
    recipe("dpo")(dpo_args(tiny, out, "--max_steps", "2", "--use_lora", "true", "--lora_r", "4"))
    assert first_loss(out) == pytest.approx(math.log(2), rel=1e-4)  # the reference is the start model
    weights = load_file(out / "model.safetensors")
    assert not any("lora" in k or ".ref." in k for k in weights)  # merged, no reference adapter kept
    assert AutoModelForCausalLM.from_pretrained(out) is not None


def test_dpo_refuses_sft_only_data(tiny, tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"q{i}", "chosen": "a"}) for i in range(30)))
    code, err = run_cli("dpo", [*dpo_args(tiny, tmp_path / "o"), "--datasets", str(data)], tmp_path)
    assert code == 2 and "no rejected answers" in err and "Traceback" not in err


# ------------------------------------------------------------------ GRPO and RLOO


def test_reward_function_scores_prompt_answer_and_eos_as_reward_training(tiny):
    tok = load_tokenizer(str(tiny["rm"]))
    model = load_reward_model(ModelSettings(str(tiny["rm"])), tok).eval()
    prompts = ["\n\nHuman: hi?\n\nAssistant:", "\n\nHuman: a longer question here?\n\nAssistant:"]
    answers = [" yes thank you", " no"]
    ids = [tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for a in answers]
    got = RewardModelFunction(model, tok)(prompts=prompts, completions=answers, completion_ids=ids)
    assert got == pytest.approx(score_answers(model, tok, prompts, answers), abs=1e-5)
    cut = RewardModelFunction(model, tok)(prompts=prompts, completion_ids=[i[:-1] for i in ids])  # no EOS
    assert got[0] != pytest.approx(cut[0], abs=1e-6)


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_online_algorithm_trains_and_saves_a_standard_folder(tiny, tmp_path, algorithm):
    out = tmp_path / algorithm
    before = load_file(tiny["llama"] / "model.safetensors")
    recipe(algorithm)(online_args(tiny, out, "--learning_rate", "1e-3", "--beta", "0.1"))
    after = load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in after if k in before)
    logged = [m for m in metrics(out) if "loss" in m]
    assert len(logged) == 2 and all("reward" in m and math.isfinite(m["reward"]) for m in logged)
    assert any("kl" in k for k in logged[-1])
    assert AutoModelForCausalLM.from_pretrained(out) is not None


def test_grpo_8bit_lora_trains_and_merges(tiny, tmp_path):
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "grpo"
    recipe("grpo")(online_args(tiny, out, "--use_lora", "true", "--lora_r", "4", "--load_in_8bit", "true"))
    weights = load_file(out / "model.safetensors")
    assert not any("lora" in k for k in weights) and AutoModelForCausalLM.from_pretrained(out) is not None


def test_online_algorithms_take_conversational_prompt_only_data(tiny, tmp_path):
    data = tmp_path / "prompts.jsonl"
    rows = [{"prompt": [{"role": "user", "content": f"question {i}?"}]} for i in range(24)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "rloo"
    recipe("rloo")([*online_args(tiny, out, "--max_steps", "1"), "--datasets", str(data)])
    assert (out / "model.safetensors").exists()


def test_online_algorithm_refuses_a_reward_model_of_another_vocabulary(tiny, tmp_path):
    other = make_tiny_model(tmp_path, "opt", "reward")
    code, err = run_cli(
        "grpo", [*online_args(tiny, tmp_path / "o"), "--reward_model_name_or_path", str(other)], tmp_path
    )
    assert code == 2 and "different tokenizers" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["dpo", "grpo", "rloo"])
def test_algorithms_under_accelerate_launch_with_zero2(tiny, tmp_path, algorithm):
    out = tmp_path / algorithm
    argv = online_args(tiny, out) if algorithm != "dpo" else dpo_args(tiny, out, "--max_steps", "2")
    config = ROOT / "accelerate_configs" / "zero2.yaml"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    proc = subprocess.run(
        [*cmd, str(ROOT / "recipes" / f"{algorithm}.py"), *argv], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert AutoModelForCausalLM.from_pretrained(out) is not None


def test_online_algorithm_defaults_to_step_2s_reward_model_and_says_how_to_make_it(tiny, tmp_path):
    config = tmp_path / "mypreset" / "grpo.yaml"
    config.parent.mkdir()
    config.write_text("num_generations: 2\n")
    argv = [a for a in online_args(tiny, tmp_path / "o") if a not in ("--reward_model_name_or_path", str(tiny["rm"]))]
    code, err = run_cli("grpo", ["--config", str(config), *argv], tmp_path)
    assert code == 2 and "grpo needs step 2's model in outputs/mypreset/rm" in err and "make rm PRESET=mypreset" in err
