"""The evaluation scripts on tiny models: perplexity, reward-model accuracy, side-by-side generation."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf_lite.errors import cli
from tests.test_recipes import FAST, recipe, separable_pairs
from tests.tiny_models import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def script(name):
    spec = importlib.util.spec_from_file_location(f"evaluate_{name}", ROOT / "evaluate" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run(name, argv, tmp_path):
    """`name`'s main on argv, writing --output; returns (printed result, JSON file)."""
    out = tmp_path / f"{name}.json"
    result = script(name)([*map(str, argv), "--output", str(out)])
    return result, json.loads(out.read_text(encoding="utf-8"))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "llama": make_tiny_model(root, "llama"),
        "opt": make_tiny_model(root, "opt"),
        "bloom-rm": make_tiny_model(root, "bloom", "reward"),
        "data": separable_pairs(root / "pairs", n_train=60, n_eval=8),
    }


@pytest.fixture(scope="module")
def trained_rm(tiny, tmp_path_factory):
    """A tiny Llama reward model trained to prefer ' yes thank you' over ' no no no'."""
    out = tmp_path_factory.mktemp("rm") / "rm"
    recipe("rm")(
        [
            "--model_name_or_path",
            str(tiny["llama"]),
            "--datasets",
            str(tiny["data"]),
            "--output_dir",
            str(out),
            "--data_split",
            "1,1,1",
            *FAST,
            "--num_train_epochs",
            "4",
            "--learning_rate",
            "3e-3",
            "--max_length",
            "64",
        ]
    )
    return out


# --------------------------------------------------------------------------- perplexity


def two_rows(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "prompt": "\n\nHuman: What is the capital of France?\n\nAssistant:",
            "chosen": " The capital of France is Paris.",
            "rejected": " No.",
        },
        {"prompt": "\n\nHuman: 中国的首都是哪里？\n\nAssistant:", "chosen": " 北京。", "rejected": " 不知道"},
    ]
    for split in ("train", "eval"):
        (folder / f"{split}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_perplexity_is_the_answer_nll_computed_by_hand(tiny, tmp_path, family):
    data = two_rows(tmp_path / "data")
    result, written = run("perplexity", ["--model", tiny[family], "--data", data, "--batch-size", "2"], tmp_path)
    assert result == written and set(written) == {"ppl", "loss", "n"} and written["n"] == 2
    assert written["ppl"] == pytest.approx(math.exp(written["loss"]))

    # Each row alone, no padding, HF's own loss over labels that mask the prompt.
    tok = AutoTokenizer.from_pretrained(tiny[family])
    model = AutoModelForCausalLM.from_pretrained(tiny[family]).eval()
    total = tokens = 0
    for row in json.loads((data / "eval.json").read_text(encoding="utf-8")):
        prompt = tok(row["prompt"])["input_ids"]
        full = tok(row["prompt"] + row["chosen"] + tok.eos_token)["input_ids"]
        assert full[: len(prompt)] == prompt and full[-1] == tok.eos_token_id
        labels = [-100] * len(prompt) + full[len(prompt) :]
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([full]), labels=torch.tensor([labels])).loss.item()
        total, tokens = total + loss * (len(full) - len(prompt)), tokens + len(full) - len(prompt)
    assert written["loss"] == pytest.approx(total / tokens, rel=1e-5)


def test_perplexity_on_demo_rows_is_finite(tiny, tmp_path, capsys):
    result, _ = run("perplexity", ["--model", tiny["opt"], "--data", "demo", "-n", "5"], tmp_path)
    assert result["n"] == 5 and math.isfinite(result["loss"]) and math.isfinite(result["ppl"])
    assert result["ppl"] > 1 and "perplexity" in capsys.readouterr().out


# --------------------------------------------------------------------------- reward model


def test_rm_eval_of_a_trained_reward_model(trained_rm, tiny, tmp_path, capsys):
    result, written = run("rm_eval", ["--model", trained_rm, "--data", tiny["data"]], tmp_path)
    assert result == written
    assert set(written) == {"accuracy", "chosen_mean", "rejected_mean", "margin_mean", "n"}
    assert written["n"] == 8 and written["accuracy"] == 1.0
    assert written["chosen_mean"] - written["rejected_mean"] == pytest.approx(written["margin_mean"])
    assert written["margin_mean"] > 0 and "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_rm_eval_scores_ad_hoc_pairs(trained_rm, tmp_path, capsys, fmt):
    pairs = [
        {"prompt": "Is this a new question?", "chosen": "yes thank you", "rejected": "no no no"},
        {"prompt": "\n\nHuman: 你好？\n\nAssistant:", "chosen": " yes thank you", "rejected": " no no no"},
        {"prompt": "question 7?", "chosen": "yes thank you", "rejected": "no no no"},
    ]
    path = tmp_path / f"pairs.{fmt}"
    path.write_text(json.dumps(pairs) if fmt == "json" else "\n".join(map(json.dumps, pairs)))
    result, written = run("rm_eval", ["--model", trained_rm, "--pairs", path], tmp_path)
    assert result == written and written["n"] == 3 and written["accuracy"] == 1.0
    assert [p["prompt"] for p in written["pairs"]] == [
        "\n\nHuman: Is this a new question?\n\nAssistant:",
        pairs[1]["prompt"],
        "\n\nHuman: question 7?\n\nAssistant:",
    ]
    chosen = [p["chosen_score"] for p in written["pairs"]]
    rejected = [p["rejected_score"] for p in written["pairs"]]
    assert written["chosen_mean"] == pytest.approx(sum(chosen) / 3)
    assert written["margin_mean"] == pytest.approx(written["chosen_mean"] - written["rejected_mean"])
    printed = capsys.readouterr().out
    assert all(f"{c:.4f}" in printed and f"{r:.4f}" in printed for c, r in zip(chosen, rejected))


def test_rm_eval_scores_match_the_model_and_do_not_depend_on_batching(tiny, tmp_path):
    pairs = tmp_path / "pairs.json"
    pairs.write_text(
        json.dumps([{"prompt": f"q{i}?" + " more" * i, "chosen": "a" * (i + 1), "rejected": "b"} for i in range(5)])
    )
    one, _ = run("rm_eval", ["--model", tiny["bloom-rm"], "--pairs", pairs, "--batch-size", "1"], tmp_path)
    many, _ = run("rm_eval", ["--model", tiny["bloom-rm"], "--pairs", pairs, "--batch-size", "4"], tmp_path)
    for a, b in zip(one["pairs"], many["pairs"]):
        assert a["chosen_score"] == pytest.approx(b["chosen_score"], abs=1e-5)
        assert a["rejected_score"] == pytest.approx(b["rejected_score"], abs=1e-5)


def test_rm_eval_scores_one_steps_share_of_the_train_split(trained_rm, tiny, tmp_path, capsys):
    """--data-share: the pairs the recipes gave that step (the reward model trained on share 1)."""
    from rlhf_lite.data import load_step_rows

    result, _ = run(
        "rm_eval",
        [
            "--model",
            trained_rm,
            "--data",
            tiny["data"],
            "--split",
            "train",
            "--data-share",
            "2",
            "--data-split",
            "1,2,3",
            "--max-length",
            "64",
        ],
        tmp_path,
    )
    rows, _ = load_step_rows([str(tiny["data"])], "train", part=2, data_split="1,2,3", need_pairs=True)
    assert result["n"] == len(rows) == 30  # not 60 (all of train), 10 or 20 (the other shares)
    other, _ = run(
        "rm_eval",
        [
            "--model",
            trained_rm,
            "--data",
            tiny["data"],
            "--split",
            "train",
            "--data-share",
            "2",
            "--data-split",
            "1,2,3",
            "--data-split-seed",
            "7",
            "--max-length",
            "64",
        ],
        tmp_path,
    )
    assert other["n"] == 30 and other["chosen_mean"] != result["chosen_mean"]  # another seed, other rows
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: script("rm_eval")(["--model", str(trained_rm), "--data", str(tiny["data"]), "--data-share", "1"]))
    assert exit_.value.code == 2 and "add --split train" in capsys.readouterr().err


def test_rm_eval_needs_data_or_pairs(capsys):
    with pytest.raises(SystemExit) as exit_:
        script("rm_eval")(["--model", "x"])
    assert exit_.value.code == 2 and "--data" in capsys.readouterr().err


def test_rm_eval_unknown_dataset_is_a_data_error(tiny, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: script("rm_eval")(["--model", str(tiny["bloom-rm"]), "--data", "/nonexistent/set"]))
    assert exit_.value.code == 2 and "error: dataset path '/nonexistent/set'" in capsys.readouterr().err


# --------------------------------------------------------------------------- generation


def test_prompt_eval_side_by_side(tiny, tmp_path, capsys):
    argv = ["--baseline", tiny["llama"], "--finetuned", tiny["opt"], "--max-new-tokens", "5"]
    result, written = run("prompt_eval", argv, tmp_path)
    assert result == written and len(written["prompts"]) == 6
    assert (
        written["prompts"][0]["prompt"]
        == "\n\nHuman: Please tell me about Microsoft in a few sentences.\n\nAssistant:"
    )
    assert {"distinct_1", "echo_share", "eos_share"} <= set(written["measures"]["finetuned"]["greedy"])
    for item in written["prompts"]:
        assert item["prompt"].startswith("\n\nHuman: ") and item["prompt"].endswith("\n\nAssistant:")
        assert set(item) == {"prompt", "baseline", "finetuned"}
        assert set(item["baseline"]) == set(item["finetuned"]) == {"greedy"}
    printed = capsys.readouterr().out
    assert "--- baseline (greedy) ---" in printed and "--- finetuned (greedy) ---" in printed

    again, _ = run("prompt_eval", [*argv, "--beams", "2"], tmp_path)
    assert [p["baseline"]["greedy"] for p in again["prompts"]] == [p["baseline"]["greedy"] for p in result["prompts"]]
    assert [p["finetuned"]["greedy"] for p in again["prompts"]] == [
        p["finetuned"]["greedy"] for p in result["prompts"]
    ]
    assert all(set(p["baseline"]) == set(p["finetuned"]) == {"greedy", "beam"} for p in again["prompts"])

    # Greedy is plain HF greedy decoding with the model's own tokenizer, new tokens only.
    tok = AutoTokenizer.from_pretrained(tiny["opt"])
    model = AutoModelForCausalLM.from_pretrained(tiny["opt"]).eval()
    prompt = result["prompts"][2]["prompt"]
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=5,
        do_sample=False,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    assert (
        result["prompts"][2]["finetuned"]["greedy"]
        == tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
    )


@pytest.mark.parametrize("fmt", ["txt", "json"])
def test_prompt_eval_reads_zh_prompts_from_a_file(tiny, tmp_path, fmt):
    questions = ["中国的首都是哪里？", "\n\nHuman: 你好，请问今天天气怎么样？\n\nAssistant:"]
    path = tmp_path / f"zh.{fmt}"
    path.write_text("\n".join(questions[:1]) + "\n\n" if fmt == "txt" else json.dumps(questions), encoding="utf-8")
    result, _ = run(
        "prompt_eval",
        [
            "--baseline",
            tiny["opt"],
            "--finetuned",
            tiny["llama"],
            "--prompts",
            path,
            "--max-new-tokens",
            "3",
            "--sample",
        ],
        tmp_path,
    )
    expected = ["\n\nHuman: 中国的首都是哪里？\n\nAssistant:", questions[1]][: 1 if fmt == "txt" else 2]
    assert [p["prompt"] for p in result["prompts"]] == expected
    assert all(set(p["baseline"]) == {"greedy", "sample"} for p in result["prompts"])
    assert all(isinstance(p["finetuned"]["sample"], str) for p in result["prompts"])


def test_prompt_eval_open_prompts_judged(tiny, tmp_path, capsys):
    argv = [
        "--baseline",
        tiny["opt"],
        "--finetuned",
        tiny["opt"],
        "--open",
        "--judge",
        tiny["bloom-rm"],
        "--max-new-tokens",
        "3",
        "--batch-size",
        "16",
    ]
    result, _ = run("prompt_eval", argv, tmp_path)
    assert len(result["prompts"]) >= 60 and any("长城" in p["prompt"] for p in result["prompts"])
    same = result["measures"]["baseline"]["greedy"]
    assert same == result["measures"]["finetuned"]["greedy"] and isinstance(same["judge"], float)
    assert ", judge " in capsys.readouterr().out


# --------------------------------------------------------------------------- as command lines


# Each script runs as __main__ from its file, as `python evaluate/X.py` does, in one fresh
# interpreter: three would spend ~20 s importing torch, transformers and peft three times.
DRIVER = """
import runpy, sys
for path, argv in {cases!r}:
    sys.argv, sys.path[0] = [path, *argv], path.rsplit("/", 1)[0]
    try:
        runpy.run_path(path, run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    print(f"@@ {{path}} exit {{code}}", file=sys.stderr, flush=True)
"""


def test_missing_model_path_is_one_error_line(tmp_path):
    missing = str(tmp_path / "no-such-model")
    cases = [
        (str(ROOT / "evaluate" / "perplexity.py"), ["--model", missing, "--data", "demo", "-n", "2"]),
        (str(ROOT / "evaluate" / "rm_eval.py"), ["--model", missing, "--data", "demo", "-n", "2"]),
        (str(ROOT / "evaluate" / "prompt_eval.py"), ["--baseline", missing, "--finetuned", missing]),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER.format(cases=cases)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    outputs = proc.stderr.split("@@ ")[:-1]
    ends = [line.split("\n")[0] for line in proc.stderr.split("@@ ")[1:]]
    assert ends == [f"{path} exit 2" for path, _ in cases], proc.stderr
    for err in outputs:
        assert f"error: model path '{missing}' does not exist" in err, proc.stderr
