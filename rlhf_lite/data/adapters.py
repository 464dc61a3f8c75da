"""Dataset adapters: one function per source layout picks the unified row's fields out of a raw row
(`rows.normalize` then cleans every source the same way); see the README to add one."""

from __future__ import annotations

import importlib
import re
import runpy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .rows import ASSISTANT, SkipRow


@dataclass(frozen=True)
class Adapter:
    name: str
    convert: Callable[[dict], dict]
    columns: frozenset[str]  # the raw columns that identify this layout in local data
    pairs: bool | None  # rows carry a rejected answer; None: if the data has a 'rejected' column
    eval_split: str | None  # hub split held out for evaluation; None: carve 10% of train
    hub_config: str | None = None
    answers: bool = True  # False: prompt-only data (step 3, GRPO, RLOO)


ADAPTERS: dict[str, Adapter] = {}
PAIRS = ("prompt", "chosen", "rejected")
_CITATION = re.compile(r" ?[(\[][^)\]]*?[)\]]")  # webgpt's "[1]": browsing results the model never sees


def register(*names, columns, pairs=True, eval_split="test", hub_config=None, answers=True):
    """Register `convert` under one or more dataset names (hub ids or any name you like)."""

    def wrap(convert):
        ADAPTERS.update(
            {n: Adapter(n, convert, frozenset(columns), pairs, eval_split, hub_config, answers) for n in names}
        )
        return convert

    return wrap


def load_plugins(plugins: list[str]) -> None:
    """Import user adapter modules, given as module names or paths to .py files."""
    for plugin in plugins:
        if not plugin.endswith(".py"):
            importlib.import_module(plugin)
        elif Path(plugin).is_file():
            runpy.run_path(plugin, run_name=f"rlhf_lite_plugin_{Path(plugin).stem}")
        else:
            raise DataError(f"adapter plugin file not found: {plugin}")


@register("Dahoas/rm-static", "Dahoas/full-hh-rlhf", "zwh9029/rm-static-m2m100-zh-jianti", columns=PAIRS)
def prompt_chosen_rejected(row):
    # rm-static style rows already hold the dialogue and the two next assistant turns.
    return row


# DeepSpeed-Chat's custom format; without a 'rejected' field it is an SFT-only set.
# "demo" is the bilingual set the project ships in that format (rlhf_lite/data/demo/).
register("local/jsonfile", "demo", "rlhf-lite/demo", columns=("prompt", "chosen"), pairs=None)(prompt_chosen_rejected)
# Its prompts are bare instructions, which rows.dialogue wraps.
register("Dahoas/synthetic-instruct-gptj-pairwise", columns=PAIRS, eval_split=None)(prompt_chosen_rejected)


# TRL's dataset formats, standard (text) or conversational (lists of {"role", "content"} messages,
# which conversations.flatten renders): preference data fits the layout above, implicit-prompt
# preference data ("chosen", "rejected" alone) the hh-rlhf one below.
register("trl/prompt-only", columns=("prompt",), pairs=False, answers=False)(prompt_chosen_rejected)
register("trl/messages", columns=("messages",), pairs=False)(prompt_chosen_rejected)


@register("trl/prompt-completion", columns=("prompt", "completion"), pairs=False)
def prompt_completion(row):
    return {"prompt": row["prompt"], "chosen": row["completion"]}


@register("yitingxie/rlhf-reward-datasets", columns=PAIRS)
def yitingxie(row):
    # The prompt stops before "Assistant:" and each answer repeats it: keep the last turn only.
    return {
        "prompt": row["prompt"] + "Assistant:",
        **{k: row[k].split("Assistant:")[-1] if isinstance(row[k], str) else row[k] for k in ("chosen", "rejected")},
    }


@register(
    "openai/webgpt_comparisons", columns=("question", "answer_0", "answer_1", "score_0", "score_1"), eval_split=None
)
def webgpt(row):
    s0, s1 = float(row["score_0"]), float(row["score_1"])
    if s0 == s1:
        raise SkipRow("tied scores (no preference)")
    better, worse = (row["answer_0"], row["answer_1"]) if s0 > s1 else (row["answer_1"], row["answer_0"])
    return {
        "prompt": row["question"]["full_text"],
        "chosen": _CITATION.sub("", better),
        "rejected": _CITATION.sub("", worse),
    }


@register("stanfordnlp/SHP", columns=("history", "human_ref_A", "human_ref_B", "labels"), eval_split="validation")
def shp(row):
    better, worse = ("A", "B") if int(row["labels"]) == 1 else ("B", "A")
    return {"prompt": row["history"], "chosen": row[f"human_ref_{better}"], "rejected": row[f"human_ref_{worse}"]}


@register("Anthropic/hh-rlhf", columns=("chosen", "rejected"))
def hh_transcripts(row):
    # Full transcripts: the shared history is the prompt, the last assistant turn the answer.
    chosen, rejected = row["chosen"], row["rejected"]
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        return row  # conversations.flatten splits conversations; rows.normalize reports other types
    cut_c, cut_r = chosen.rfind(ASSISTANT), rejected.rfind(ASSISTANT)
    if cut_c < 0 or cut_r < 0:
        raise SkipRow("transcript has no '\\n\\nAssistant:' turn")
    if chosen[:cut_c] != rejected[:cut_r]:
        raise SkipRow("chosen and rejected transcripts have different histories")
    cut_c, cut_r = cut_c + len(ASSISTANT), cut_r + len(ASSISTANT)
    return {"prompt": chosen[:cut_c], "chosen": chosen[cut_c:], "rejected": rejected[cut_r:]}


# Chinese
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
