"""The pieces of every judged comparison, against hand-worked numbers."""

import json
import math

import pytest

from rlhf_lite.errors import DataError
from rlhf_lite.eval.judging import DEMO_FACTS, fact_accuracy, fact_correct, open_prompts, paired_gain, read_facts


def test_paired_gain_by_hand():
    out = paired_gain([0.0, 1.0, 2.0, 0.5], [1.0, 1.0, 1.0, 1.5])  # differences 1, 0, -1, 1
    assert out["gain"] == pytest.approx(0.25)
    assert out["stderr"] == pytest.approx(math.sqrt(((0.75**2) * 2 + 0.25**2 + 1.25**2) / 3) / 2)
    assert out["win_rate"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    with pytest.raises(ValueError):
        paired_gain([1.0], [])


@pytest.mark.parametrize(
    "answer, key, right",
    [
        ("87 + 88 = 175.", "175", True),
        ("87 + 88 = 195.", "175", False),
        ("It is 1175.", "175", False),  # a longer number is not the key
        ("It's 17.5.", "17", False),
        ("5,000 millilitres is 5 litres.", "5 litres", True),
        ("The answer is 1,500 grams.", "1500 grams", True),
        ("800厘米等于8米。", "8米", True),
        ("800厘米等于18米。", "8米", False),
        ("“爸爸”的英文是 “Father”。", "“father”", True),
        ("The capital of Ireland is Dublin!", "Dublin", True),
        ("Sure! It's Cork.", "Dublin", False),
    ],
)
def test_fact_correct(answer, key, right):
    assert fact_correct(answer, key) is right


def test_fact_accuracy_counts_only_prompts_with_a_key(tmp_path):
    path = tmp_path / "key.json"
    path.write_text(json.dumps([{"prompt": "What is 2 + 2?", "answer": "4"}]))
    key = read_facts(path)
    prompt = "\n\nHuman: What is 2 + 2?\n\nAssistant:"
    assert fact_accuracy([prompt, "\n\nHuman: hi\n\nAssistant:"], [" 4.", " hello"], key) == {"accuracy": 1.0, "n": 1}
    path.write_text(json.dumps([{"prompt": "x", "answer": ""}]))
    with pytest.raises(DataError, match="row 0"):
        read_facts(path)


def test_the_demo_answer_key_answers_held_out_questions():
    from rlhf_lite.data import load_rows

    key = read_facts(DEMO_FACTS)
    rows, _ = load_rows("demo", "eval")
    by_prompt = {r["prompt"]: r for r in rows}
    assert len(key) >= 80 and set(key) <= set(by_prompt)
    # the chosen answers state their fact, so the key and the matcher agree with the data
    assert sum(fact_correct(by_prompt[p]["chosen"], a) for p, a in key.items()) / len(key) > 0.95


def test_open_prompts():
    en, zh = open_prompts(("en",)), open_prompts(("zh",))
    assert len(en) >= 40 and len(zh) >= 20 and len(set(en + zh)) == len(en + zh)
    assert en[4] == "\n\nHuman: How does a telescope work?\n\nAssistant:"  # DeepSpeed-Chat's six come first
    assert open_prompts(first=6) == en[:6] + zh[:6]
