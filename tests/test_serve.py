"""rlhf_lite.serve on tiny models, through the official `openai` client and raw HTTP on loopback: the same
answers as `rlhf_lite.chat --greedy`, rewards as evaluate/rm_eval.py scores them, OpenAI-style errors
for bad input, eight concurrent streams."""

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra is not installed")
import httpx  # noqa: E402
from openai import OpenAI  # noqa: E402

from rlhf_lite.chat import Chat  # noqa: E402
from rlhf_lite.data.chat_template import set_chat_template  # noqa: E402
from rlhf_lite.embedded import ensure_embedded_model  # noqa: E402
from rlhf_lite.errors import ModelError  # noqa: E402
from rlhf_lite.eval.rm_eval import main as rm_eval  # noqa: E402
from rlhf_lite.models import ModelSettings, load_causal_lm, load_tokenizer  # noqa: E402
from rlhf_lite.serve import (  # noqa: E402
    APIError,
    Served,
    _cut_events,
    check_messages,
    cut_answers,
    free_port,
    server_process,
    wait_until_up,
)
from tests.tiny_models import make_tiny_model  # noqa: E402

KEY = "test-key"
QUESTIONS = ["What is the capital of France?", "中国的首都是哪里？", "Please explain how a language model works."]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The embedded SmolLM2-135M as the pipeline exports an actor (its weights, the Human/Assistant chat
    template in its tokenizer): a real model, whose answers are text, in English and Chinese. The
    reward model is a tiny one."""
    try:
        embedded = ensure_embedded_model("embedded:smollm2-135m")
    except ModelError as err:
        pytest.skip(str(err))
    root = tmp_path_factory.mktemp("serve")
    actor = root / "actor"
    actor.mkdir()
    for f in embedded.iterdir():
        if f.suffix in (".json", ".safetensors") and not f.name.startswith(("tokenizer", "special_tokens")):
            (actor / f.name).symlink_to(f)
    set_chat_template(load_tokenizer(str(embedded)), keep_own=False).save_pretrained(actor)
    reward = make_tiny_model(root / "rm", "opt", kind="reward")
    return {"actor": str(actor), "rm": str(reward), "root": root}


@contextlib.contextmanager
def running_server(models, *flags):
    """The server as `make serve` starts it, with an API key; its API's base URL."""
    flags = ["--reward-model", models["rm"], "--api-key", KEY, "--max-new-tokens", "24", *flags]
    with open(models["root"] / f"serve{len(flags)}.log", "w") as log:
        with server_process(models["actor"], flags=flags, output=log, timeout=120) as base:
            yield base


@pytest.fixture(scope="module")
def server(models):
    with running_server(models) as base:
        yield base


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server, api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def chat_model(models):
    tokenizer = load_tokenizer(models["actor"], padding_side="left")
    return load_causal_lm(ModelSettings(models["actor"]), tokenizer).eval(), tokenizer


def greedy_chat(chat_model, turns: list[str], max_new_tokens=24) -> list[str]:
    """The terminal chat's greedy answers, on one thread as the server computes them (the same sums in
    the same order: a near tie never goes another way)."""
    chat = Chat(*chat_model, out=open(os.devnull, "w"), max_new_tokens=max_new_tokens, do_sample=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [chat.ask(q) for q in turns]
    finally:
        torch.set_num_threads(threads)


def streamed(client, model, messages, **kw) -> tuple[str, str]:
    text, finish = "", None
    for chunk in client.chat.completions.create(model=model, messages=messages, stream=True, **kw):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return text, finish


@pytest.mark.slow
def test_openai_client_gets_the_answers_of_chat_greedy(models, client, chat_model):
    model = client.models.list().data[0].id
    assert model == models["actor"]
    answers = greedy_chat(chat_model, QUESTIONS)  # one conversation: the later turns carry history
    assert all(answers) and any("\u4e00" <= c <= "\u9fff" for c in answers[1]), answers  # Chinese in, Chinese out
    messages = []
    for question, expected in zip(QUESTIONS, answers):
        messages.append({"role": "user", "content": question})
        reply = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=24)
        assert reply.choices[0].message.content == expected
        assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens <= 24
        text, finish = streamed(client, model, messages, temperature=0, max_tokens=24)
        assert (text, finish) == (expected, reply.choices[0].finish_reason)
        messages.append({"role": "assistant", "content": expected})


@pytest.mark.slow
def test_sampling_defaults_and_seed(client, models):
    """No temperature, top_p or max_tokens given: chat's sampling and the server's answer length."""
    messages = [{"role": "user", "content": QUESTIONS[0]}]
    first = client.chat.completions.create(model=models["actor"], messages=messages, seed=3)
    again = client.chat.completions.create(model=models["actor"], messages=messages, seed=3)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.usage.completion_tokens <= 24  # --max-new-tokens 24


@pytest.mark.slow
def test_rewards_match_rm_eval(models, server, tmp_path):
    pairs = [
        {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "I do not know."},
        {"prompt": "中国的首都是哪里？", "chosen": "中国的首都是北京。", "rejected": "上海"},
        {"prompt": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant:", "chosen": "Good.",
         "rejected": "Bad."},
    ]  # fmt: skip
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    expected = rm_eval(["--model", models["rm"], "--pairs", str(tmp_path / "pairs.json")])["pairs"]
    items = [{"prompt": p["prompt"], "answer": p[k]} for p in pairs for k in ("chosen", "rejected")]
    items.append({"prompt": [{"role": "user", "content": "What is the capital of France?"}], "answer": "Paris."})
    r = httpx.post(f"{server}/rewards", json={"input": items}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    scores = [d["reward"] for d in r.json()["data"]]
    want = [s for e in expected for s in (e["chosen_score"], e["rejected_score"])]
    assert scores[:-1] == pytest.approx(want, abs=1e-4)
    assert scores[-1] == pytest.approx(scores[0], abs=1e-4)  # the conversation renders as the plain prompt


BAD = [
    ("malformed JSON", "/chat/completions", b'{"messages": [', 400, "invalid_json"),
    ("JSON array", "/chat/completions", [], 400, "invalid_json"),
    ("unknown model", "/chat/completions", {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 404,
     "model_not_found"),
    ("empty messages", "/chat/completions", {"messages": []}, 400, None),
    ("no messages", "/chat/completions", {"max_tokens": 3}, 400, None),
    ("bad role", "/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, 400, None),
    ("content not text", "/chat/completions", {"messages": [{"role": "user", "content": 7}]}, 400, None),
    ("max_tokens beyond context", "/chat/completions",
     {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000}, 400, "context_length_exceeded"),
    ("prompt beyond context", "/chat/completions", {"messages": [{"role": "user", "content": "sea " * 9000}]}, 400,
     "context_length_exceeded"),
    ("negative max_tokens", "/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1},
     400, None),
    ("temperature too high", "/chat/completions",
     {"messages": [{"role": "user", "content": "hi"}], "temperature": 9}, 400, None),
    ("bad stop", "/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stop": [1]}, 400, None),
    ("unknown field", "/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "colour": "red"}, 422,
     None),
    ("completion without prompt", "/completions", {"max_tokens": 3}, 400, None),
    ("empty rewards", "/rewards", {"input": []}, 400, None),
    ("reward of an empty answer", "/rewards", {"input": [{"prompt": "hi", "answer": "ok"}, {"prompt": "hi",
     "answer": " "}]}, 400, None),
    ("unknown path", "/nowhere", {}, 404, None),
]  # fmt: skip


@pytest.mark.slow
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(server, client, models):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for name, path, body, status, code in BAD:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = httpx.post(server + path, content=content, headers=headers, timeout=60)
        assert r.status_code == status, (name, r.text)
        error = r.json()["error"]
        assert error["message"] and error["type"] == "invalid_request_error", name
        assert code is None or error["code"] == code, (name, error)
    assert (
        "input[1]: field 'answer' is empty"
        in httpx.post(server + "/rewards", json=BAD[-2][2], headers=headers).json()["error"]["message"]
    )
    for auth in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(server + "/chat/completions", json={"messages": []}, headers=auth)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server.removesuffix("/v1") + "/health").status_code == 200  # no key needed
    reply = client.chat.completions.create(model=models["actor"], messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].finish_reason in ("stop", "length")


EIGHT = [f"{q} ({i})" for i, q in enumerate(QUESTIONS * 3)][:8]


def one_by_one(client, model, questions) -> list[str]:
    ask = lambda q: client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": q}], temperature=0, max_tokens=16
    )
    return [ask(q).choices[0].message.content for q in questions]


def all_at_once(base, model, questions) -> list[tuple[str, str]]:
    """(answer, finish reason) of each question, streamed by clients that all ask at once."""
    results = [None] * len(questions)

    def run(i):
        own = OpenAI(base_url=base, api_key=KEY, max_retries=0, timeout=300)
        messages = [{"role": "user", "content": questions[i]}]
        results[i] = streamed(own, model, messages, temperature=0, max_tokens=16)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(r is not None and r[1] in ("stop", "length") for r in results), results  # all complete
    return results


@pytest.mark.slow
def test_eight_concurrent_streaming_clients_all_get_complete_answers(server, client, models):
    results = all_at_once(server, models["actor"], EIGHT)
    assert [answer for answer, _ in results] == one_by_one(client, models["actor"], EIGHT)


@pytest.mark.slow
def test_continuous_batching_serves_concurrent_clients_together(models, client):
    """With --continuous-batching the eight streams are generated together: the same greedy answers."""
    with running_server(models, "--continuous-batching") as batched:
        results = all_at_once(batched, models["actor"], EIGHT)
    assert [answer for answer, _ in results] == one_by_one(client, models["actor"], EIGHT)


@pytest.mark.slow
def test_text_completions(server, client, models):
    reply = client.completions.create(model=models["actor"], prompt="\n\nHuman: hi\n\nAssistant:", max_tokens=5)
    assert isinstance(reply.choices[0].text, str) and reply.usage.completion_tokens <= 5


def test_messages_are_checked():
    assert check_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    for bad in (None, [], [{"content": "hi"}], [{"role": "user"}], [{"role": "user", "content": [{"type": "image"}]}]):
        with pytest.raises(APIError):
            check_messages(bad)


def served(chat_model):
    model, tokenizer = chat_model
    return Served("tiny", "/models/tiny", model, tokenizer, max_new_tokens=20)


def test_request_defaults_and_limits(chat_model):
    s = served(chat_model)
    n = s.context  # SmolLM2's 8192
    body = {"model": "tiny", "messages": [], "stop": "END"}
    assert s.prepare(body, prompt_tokens=10) == ("\n\nHuman:", "END")
    assert body["model"] == "/models/tiny" and body["max_tokens"] == 20 and body["temperature"] == 0.7
    assert json.loads(body["generation_config"])["eos_token_id"] == [chat_model[1].eos_token_id]
    body = {"max_completion_tokens": 5}
    s.prepare(body, prompt_tokens=n - 5)
    assert body["max_completion_tokens"] == 5  # fits exactly
    for bad, tokens in (({"max_tokens": 7}, n - 6), ({}, n), ({"model": "other"}, 1), ({"top_p": 2}, 1)):
        with pytest.raises(APIError):
            s.prepare(bad, prompt_tokens=tokens)
    short = {}
    s.prepare(short, prompt_tokens=n - 6)
    assert short["max_tokens"] == 6  # what room the context leaves


def sse(*chunks) -> list[str]:
    return ["".join(f"data: {json.dumps(c)}\n\n" for c in group) for group in chunks]


def delta(content=None, finish=None, role=None):
    d = {k: v for k, v in (("content", content), ("role", role)) if v is not None}
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def test_streamed_answers_are_cut_at_the_human_turn():
    async def events():
        for piece in sse([delta(role="assistant")], [delta(" Paris"), delta(" is.\n\n")], [delta("Hum")],
                         [delta("an: and")], [delta(finish="length")]):  # fmt: skip
            yield piece

    async def collect():
        return [e async for e in _cut_events(events(), ("\n\nHuman:",))]

    chunks = [json.loads(e.removeprefix("data: ")) for p in asyncio.run(collect()) for e in p.split("\n\n") if e]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "Paris is." and chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # ended by the turn, not the length


def test_whole_answers_are_cut_and_stripped():
    from fastapi.responses import JSONResponse

    body = {
        "choices": [{"message": {"role": "assistant", "content": " Paris.\n\nHuman: more"}, "finish_reason": "length"}]
    }
    out = json.loads(cut_answers(JSONResponse(body), ("\n\nHuman:",)).body)
    assert out["choices"][0] == {"message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}


def test_bad_arguments_exit(models):
    for argv in (["--path", models["actor"], "--port", "0"], ["--port", "8000"]):
        r = subprocess.run([sys.executable, "-m", "rlhf_lite.serve", *argv], capture_output=True, text=True)
        assert r.returncode == 2 and "error:" in r.stderr


@pytest.mark.slow
def test_continuous_batching_is_refused_at_startup_where_transformers_lacks_it(tmp_path):
    model = make_tiny_model(tmp_path / "opt", "opt")
    r = subprocess.run([sys.executable, "-m", "rlhf_lite.serve", "--path", str(model), "--continuous-batching"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and "error: --continuous-batching: transformers cannot batch OPTForCausalLM" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_missing_model_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rlhf_lite.serve", "--path", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium's own calls home fail on a closed network, many at a time: switched off.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip


@pytest.fixture(scope="module")
def webchat(models):
    """The page as `make webchat MODEL=...` starts it (its own server for the model), on a free port."""
    port = free_port()
    log = open(models["root"] / "webchat.log", "w")
    cmd = [sys.executable, "-m", "rlhf_lite.webchat", "--path", models["actor"], "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", process, timeout=180)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        api = re.search(r"\(API: (\S+)\)", (models["root"] / "webchat.log").read_text()).group(1)
        yield f"http://127.0.0.1:{port}/", OpenAI(base_url=api, api_key="none", max_retries=0)
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
    assert children and not any(Path(f"/proc/{pid}").exists() for pid in children)  # its server went too


# Records each text the last answer shows as the page changes: a streamed answer shows several.
WATCH_ANSWER = """() => {
    window.answers = [];
    new MutationObserver(() => {
        const bot = document.querySelectorAll(".bot-row .message-content");
        const text = bot.length ? bot[bot.length - 1].innerText.trim() : "";
        if (text && text !== window.answers.at(-1)) window.answers.push(text);
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
def test_web_chat_in_a_real_browser(webchat, models, tmp_path):
    """A person's visit: ask, watch the answer stream in, clear, ask in Chinese; screenshots are kept."""
    if CHROMIUM is None:
        if os.environ.get("RLHF_LITE_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's package)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    url, client = webchat  # the page, and the API of the server it started (whose answers it shows)

    def greedy(question):
        messages = [{"role": "user", "content": question}]
        reply = client.chat.completions.create(model=models["actor"], messages=messages, temperature=0, max_tokens=64)
        return reply.choices[0].message.content

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(url)
        for label, value in (("Temperature (0: greedy)", "0"), ("Max new tokens", "64")):
            field = page.get_by_label(f"number input for {label}")
            field.fill(value)
            field.press("Tab")
        page.evaluate(WATCH_ANSWER)
        box = page.get_by_role("textbox")  # the message box (its placeholder goes once a chat is cleared)
        expect(box).to_have_attribute("placeholder", "Type a message and press Enter")
        box.fill(QUESTIONS[0])
        box.press("Enter")
        answer = page.locator(".bot-row .message-content").last
        expect(answer).to_have_text(words(greedy(QUESTIONS[0])), timeout=120_000)  # normalized whitespace
        shown = page.evaluate("() => window.answers")
        assert len(shown) >= 2 and shown[-1].startswith(shown[0]), shown  # it grew piece by piece
        page.screenshot(path=str(tmp_path / "webchat-en.png"))

        page.get_by_role("button", name="Clear").click()
        expect(page.locator(".message-row")).to_have_count(0, timeout=10_000)
        box.fill(QUESTIONS[1])
        box.press("Enter")
        expect(page.locator(".user-row")).to_have_count(1)
        expect(page.locator(".user-row").last).to_contain_text("中国的首都是哪里")
        expect(answer).to_have_text(words(greedy(QUESTIONS[1])), timeout=120_000)
        page.screenshot(path=str(tmp_path / "webchat-zh.png"))
        browser.close()
    assert all((tmp_path / f"webchat-{lang}.png").stat().st_size > 10_000 for lang in ("en", "zh"))


@pytest.mark.slow
def test_webchat_path_serves_through_a_server_process_and_names_the_model(models):
    from rlhf_lite.webchat import page, parser

    assert parser().parse_args(["--path", "m"]).host == "127.0.0.1"  # loopback unless asked
    with server_process(models["actor"], api_key="k") as base:
        listed = OpenAI(base_url=base, api_key="k", max_retries=0).models.list().data[0].id
        assert listed == models["actor"]
        assert page(base, "k").title == f"rlhf-lite: {listed}"
        assert page(base, "k", model="chosen-name").title == "rlhf-lite: chosen-name"


def test_server_listens_on_loopback_by_default():
    from rlhf_lite.serve import parser

    assert parser().parse_args(["--path", "m"]).host == "127.0.0.1"


def test_webchat_says_when_its_api_does_not_answer():
    port = free_port()  # nothing listens there
    r = subprocess.run([sys.executable, "-m", "rlhf_lite.webchat", "--api-base", f"http://127.0.0.1:{port}/v1"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and f"error: the API at http://127.0.0.1:{port}/v1 does not answer" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_readme_client_block_runs_against_the_server(server, models, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "/v1/rewards" in b)
    code = block.replace("http://127.0.0.1:8000/v1", server).replace('"outputs/demo/ppo/actor"', repr(models["actor"]))
    monkeypatch.setenv("RLHF_LITE_API_KEY", KEY)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert len(scope["answers"]) == len(scope["scores"]) == 4 and scope["best"] in scope["answers"]
