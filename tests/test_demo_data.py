"""The shipped bilingual demo preference data: reproducible, well-formed, held out, not trivial."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "rlhf_lite" / "data" / "demo"
_spec = importlib.util.spec_from_file_location("demo_data", ROOT / "tools" / "demo_data.py")
demo = sys.modules["demo_data"] = importlib.util.module_from_spec(_spec)  # the generator, a build tool
_spec.loader.exec_module(demo)
SPLITS = ("train", "eval")
CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")
TURN = re.compile(r"\n\n(Human|Assistant): ")


def is_chinese(text: str) -> bool:
    # English translation questions quote a Chinese word or two, so count, don't just detect;
    # and leave out the "Human:" / "Assistant:" markers, which are English in both languages.
    text = TURN.sub(" ", text).replace("\n\nAssistant:", "")
    return 3 * len(CJK.findall(text)) > len(LATIN.findall(text))


def load(split: str) -> list[dict]:
    return json.loads((DEMO_DIR / f"{split}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rows() -> dict[str, list[dict]]:
    return {split: load(split) for split in SPLITS}


def test_regenerating_gives_byte_identical_files(tmp_path):
    counts = demo.write_demo_data(tmp_path / "demo")
    for split in SPLITS:
        assert (tmp_path / "demo" / f"{split}.json").read_bytes() == (DEMO_DIR / f"{split}.json").read_bytes(), (
            f"{split}.json is stale: run `python tools/demo_data.py`"
        )
        assert counts[split]["total"] == len(load(split))
    key = DEMO_DIR.with_name("demo_eval_facts.json")
    assert (tmp_path / "demo_eval_facts.json").read_bytes() == key.read_bytes(), "the answer key is stale"
    assert sorted(p.name for p in DEMO_DIR.iterdir()) == ["eval.json", "train.json"]  # the loader reads them all


def test_cli_and_function_agree_with_files(tmp_path, capsys):
    demo.main(["--out", str(tmp_path / "out")])
    assert "train:" in capsys.readouterr().out
    train, eval_ = demo.generate_demo_pairs()
    assert train == load("train") and eval_ == load("eval")
    assert (tmp_path / "out" / "train.json").read_bytes() == (DEMO_DIR / "train.json").read_bytes()


def test_both_languages_are_well_represented(rows):
    for split, low, high in (("train", 200, 10_000), ("eval", 30, 70)):
        langs = Counter("zh" if is_chinese(r["prompt"]) else "en" for r in rows[split])
        assert low <= langs["en"] <= high and low <= langs["zh"] <= high, (split, langs)
    # Deterministically shuffled, not one language after the other.
    first = {is_chinese(r["prompt"]) for r in rows["train"][:20]}
    assert first == {True, False}


def test_answers_are_in_the_language_of_the_question(rows):
    # Told apart by the punctuation that closes the answer: arithmetic answers have no words.
    for r in rows["train"] + rows["eval"]:
        end = r["chosen"][-1]
        assert end in ("。！？”" if is_chinese(r["prompt"]) else '.!?"'), r


def test_eval_questions_are_held_out(rows):
    train_prompts = {r["prompt"] for r in rows["train"]}
    assert not [r["prompt"] for r in rows["eval"] if r["prompt"] in train_prompts]
    # Held out by question, not just by pair: single-turn eval questions never occur in train,
    # not even as the opening turn of a dialogue.
    train_turns = {t for r in rows["train"] for t in TURN.split(r["prompt"])}
    single = [r["prompt"] for r in rows["eval"] if r["prompt"].count("\n\nHuman: ") == 1]
    assert single and not [p for p in single if TURN.split(p)[2] in train_turns]


def test_row_format(rows):
    for split in SPLITS:
        seen = set()
        for r in rows[split]:
            assert set(r) == {"prompt", "chosen", "rejected"}
            prompt = r["prompt"]
            assert prompt.startswith("\n\nHuman: ") and prompt.endswith("\n\nAssistant:")
            roles = TURN.findall(prompt + " ")
            assert roles == ["Human", "Assistant"] * (len(roles) // 2) and len(roles) % 2 == 0, prompt
            for key in ("chosen", "rejected"):
                answer = r[key]
                assert answer.startswith(" ") and not answer.startswith("  ") and answer.strip()
                assert "Human:" not in answer and "Assistant:" not in answer
                assert len(answer.split()) <= 60 and len(CJK.findall(answer)) <= 100, answer
            assert r["chosen"] != r["rejected"]
            assert (prompt, r["chosen"]) not in seen
            seen.add((prompt, r["chosen"]))
    assert any(r["prompt"].count("\n\nHuman: ") > 1 for r in rows["train"]), "no multi-turn rows"


def test_no_trivial_surface_feature_separates_the_pairs(rows, tmp_path):
    pairs = rows["train"]
    longer = sum(len(r["chosen"]) > len(r["rejected"]) for r in pairs) / len(pairs)
    assert 0.25 < longer < 0.75, longer
    # A good share of rejected answers is about as long as the chosen one.
    similar = sum(
        abs(len(r["chosen"]) - len(r["rejected"])) <= 0.25 * max(len(r["chosen"]), len(r["rejected"])) for r in pairs
    ) / len(pairs)
    assert similar > 0.3, similar
    # No single word (or Chinese character) marks the rejected answers.
    words = Counter(w for r in pairs for w in set(re.findall(r"[A-Za-z']+|[\u4e00-\u9fff]", r["rejected"].lower())))
    word, n = words.most_common(1)[0]
    assert n < 0.5 * len(pairs), (word, n)
    # Rejected answers are of several kinds, none dominant.
    mix = demo.write_demo_data(tmp_path / "demo")["train"]["rejected_kinds"]
    assert {"wrong", "off_topic", "rude", "rude_correct", "refusal", "ramble", "empty"} <= set(mix)
    assert max(mix.values()) < 0.45 * len(pairs), mix
