"""evaluate/ppo_eval.py on tiny models: reward gain, win rate and KL of an actor against its baseline."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from rlhf_lite.errors import cli
from tests.tiny_models import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"reward_baseline", "reward_model", "reward_gain", "reward_gain_stderr", "win_rate", "kl_to_baseline", "n"}
PROMPTS = [
    "What is the capital of France?",
    "Can you help me write a short poem about the sea?",
    "中国的首都是哪里？",
    "Please explain how a language model generates text.",
]


def ppo_eval(argv, tmp_path):
    """ppo_eval's main on argv, writing --output; returns (returned result, JSON file)."""
    spec = importlib.util.spec_from_file_location("evaluate_ppo_eval", ROOT / "evaluate" / "ppo_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "ppo.json"
    result = module.main([*map(str, argv), "--output", str(out)])
    return result, json.loads(out.read_text(encoding="utf-8"))


def dataset(folder: Path, pairs: bool) -> Path:
    """A local jsonfile set (train.json / eval.json); without `pairs` an SFT-only one."""
    folder.mkdir(parents=True)
    rows = [{"prompt": f"\n\nHuman: {q}\n\nAssistant:", "chosen": " Sure.", "rejected": " No."} for q in PROMPTS]
    if not pairs:
        rows = [{"prompt": r["prompt"], "chosen": r["chosen"]} for r in rows]
    for split in ("train", "eval"):
        (folder / f"{split}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return folder


def always_stops(base: Path, out: Path) -> Path:
    """A copy of the tiny OPT `base` whose every next token is EOS (so it always answers [EOS])."""
    model, tok = AutoModelForCausalLM.from_pretrained(base), AutoTokenizer.from_pretrained(base)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight  # tied to the output layer
        emb[tok.eos_token_id] *= 5
        norm = model.model.decoder.final_layer_norm
        norm.weight.zero_()
        norm.bias.copy_(emb[tok.eos_token_id])  # logits = emb @ emb[eos]: largest for EOS itself
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    base = make_tiny_model(root / "base", "opt")
    return {
        "base": base,
        "ppo": make_tiny_model(root / "ppo", "opt", seed=1),
        "stopper": always_stops(base, root / "stopper"),
        "rm": make_tiny_model(root / "rm", "opt", "reward", seed=2),
        "llama": make_tiny_model(root / "llama", "llama"),
        "llama-rm": make_tiny_model(root / "llama", "llama", "reward"),
        "pairs": dataset(root / "pairs", pairs=True),
        "sft": dataset(root / "sft", pairs=False),
    }


def by_hand(tiny, actor: str, prompts: list[str], max_new_tokens: int) -> dict:
    """The metrics from plain HF calls, one unpadded prompt at a time."""
    tok = AutoTokenizer.from_pretrained(tiny["base"])
    lms = {key: AutoModelForCausalLM.from_pretrained(tiny[key]).eval() for key in ("base", actor)}
    rm = AutoModelForSequenceClassification.from_pretrained(tiny["rm"]).eval()
    rewards, kl = {"base": [], actor: []}, []
    with torch.no_grad():
        for prompt in prompts:
            ids = tok(prompt, return_tensors="pt")["input_ids"]
            for key, lm in lms.items():
                out = lm.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id,
                )
                new = out[0, ids.shape[1] :]  # ends with EOS only if the model stopped
                text = prompt + " " + tok.decode(new, skip_special_tokens=True).strip() + tok.eos_token
                rewards[key].append(rm(**tok(text, return_tensors="pt")).logits[0, 0].item())
                if key == actor:
                    logp = {
                        k: m(out).logits[0, ids.shape[1] - 1 : -1].log_softmax(-1).gather(1, new[:, None]).sum()
                        for k, m in lms.items()
                    }
                    kl.append((logp[actor] - logp["base"]).item())
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    gains = [m - b for b, m in zip(rewards["base"], rewards[actor])]
    stderr = (sum((g - mean(gains)) ** 2 for g in gains) / (len(gains) - 1) / len(gains)) ** 0.5
    return {
        "reward_baseline": mean(rewards["base"]),
        "reward_model": mean(rewards[actor]),
        "kl_to_baseline": mean(kl),
        "reward_gain_stderr": stderr,
        "win_rate": mean([(m > b) + 0.5 * (m == b) for b, m in zip(rewards["base"], rewards[actor])]),
    }


@pytest.mark.parametrize("actor", ["ppo", "stopper"])
def test_metrics_are_those_computed_by_hand(tiny, tmp_path, capsys, actor):
    argv = [
        "--baseline",
        tiny["base"],
        "--model",
        tiny[actor],
        "--reward",
        tiny["rm"],
        "--data",
        tiny["pairs"],
        "-n",
        3,
        "--max-new-tokens",
        6,
        "--batch-size",
        1,
    ]
    result, written = ppo_eval(argv, tmp_path)
    assert result == written and KEYS <= set(written) and written["n"] == 3
    assert written["reward_gain"] == pytest.approx(written["reward_model"] - written["reward_baseline"])
    assert 0 <= written["win_rate"] <= 1
    expected = by_hand(tiny, actor, [f"\n\nHuman: {q}\n\nAssistant:" for q in PROMPTS[:3]], 6)
    for key, value in expected.items():
        assert written[key] == pytest.approx(value, abs=1e-4), key
    assert abs(written["kl_to_baseline"]) > 1e-3  # different weights: the estimate is not 0
    printed = capsys.readouterr().out
    assert printed.count("--- model (reward ") == 3 and "kl_to_baseline" in printed


@pytest.mark.parametrize("sample", [False, True])
def test_a_model_against_itself_on_sft_only_data(tiny, tmp_path, capsys, sample):
    argv = [
        "--baseline",
        tiny["ppo"],
        "--model",
        tiny["ppo"],
        "--reward",
        tiny["rm"],
        "--data",
        tiny["sft"],
        "-n",
        2,
        "--max-new-tokens",
        5,
        *(["--sample", "--show", 0] if sample else []),
    ]
    result, written = ppo_eval(argv, tmp_path)
    assert result == written and KEYS <= set(written) and written["n"] == 2
    assert abs(written["kl_to_baseline"]) < 1e-5 and written["reward_gain"] == 0 and written["win_rate"] == 0.5
    assert written["reward_gain_stderr"] == 0
    assert written["reward_model"] == written["reward_baseline"]
    printed = capsys.readouterr().out
    assert printed.count("--- baseline (reward ") == (0 if sample else 2)
    assert "metric" in printed and ("sample" if sample else "greedy") in printed


@pytest.mark.parametrize("role", ["baseline", "reward"])
def test_a_different_vocabulary_is_one_error_line(tiny, capsys, role):
    names = {"baseline": tiny["base"], "model": tiny["base"], "reward": tiny["rm"]}
    names[role] = tiny["llama" if role == "baseline" else "llama-rm"]
    argv = [arg for key, name in names.items() for arg in (f"--{key}", str(name))]
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: ppo_eval([*argv, "--data", tiny["sft"]], Path("unused")))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert f"--model '{tiny['base']}'" in lines[0] and f"--{role} '{names[role]}'" in lines[0]
    assert "different tokenizers" in lines[0] and "metric" not in captured.out


def test_bad_sampling_settings_are_refused(tiny, capsys):
    argv = [
        "--baseline",
        tiny["base"],
        "--model",
        tiny["base"],
        "--reward",
        tiny["rm"],
        "--data",
        tiny["sft"],
        "--sample",
        "--temperature",
        "0",
    ]
    with pytest.raises(SystemExit) as exit_:
        ppo_eval(argv, Path("unused"))
    assert exit_.value.code == 2 and "--temperature: must be a number > 0" in capsys.readouterr().err


def test_judge_base_open_prompts_facts_and_degeneration(tiny, tmp_path):
    key = tmp_path / "key.json"
    key.write_text(json.dumps([{"prompt": PROMPTS[0], "answer": "Paris"}]))
    argv = [
        "--baseline",
        tiny["base"],
        "--model",
        tiny["stopper"],
        "--base",
        tiny["ppo"],
        "--reward",
        tiny["rm"],
        "--judge",
        tiny["llama-rm"],
        "--data",
        tiny["pairs"],
        "--open-prompts",
        "--facts",
        key,
        "--max-new-tokens",
        4,
        "--batch-size",
        8,
        "--show",
        1,
    ]
    result, written = ppo_eval(argv, tmp_path)
    assert result == written and written["n"] == len(PROMPTS) and written["facts_n"] == 1
    for key_ in (
        "judge_baseline",
        "judge_model",
        "judge_gain",
        "judge_gain_stderr",
        "judge_win_rate",
        "kl_k3_to_baseline",
    ):
        assert key_ in written, key_
    assert written["kl_k3_to_baseline"] >= 0 and 0 <= written["reward_accuracy"] <= 1 and "judge_accuracy" in written
    models = written["models"]
    assert list(models) == ["base", "baseline", "model"]
    stopper = models["model"]  # answers [EOS] only: empty, short, all ending with EOS
    assert stopper["mean_length"] == 0 and stopper["short_share"] == 1 and stopper["eos_share"] == 1
    assert stopper["facts"] == 0 and {"reward", "judge", "distinct_1", "echo_share"} <= set(stopper)
    opened = written["open"]
    assert opened["n"] >= 60 and list(opened["models"]) == ["base", "baseline", "model"]
    assert opened["models"]["model"]["short_share"] == 1 and "judge_gain" in opened
    first = written["answers"][0]
    assert first["prompt"] == f"\n\nHuman: {PROMPTS[0]}\n\nAssistant:" and first["model"]["text"] == " "
    assert set(first["base"]) == {"text", "reward", "judge"} and len(opened["answers"]) == opened["n"]


def test_a_reward_model_where_an_actor_belongs_is_refused_first(tiny, capsys):
    argv = ["--baseline", tiny["base"], "--model", tiny["base"], "--reward", tiny["base"], "--data", tiny["sft"]]
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: ppo_eval(argv, Path("unused")))
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "is not a reward model" in err and len(err.splitlines()) == 1
