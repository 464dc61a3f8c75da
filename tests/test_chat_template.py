"""The chat template every exported tokenizer carries renders a conversation exactly as the data layer
builds its prompt: same text, same token ids as training saw (special tokens in front included)."""

import re
from pathlib import Path

import pytest

from rlhf_lite.data import load_rows
from rlhf_lite.data.chat_template import human_assistant_template, prefix_tokens, set_chat_template
from rlhf_lite.data.conversations import flatten
from tests.tiny_models import FAMILIES, make_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TURN = re.compile(r"\n\n(Human|Assistant):")
ROLE = {"Human": "user", "Assistant": "assistant"}

HANDMADE = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "  padded question \n"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Why is the sky blue?"}],
    [
        {"role": "user", "content": "你好，请问今天天气怎么样？"},
        {"role": "assistant", "content": "今天天气很好。"},
        {"role": "user", "content": "明天呢？"},
    ],
    [
        {"role": "user", "content": "Write a haiku."},
        {"role": "assistant", "content": " Waves fold into foam\nthe gull keeps its own counsel "},
        {"role": "system", "content": "Now in French."},
        {"role": "user", "content": "Again, please."},
    ],
]


def messages_of(prompt: str) -> list[dict]:
    """A Human/Assistant prompt split back into chat messages (the empty final Assistant turn dropped)."""
    parts = TURN.split(prompt)[1:]
    turns = [{"role": ROLE[r], "content": c.strip()} for r, c in zip(parts[::2], parts[1::2])]
    assert turns[-1] == {"role": "assistant", "content": ""}
    return turns[:-1]


def real_prompts(tmp_path) -> list[str]:
    """The demo data's prompts and, where ../shared is present, real multi-turn English and Chinese ones."""
    prompts = [r["prompt"] for r in load_rows("demo", cache_dir=str(tmp_path))[0]]
    for name in ("Dahoas/rm-static", "zwh9029/rm-static-m2m100-zh-jianti"):
        if (SHARED / name).exists():
            prompts += [r["prompt"] for r in load_rows(str(SHARED / name), cache_dir=str(tmp_path))[0][:300]]
    return [p for p in prompts if p.startswith("\n\nHuman:")]  # a few open with text before any turn


def templated(family):
    return set_chat_template(make_tokenizer(family), keep_own=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_template_renders_the_data_layers_prompts(family, tmp_path):
    tok = templated(family)
    prefix = prefix_tokens(tok)
    assert prefix == {"opt": "</s>", "bloom": "", "llama": "<s>"}[family]
    conversations = HANDMADE + [messages_of(p) for p in real_prompts(tmp_path)]
    assert len(conversations) > 100 and sum(len(c) > 1 for c in conversations) > 10
    for messages in conversations:
        prompt = flatten({"prompt": messages})["prompt"]  # the data layer's rendering of a conversation
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert text == prefix + prompt
        ids = tok.apply_chat_template(messages, add_generation_prompt=True)["input_ids"]
        assert ids == tok(prompt)["input_ids"]  # what PPO and the evaluations feed the model


def test_real_prompts_come_back_exactly(tmp_path):
    """A prompt already in the convention (one space after each role, contents without outer space)
    is rebuilt character for character from its messages."""
    tok = templated("bloom")
    canonical = [p for p in real_prompts(tmp_path) if all(c == " " + c.strip() for c in TURN.split(p)[2:-1:2])]
    assert len(canonical) > 50
    for prompt in canonical:
        assert tok.apply_chat_template(messages_of(prompt), add_generation_prompt=True, tokenize=False) == prompt


@pytest.mark.parametrize("family", FAMILIES)
def test_a_final_answer_ends_with_eos_as_in_training(family):
    tok = templated(family)
    for messages in HANDMADE:
        answer = {"role": "assistant", "content": " Paris, 巴黎. "}
        row = flatten({"prompt": messages, "chosen": [answer]})
        text = tok.apply_chat_template(messages + [answer], tokenize=False)
        assert text == prefix_tokens(tok) + row["prompt"] + row["chosen"] + tok.eos_token  # reward/SFT text


def test_unknown_role_is_refused():
    with pytest.raises(Exception, match="role 'tool' is not system, user or assistant"):
        templated("opt").apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_own_template_is_kept_when_trained_with_it():
    tok = make_tokenizer("llama")
    tok.chat_template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    assert set_chat_template(tok, keep_own=True).chat_template.startswith("{% for m in messages %}")
    assert set_chat_template(tok, keep_own=False).chat_template == human_assistant_template(tok)
