"""Dataset adapters: one small function per source layout, turning a raw row into a unified row.

An adapter only picks fields out of a raw row; `rows.normalize` then applies the prompt/answer
convention and the checks, so every source is cleaned the same way. To add a source::

    from rlhf_lite.data import register, SkipRow

    @register("me/my-qa", columns=("question", "good", "bad"))
    def my_qa(row):
        return {"prompt": row["question"], "chosen": row["good"], "rejected": row["bad"]}

The `columns` let a local file in that layout be recognised without naming the adapter.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .rows import SkipRow

Convert = Callable[[dict], dict]


@dataclass(frozen=True)
class Adapter:
    name: str
    convert: Convert
    columns: frozenset[str]  # the raw columns that identify this layout in local data
    pairs: bool | None  # rows carry a rejected answer; None: if the data has a 'rejected' column
    eval_split: str | None  # hub split held out for evaluation; None: carve 10% of train
    hub_config: str | None = None

    @property
    def fingerprint(self) -> str:
        """Changes whenever the adapter's code does, so cached rows are rebuilt."""
        return hashlib.sha256(inspect.getsource(self.convert).encode()).hexdigest()[:16]


ADAPTERS: dict[str, Adapter] = {}


def register(
    *names: str,
    columns: tuple[str, ...],
    pairs: bool | None = True,
    eval_split: str | None = "test",
    hub_config: str | None = None,
):
    """Register `convert` under one or more dataset names (hub ids or any name you like)."""

    def wrap(convert: Convert) -> Convert:
        for name in names:
            ADAPTERS[name] = Adapter(name, convert, frozenset(columns), pairs, eval_split, hub_config)
        return convert

    return wrap


def get_adapter(name: str) -> Adapter:
    if name not in ADAPTERS:
        raise DataError(
            f"unknown dataset '{name}'. Known datasets: {', '.join(sorted(ADAPTERS))}; "
            "or give a local file/directory, or register an adapter (see README)."
        )
    return ADAPTERS[name]


def adapter_for_columns(columns: set[str], where: str) -> Adapter:
    """The adapter whose identifying columns fit best (most specific match wins)."""
    fits = [a for a in ADAPTERS.values() if a.columns <= columns]
    if not fits:
        layouts = sorted({", ".join(sorted(a.columns)) for a in ADAPTERS.values()})
        raise DataError(
            f"{where}: columns {sorted(columns)} match no known layout. Known layouts: {' | '.join(layouts)}"
        )
    return max(fits, key=lambda a: len(a.columns))


def load_plugins(plugins: list[str]) -> None:
    """Import user adapter modules, given as module names or paths to .py files."""
    for plugin in plugins:
        if plugin.endswith(".py"):
            path = Path(plugin)
            if not path.is_file():
                raise DataError(f"adapter plugin file not found: {plugin}")
            spec = importlib.util.spec_from_file_location(f"rlhf_lite_plugin_{path.stem}", path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        else:
            importlib.import_module(plugin)


# ---------------------------------------------------------------- English preference pairs


@register(
    "Dahoas/rm-static",
    "Dahoas/full-hh-rlhf",
    "zwh9029/rm-static-m2m100-zh-jianti",
    columns=("prompt", "chosen", "rejected"),
)
def prompt_chosen_rejected(row):
    # rm-static style rows already hold the dialogue and the two next assistant turns.
    return row


# DeepSpeed-Chat's custom format; without a 'rejected' field it is an SFT-only set.
# "demo" is the bilingual set the project ships in that format (rlhf_lite/data/demo/).
register("local/jsonfile", "demo", "rlhf-lite/demo", columns=("prompt", "chosen"), pairs=None)(prompt_chosen_rejected)


@register("Dahoas/synthetic-instruct-gptj-pairwise", columns=("prompt", "chosen", "rejected"), eval_split=None)
def synthetic_instruct(row):
    return row  # a bare instruction; rows.dialogue wraps it


@register("yitingxie/rlhf-reward-datasets", columns=("prompt", "chosen", "rejected"))
def yitingxie(row):
    # The prompt stops before "Assistant:" and each answer repeats it: keep the last turn only.
    return {
        "prompt": row["prompt"] + "Assistant:",
        "chosen": _last_turn(row["chosen"]),
        "rejected": _last_turn(row["rejected"]),
    }


def _last_turn(text):
    return text.split("Assistant:")[-1] if isinstance(text, str) else text


_CITATION = re.compile(r" ?[(\[][^)\]]*?[)\]]")


@register(
    "openai/webgpt_comparisons", columns=("question", "answer_0", "answer_1", "score_0", "score_1"), eval_split=None
)
def webgpt(row):
    s0, s1 = float(row["score_0"]), float(row["score_1"])
    if s0 == s1:
        raise SkipRow("tied scores (no preference)")
    better, worse = (row["answer_0"], row["answer_1"]) if s0 > s1 else (row["answer_1"], row["answer_0"])
    # Citations like "[1]" refer to browsing results the model never sees.
    return {
        "prompt": row["question"]["full_text"],
        "chosen": _CITATION.sub("", better),
        "rejected": _CITATION.sub("", worse),
    }


@register("stanfordnlp/SHP", columns=("history", "human_ref_A", "human_ref_B", "labels"), eval_split="validation")
def shp(row):
    a_wins = int(row["labels"]) == 1
    return {
        "prompt": row["history"],
        "chosen": row["human_ref_A"] if a_wins else row["human_ref_B"],
        "rejected": row["human_ref_B"] if a_wins else row["human_ref_A"],
    }


@register("Anthropic/hh-rlhf", columns=("chosen", "rejected"))
def hh_transcripts(row):
    # Full transcripts: the shared history is the prompt, the last assistant turn the answer.
    chosen, rejected = row["chosen"], row["rejected"]
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        return row  # rows.normalize reports the wrong type
    cut_c, cut_r = chosen.rfind("\n\nAssistant:"), rejected.rfind("\n\nAssistant:")
    if cut_c < 0 or cut_r < 0:
        raise SkipRow("transcript has no '\\n\\nAssistant:' turn")
    end = len("\n\nAssistant:")
    if chosen[:cut_c] != rejected[:cut_r]:
        raise SkipRow("chosen and rejected transcripts have different histories")
    return {"prompt": chosen[: cut_c + end], "chosen": chosen[cut_c + end :], "rejected": rejected[cut_r + end :]}


# ---------------------------------------------------------------- Chinese


@register("wangrui6/Zhihu-KOL", columns=("INSTRUCTION", "RESPONSE"), pairs=False, eval_split=None)
def zhihu_kol(row):
    return {"prompt": row["INSTRUCTION"], "chosen": row["RESPONSE"]}


@register(
    "Hello-SimpleAI/HC3-Chinese", columns=("question", "human_answers"), pairs=False, eval_split=None, hub_config="all"
)
def hc3_chinese(row):
    answers = row["human_answers"]
    if not answers:
        raise SkipRow("no human answer")
    return {"prompt": row["question"], "chosen": answers[0]}


@register(
    "Cohere/miracl-zh-queries-22-12", columns=("query", "positive_passages", "negative_passages"), eval_split="dev"
)
def miracl(row):
    if not row["positive_passages"] or not row["negative_passages"]:
        raise SkipRow("no positive or no negative passage")
    return {
        "prompt": row["query"],
        "chosen": row["positive_passages"][0]["text"],
        "rejected": row["negative_passages"][0]["text"],
    }
