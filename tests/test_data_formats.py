"""TRL's dataset formats (standard and conversational; prompt-only, prompt-completion, messages,
preference, implicit-prompt preference) load as unified rows, from JSONL fixtures in each layout."""

import json

import pytest

from rlhf_lite.data import load_rows, load_step_rows
from rlhf_lite.errors import DataError

from .tiny_models import make_tokenizer

U = lambda text: {"role": "user", "content": text}
A = lambda text: {"role": "assistant", "content": text}
S = lambda text: {"role": "system", "content": text}
PROMPT = "\n\nHuman: What is 2 + 2?\n\nAssistant:"

LAYOUTS = {
    "standard prompt-only": ({"prompt": "What is 2 + 2?"}, "trl/prompt-only", {"prompt": PROMPT}),
    "conversational prompt-only": ({"prompt": [U("What is 2 + 2?")]}, "trl/prompt-only", {"prompt": PROMPT}),
    "standard prompt-completion": (
        {"prompt": "What is 2 + 2?", "completion": "4."},
        "trl/prompt-completion",
        {"prompt": PROMPT, "chosen": " 4."},
    ),
    "conversational prompt-completion": (
        {"prompt": [U("What is 2 + 2?")], "completion": [A("4.")]},
        "trl/prompt-completion",
        {"prompt": PROMPT, "chosen": " 4."},
    ),
    "conversational messages": (
        {"messages": [S("Be brief."), U("Hi"), A("Hello."), U("What is 2 + 2?"), A("4.")]},
        "trl/messages",
        {
            "prompt": "\n\nHuman: Be brief.\n\nHi\n\nAssistant: Hello.\n\nHuman: What is 2 + 2?\n\nAssistant:",
            "chosen": " 4.",
        },
    ),
    "standard preference": (
        {"prompt": "What is 2 + 2?", "chosen": "4.", "rejected": "5."},
        "Dahoas/rm-static",
        {"prompt": PROMPT, "chosen": " 4.", "rejected": " 5."},
    ),
    "conversational preference": (
        {"prompt": [U("What is 2 + 2?")], "chosen": [A("4.")], "rejected": [A("5.")]},
        "Dahoas/rm-static",
        {"prompt": PROMPT, "chosen": " 4.", "rejected": " 5."},
    ),
    "conversational implicit-prompt preference": (
        {"chosen": [U("What is 2 + 2?"), A("4.")], "rejected": [U("What is 2 + 2?"), A("5.")]},
        "Anthropic/hh-rlhf",
        {"prompt": PROMPT, "chosen": " 4.", "rejected": " 5."},
    ),
    "standard implicit-prompt preference": (
        {"chosen": PROMPT + " 4.", "rejected": PROMPT + " 5."},
        "Anthropic/hh-rlhf",
        {"prompt": PROMPT, "chosen": " 4.", "rejected": " 5."},
    ),
}


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_trl_layout_loads_as_unified_rows(layout, tmp_path):
    raw, adapter, expected = LAYOUTS[layout]
    rows, report = load_rows(write_jsonl(tmp_path / "train.jsonl", [raw] * 3), cache_dir=str(tmp_path / "c"))
    assert f"via {adapter}" in report.source and report.total_dropped == 0
    assert rows == [expected] * 3


def test_multi_turn_completion_continues_the_dialogue(tmp_path):
    raw = {"prompt": [U("Hi")], "completion": [A("Hello."), U("Bye"), A("Bye.")]}
    rows, _ = load_rows(write_jsonl(tmp_path / "t.jsonl", [raw]), cache_dir=str(tmp_path / "c"))
    assert rows[0]["chosen"] == " Hello.\n\nHuman: Bye\n\nAssistant: Bye."


def test_bad_conversations_are_dropped_with_their_reason_and_line(tmp_path):
    rows = [
        {"prompt": [U("ok")], "chosen": [A("yes")], "rejected": [A("no")]},
        {"prompt": [{"role": "robot", "content": "beep"}], "chosen": [A("a")], "rejected": [A("b")]},
        {"prompt": [U("q")], "chosen": [A("a")], "rejected": [U("not an answer")]},
        {"prompt": [U("q")], "chosen": [{"role": "assistant", "content": 3}], "rejected": [A("b")]},
        {"prompt": [U("q"), A("trailing answer")], "chosen": [A("a")], "rejected": [A("b")]},
    ]
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "test.jsonl", rows[:1])  # an eval split: train keeps every row
    write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    kept, report = load_rows(str(tmp_path / "data"), cache_dir=str(tmp_path / "c"))
    assert len(kept) == 1 and report.total_dropped == 4
    summary = report.summary()
    assert "role 'robot' is not system, user or assistant (first at " in summary and "train.jsonl:2" in summary
    assert "field 'rejected' starts with a 'user' message" in summary and "train.jsonl:3" in summary
    assert "field 'chosen' message 0: content is int, not text" in summary
    assert "field 'prompt' ends with a 'assistant' message" in summary


def test_prompt_only_data_feeds_step_3_but_not_sft(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"prompt": [U(f"q{i}")]} for i in range(10)])
    rows, _ = load_step_rows([path], "train", part=2, need_answers=False, cache_dir=str(tmp_path / "c"))
    assert rows and all(set(r) == {"prompt"} for r in rows)
    with pytest.raises(DataError, match="holds prompts only"):
        load_step_rows([path], "train", part=0, cache_dir=str(tmp_path / "c"))


def test_chat_template_renders_conversations_when_asked(tmp_path):
    tok = make_tokenizer("llama")
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    raw = [
        {"prompt": [U("What is 2 + 2?")], "chosen": [A("4.")], "rejected": [A("5.")]},
        {"prompt": "Plain text rows keep the convention", "chosen": "yes", "rejected": "no"},
    ]
    path = write_jsonl(tmp_path / "train.jsonl", raw)
    rows, _ = load_rows(path, cache_dir=str(tmp_path / "c"), template=tok)
    eos = tok.eos_token
    assert rows[0] == {"prompt": f"<|user|>What is 2 + 2?{eos}<|assistant|>", "chosen": "4.", "rejected": "5."}
    assert rows[1]["prompt"] == "\n\nHuman: Plain text rows keep the convention\n\nAssistant:"
    default, _ = load_rows(path, cache_dir=str(tmp_path / "c"))  # another cache entry, not the templated rows
    assert default[0]["prompt"] == PROMPT
