"""rlhf_lite.chat on tiny random models: prompt format, history, trimming, streaming, stopping."""

import copy
import io
import json
import shutil

import pytest
import torch

from rlhf_lite.chat import Chat, _pending, _StopAtTurn, _Streamer, cut_turn, main
from rlhf_lite.errors import ConfigError
from rlhf_lite.models import ModelSettings, load_causal_lm, load_tokenizer
from tests.tiny_models import make_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("chat"), "opt")


@pytest.fixture(scope="module")
def loaded(model_dir):
    tokenizer = load_tokenizer(str(model_dir), padding_side="left")
    return load_causal_lm(ModelSettings(str(model_dir)), tokenizer).eval(), tokenizer


def feed(*lines):
    """An input function returning `lines` one by one, then EOF like a closed terminal."""
    pending = list(lines)

    def read(prompt):
        if not pending:
            raise EOFError
        return pending.pop(0)

    return read, pending


def new_chat(loaded, **kw):
    model, tokenizer = loaded
    return Chat(model, tokenizer, out=io.StringIO(), **{"max_new_tokens": 6, "do_sample": False, **kw})


def test_second_round_prompt_holds_first_exchange_and_answers_stream(loaded):
    chat = new_chat(loaded)  # no chat template of its own: the Human/Assistant one, after OPT's </s>
    a1 = chat.ask("What is the capital of France?")
    assert chat.last_prompt == "</s>\n\nHuman: What is the capital of France?\n\nAssistant:"
    a2 = chat.ask("And the sea?")
    assert chat.last_prompt == (
        "</s>\n\nHuman: What is the capital of France?\n\nAssistant: " + a1 + "\n\nHuman: And the sea?\n\nAssistant:"
    )
    assert chat.history == [("What is the capital of France?", a1), ("And the sea?", a2)]
    assert chat.out.getvalue() == f"{a1}\n{a2}\n"  # streamed text == returned answers


def test_a_model_with_its_own_template_is_prompted_in_it(loaded):
    model, tokenizer = loaded
    own = copy.deepcopy(tokenizer)
    own.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    chat = Chat(model, own, out=io.StringIO(), max_new_tokens=4, do_sample=False)
    answer = chat.ask("hi")
    chat.ask("again")
    assert chat.last_prompt == f"<|user|>hi<|assistant|>{answer}<|user|>again<|assistant|>"


def test_clear_forgets_history(loaded):
    chat = new_chat(loaded)
    chat.ask("hello")
    chat.clear()
    assert chat.history == []
    chat.ask("again")
    assert chat.last_prompt == "</s>\n\nHuman: again\n\nAssistant:"


def test_trimming_drops_oldest_turns_first(loaded):
    model, tokenizer = loaded
    turns = [(f"question number {i} about the sea", f"answer number {i}") for i in range(3)]
    newest = "\n\nHuman: question number 2 about the sea\n\nAssistant: answer number 2\n\nHuman: why?\n\nAssistant:"
    chat = new_chat(loaded, max_history_tokens=len(tokenizer(newest)["input_ids"]))
    chat.history = list(turns)
    ids = chat.prompt_ids("why?")
    assert chat.history == turns[2:] and chat.last_prompt == "</s>" + newest and len(ids) <= chat.budget
    chat.ask("why?")  # generation works on the trimmed prompt and keeps the new turn
    assert [q for q, _ in chat.history] == [turns[2][0], "why?"]
    # a question longer than the whole budget keeps its last tokens (ending in "Assistant:")
    ids = chat.prompt_ids("the sea " * 200)
    assert chat.history == [] and len(ids) == chat.budget
    assert tokenizer.decode(ids).endswith("\n\nAssistant:")


def test_budget_follows_context_and_rejects_too_many_new_tokens(loaded):
    assert new_chat(loaded, max_new_tokens=56).budget == 256 - 56  # max_position_embeddings
    with pytest.raises(ConfigError, match="no room"):
        new_chat(loaded, max_new_tokens=256)


def test_chinese_round_trip(loaded):
    _, tokenizer = loaded
    chat = new_chat(loaded, do_sample=True, temperature=0.7, top_p=0.9)
    torch.manual_seed(0)
    question = "中国的首都是哪里？"
    answer = chat.ask(question)
    assert question in chat.last_prompt and question in tokenizer.decode(chat.prompt_ids(question))
    assert isinstance(answer, str) and answer.encode("utf-8")
    assert chat.history[0][0] == question


def test_model_starting_a_human_turn_is_cut_and_stops(loaded):
    _, tokenizer = loaded
    assert cut_turn(" Paris.\n\nHuman: and Spain?\n\nAssistant:") == " Paris."
    assert cut_turn(" Paris.") == " Paris."
    assert _pending("Paris.\n\nHum") == len("\n\nHum") and _pending("Paris.") == 0
    out = io.StringIO()
    streamer = _Streamer(tokenizer, out)
    streamer.put(torch.tensor([tokenizer("\n\nHuman: hi\n\nAssistant:")["input_ids"]]))  # the prompt
    generated = tokenizer(" The capital is Paris.\n\nHuman: what about", add_special_tokens=False)["input_ids"]
    for i, token in enumerate(generated):
        streamer.put(torch.tensor([token]))
        assert "Human" not in out.getvalue() and "\n\n" not in out.getvalue()
        seq = torch.tensor([[7, 7] + generated[: i + 1]])
        assert bool(_StopAtTurn(tokenizer, 2)(seq, None)[0]) == ("\n\nHuman:" in tokenizer.decode(generated[: i + 1]))
    streamer.end()
    assert streamer.stop and out.getvalue() == "The capital is Paris.\n"


def test_main_reads_until_quit(model_dir):
    read, pending = feed("hello", "clear", "你好", "quit", "never read")
    out = io.StringIO()
    main(["--path", str(model_dir), "--max-new-tokens", "4", "--greedy"], input_fn=read, out=out)
    assert pending == ["never read"]
    assert out.getvalue().count("Assistant: ") == 2 and "(conversation cleared)" in out.getvalue()


def test_tokenizer_comes_from_model_folder_not_name_or_path(model_dir, tmp_path):
    moved = shutil.copytree(model_dir, tmp_path / "moved")
    config = json.loads((moved / "config.json").read_text())
    (moved / "config.json").write_text(json.dumps({**config, "_name_or_path": "/nonexistent/base-model"}))
    out = io.StringIO()
    main(["--path", str(moved), "--max-new-tokens", "4"], input_fn=feed("hello")[0], out=out)  # then EOF
    assert out.getvalue().count("Assistant: ") == 1


def test_bad_arguments_exit(model_dir):
    with pytest.raises(SystemExit):
        main(["--path", str(model_dir), "--temperature", "0"], input_fn=lambda _: "quit", out=io.StringIO())
