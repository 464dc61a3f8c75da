"""Judging models by what they did not optimize: paired reward gains with their standard error,
exact-match facts against an answer key, and the fixed bilingual open prompts (the first six of
each language are DeepSpeed-Chat's)."""

import json
import re
import statistics
import unicodedata
from pathlib import Path

from ..data.rows import dialogue
from ..errors import DataError

OPEN_PROMPTS = Path(__file__).parents[1] / "data" / "open_prompts.json"
DEMO_FACTS = Path(__file__).parents[1] / "data" / "demo_eval_facts.json"
LANGUAGES = ("en", "zh")


def paired_gain(baseline: list[float], model: list[float]) -> dict:
    """gain = mean(model - baseline); stderr = stdev of the per-prompt differences / sqrt(n);
    win_rate = share of prompts where model scores higher (ties count half)."""
    n = len(model)
    if n == 0 or n != len(baseline):
        raise ValueError(f"need as many baseline as model scores, and some (got {len(baseline)}, {n})")
    diffs = [m - b for b, m in zip(baseline, model)]
    return {
        "gain": sum(diffs) / n,
        "stderr": statistics.stdev(diffs) / n**0.5 if n > 1 else float("nan"),
        "win_rate": sum(1.0 if d > 0 else 0.5 if d == 0 else 0.0 for d in diffs) / n,
    }


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,500 -> 1500
    return " ".join(re.sub(r"[^\w.]+|(?<!\d)\.|\.(?!\d)", " ", text).split())


def fact_correct(answer: str, key: str) -> bool:
    """Whether `answer` states the key's fact: the key, ignoring case, quotes, punctuation and
    thousands separators, stands in the answer as a whole (a key that starts or ends with a digit
    must not be part of a longer number: "17" is not in "175")."""
    a, k = _normal(answer), _normal(key)
    if not k:
        raise ValueError(f"empty answer key {key!r}")
    pattern = ("(?<![\\d.])" if k[0].isdigit() else "") + re.escape(k) + ("(?!\\.?\\d)" if k[-1].isdigit() else "")
    return re.search(pattern, a) is not None


def read_facts(path: str | Path) -> dict[str, str]:
    """An answer key: a JSON list of {"prompt", "answer"} -> {prompt: answer}."""
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read the answer key '{path}': {e}") from None
    if not isinstance(items, list):
        raise DataError(f"answer key '{path}' must be a JSON list of {{prompt, answer}} objects")
    key = {}
    for i, item in enumerate(items):
        texts = isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("prompt", "answer"))
        if not (texts and item["answer"].strip()):
            raise DataError(f"answer key '{path}', row {i}: needs a text 'prompt' and a non-empty text 'answer'")
        key[dialogue(item["prompt"])] = item["answer"]
    return key


def fact_accuracy(prompts: list[str], answers: list[str], key: dict[str, str]) -> dict:
    """Exact-match accuracy over the prompts the key has an answer for."""
    hits = [fact_correct(a, key[p]) for p, a in zip(prompts, answers) if p in key]
    return {"accuracy": sum(hits) / len(hits) if hits else float("nan"), "n": len(hits)}


def open_prompts(languages: tuple[str, ...] = LANGUAGES, first: int | None = None) -> list[str]:
    """The fixed open prompts of `languages` as dialogues (`first`: only that many per language)."""
    table = json.loads(OPEN_PROMPTS.read_text(encoding="utf-8"))
    return [dialogue(q) for lang in languages for q in table[lang][:first]]
