"""The unified row ``{"prompt", "chosen", "rejected"}`` (no ``rejected`` in SFT-only sources, the prompt
alone in prompt-only ones) in DeepSpeed-Chat's convention: the prompt is a dialogue
``"\\n\\nHuman: ...\\n\\nAssistant:"`` and each answer starts with one space, so ``prompt + chosen`` is
exactly the text the models see."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
_SURROGATE = re.compile("[\ud800-\udfff]")


class SkipRow(Exception):
    """Raised by an adapter or a check: this row is dropped for the given reason."""


def dialogue(text: str) -> str:
    """A prompt in the Human/Assistant convention (idempotent): bare questions are wrapped."""
    text = text.strip()
    if "Human:" not in text:
        return f"{HUMAN} {text}{ASSISTANT}"
    if text.startswith("Human:"):
        text = "\n\n" + text  # strip() took the leading blank line the convention wants
    return text if text.endswith("Assistant:") else text + ASSISTANT


def answer(text: str) -> str:
    return " " + text.strip()


def _text(row: dict, key: str) -> str:
    if key not in row:
        raise SkipRow(f"missing field '{key}'")
    value = row[key]
    if value is None:
        raise SkipRow(f"field '{key}' is null")
    if not isinstance(value, str):
        raise SkipRow(f"field '{key}' is {type(value).__name__}, not text")
    if not value.strip():
        raise SkipRow(f"field '{key}' is empty")
    if _SURROGATE.search(value):  # a JSON escape such as \\ud800: valid JSON, not valid text
        raise SkipRow(f"field '{key}' is not valid Unicode (a lone surrogate)")
    return value


def normalize(row: dict, pairs: bool, answers: bool = True, convention: bool = True) -> dict:
    """Check types and emptiness, then bring the row into the unified convention (`convention` False:
    text a chat template rendered, kept as it is); `answers` False: prompt-only data."""
    as_prompt, as_answer = (dialogue, answer) if convention else (str, str)
    out = {"prompt": as_prompt(_text(row, "prompt"))}
    if answers:
        out["chosen"] = as_answer(_text(row, "chosen"))
    if answers and pairs:
        out["rejected"] = as_answer(_text(row, "rejected"))
        if out["rejected"] == out["chosen"]:
            raise SkipRow("chosen and rejected are identical")
    return out


@dataclass
class Report:
    """Kept/dropped counts of one dataset split, with the first place each reason occurred."""

    source: str
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    first_at: dict = field(default_factory=dict)

    def __post_init__(self):
        self.dropped = Counter(self.dropped)  # a plain dict when read back from the cache

    def skip(self, reason: str, where: str) -> None:
        self.dropped[reason] += 1
        self.first_at.setdefault(reason, where)

    @property
    def total_dropped(self) -> int:
        return self.dropped.total()

    def summary(self) -> str:
        lines = [f"{self.source}: kept {self.kept}, dropped {self.total_dropped}"]
        lines += [f"  - {n} x {reason} (first at {self.first_at[reason]})" for reason, n in self.dropped.most_common()]
        return "\n".join(lines)
