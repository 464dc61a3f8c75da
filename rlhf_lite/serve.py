"""An OpenAI-compatible server for a trained model: the app of `transformers serve`, held to the format
the model was trained in, plus a reward endpoint for a step-2 reward model.

    python -m rlhf_lite.serve --path outputs/demo/ppo/actor [--reward-model outputs/demo/rm]
        [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--continuous-batching]

POST /v1/chat/completions (streamed or not) and /v1/completions, GET /v1/models and /health are
transformers'. A chat answer is what `python -m rlhf_lite.chat` answers: the conversation rendered by
the model's chat template, sampled as chat samples unless the request says otherwise (temperature 0
is greedy), ended at EOS, at a stop string or where the model starts a Human turn (never included).
POST /v1/rewards scores {prompt, answer} pairs as reward training did (prompt + answer + EOS):
best-of-n sampling and remote rewards. Errors have OpenAI's body, {"error": {"message", "type",
"param", "code"}}, with a 4xx status for a bad request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import torch

from .chat import MAX_NEW_TOKENS, TEMPERATURE, TOP_P, TurnText, cut_turn, finished
from .data import conversations
from .data.chat_template import human_assistant_template
from .data.rows import HUMAN, SkipRow, normalize
from .errors import ArgumentParser, ConfigError, cli
from .eval.cli import MAX_LENGTH  # as rm_eval scores a pair by default
from .eval.scoring import eval_device, generation_config, score_answers
from .models import ModelSettings, load_reward_model, load_tokenizer, resolve_model_path
from .ranges import option

ROLES = ("system", *conversations.ROLES)


class APIError(Exception):
    """A request the server refuses, answered with OpenAI's error body."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


def error_response(status: int, message: str, code: str | None = None, param: str | None = None):
    from fastapi.responses import JSONResponse

    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


def _number(body: dict, key: str, low: float, high: float, integer=False):
    value = body.get(key)
    kinds = (int,) if integer else (int, float)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high):
        raise APIError(400, f"'{key}' must be {'an integer' if integer else 'a number'} in [{low}, {high}]", param=key)
    return value


def check_messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' must be a non-empty list of {role, content} messages", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise APIError(400, f"messages[{i}]: 'role' must be one of {', '.join(ROLES)}", param=f"messages[{i}]")
        content = m.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in parts):
            raise APIError(
                400, f"messages[{i}]: 'content' must be text or a list of text parts", param=f"messages[{i}]"
            )
    return messages


class Served:
    """The model one server answers for: its names, context, tokenizer and the defaults of a request."""

    def __init__(self, name: str, path: str, model, tokenizer, max_new_tokens: int):
        self.names, self.path, self.tokenizer = {name, path}, path, tokenizer
        self.context = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        self.max_new_tokens = max_new_tokens
        # chat's generation config (EOS from the tokenizer and the checkpoint, no sampling settings the
        # checkpoint may carry); a request's temperature, top_p and max_tokens apply on top of it.
        config = generation_config(model, tokenizer, max_new_tokens, True, TEMPERATURE, TOP_P)
        self.generation_config = config.to_json_string(use_diff=False)

    def prepare(self, body: dict, prompt_tokens: int) -> tuple[str, ...]:
        """Check `body` against the model and fill in the defaults; the stop strings of the answer."""
        if body.get("model", self.path) not in self.names:
            names = ", ".join(sorted(self.names))
            raise APIError(404, f"The model '{body['model']}' does not exist here; this server serves {names}",
                           "model_not_found", "model")  # fmt: skip
        body["model"] = self.path  # the name transformers pins the server to
        _number(body, "temperature", 0, 2)
        _number(body, "top_p", 0, 1)
        key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        asked = _number(body, key, 1, 2**31, integer=True)
        room = self.context - prompt_tokens
        if room < 1 or (asked is not None and asked > room):
            raise APIError(
                400,
                f"This model's maximum context length is {self.context} tokens. However, you requested "
                f"{prompt_tokens + (asked or 1)} tokens ({prompt_tokens} in the prompt, {asked or 1} in the "
                "completion).",
                "context_length_exceeded",
                key if room >= 1 else "messages",
            )
        body[key] = asked or min(self.max_new_tokens, room)
        body.setdefault("temperature", TEMPERATURE)
        body.setdefault("top_p", TOP_P)
        body.setdefault("generation_config", self.generation_config)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
            raise APIError(400, "'stop' must be a string or a list of up to 4 non-empty strings", param="stop")
        body["stop"] = [HUMAN, *stop]
        return tuple(body["stop"])


async def _cut_events(events, stops):
    """The SSE chunks of a streamed answer with each delta cut as TurnText cuts it."""
    turn = TurnText(stops)
    async for piece in events:
        out = []
        for event in filter(None, piece.split("\n\n")):
            try:
                chunk = json.loads(event.removeprefix("data: "))
                choice = chunk["choices"][0]
            except (ValueError, KeyError, IndexError, TypeError):  # an error event, say: passed on
                out.append(event)
                continue
            delta, final = choice.get("delta") or {}, choice.get("finish_reason") is not None
            if "content" in delta or final:
                delta["content"] = turn.feed(delta.get("content") or "", end=final)
                if not delta["content"] and not final:
                    continue
                if final and turn.stopped:
                    choice["finish_reason"] = "stop"
                choice["delta"] = delta
            out.append("data: " + json.dumps(chunk, ensure_ascii=False))
        if out:
            yield "".join(e + "\n\n" for e in out)


def cut_answers(response, stops):
    """`response` of the chat endpoint with each answer cut at its first stop string and stripped."""
    from fastapi.responses import JSONResponse, StreamingResponse

    if isinstance(response, StreamingResponse):
        return StreamingResponse(_cut_events(response.body_iterator, stops), media_type=response.media_type)
    data = json.loads(response.body)
    for choice in data.get("choices", []):
        text = choice["message"].get("content") or ""
        if cut_turn(text, stops) != text:
            choice["finish_reason"] = "stop"
        choice["message"]["content"] = finished(text, stops)
    return JSONResponse(data, response.status_code)


class Rewards:
    """A step-2 reward model scoring (prompt, answer) pairs in the format it was trained on."""

    def __init__(self, path: str):
        self.name = path
        self.tokenizer = load_tokenizer(path)
        dtype = "auto" if torch.cuda.is_available() else "fp32"
        self.model = eval_device(load_reward_model(ModelSettings(path, dtype=dtype), self.tokenizer))
        self.lock = threading.Lock()  # one batch at a time: requests come from the server's threads

    def rows(self, body: dict) -> list[dict]:
        if body.get("model", self.name) != self.name:
            raise APIError(404, f"The reward model '{body['model']}' is not loaded; this server has {self.name}",
                           "model_not_found", "model")  # fmt: skip
        items = body.get("input")
        if not isinstance(items, list) or not items:
            raise APIError(400, "'input' must be a non-empty list of {prompt, answer} objects", param="input")
        rows = []
        for i, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise SkipRow(f"is {type(item).__name__}, not an object")
                pair = conversations.flatten({"prompt": item.get("prompt"), "chosen": item.get("answer")})
                rows.append(normalize(pair, pairs=False))
            except SkipRow as e:
                problem = str(e).replace("'chosen'", "'answer'")
                raise APIError(400, f"input[{i}]: {problem}", param=f"input[{i}]") from None
        return rows

    def score(self, rows: list[dict]) -> list[float]:
        with self.lock:
            return score_answers(
                self.model, self.tokenizer, [r["prompt"] for r in rows], [r["chosen"] for r in rows], MAX_LENGTH
            )


def check_continuous_batching(model, tokenizer) -> None:
    """Refuse continuous batching for an architecture transformers cannot batch so (OPT, for one) at
    startup, not in the middle of the first stream: one token generated as the server would."""
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=1, do_sample=False, eos_token_id=tokenizer.eos_token_id)
    cb_logger = logging.getLogger("ContinuousBatchingLogger")  # it logs the failure's traceback
    level = cb_logger.level
    cb_logger.setLevel(logging.CRITICAL)
    try:
        outputs = model.generate_batch([tokenizer("a")["input_ids"]], generation_config=config, warmup=False)
    finally:
        cb_logger.setLevel(level)
    error = next(iter(outputs.values())).error
    if error:
        raise ConfigError(
            f"--continuous-batching: transformers cannot batch {type(model).__name__} so ({error}); "
            "serve it without the flag"
        )


def build_app(
    path: str,
    reward_model: str | None = None,
    api_key: str | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    continuous_batching: bool = False,
):
    """The FastAPI app: transformers' server pinned to `path`, our checks, answers and rewards added."""
    try:
        from fastapi import Request
        from fastapi.exceptions import RequestValidationError
        from starlette.exceptions import HTTPException
        from transformers.cli.serving.chat_completion import ChatCompletionHandler
        from transformers.cli.serving.completion import CompletionHandler
        from transformers.cli.serving.model_manager import ModelManager
        from transformers.cli.serving.response import ResponseHandler
        from transformers.cli.serving.server import build_server
        from transformers.cli.serving.systemone import SystemOneHandler
        from transformers.cli.serving.transcription import TranscriptionHandler
        from transformers.cli.serving.utils import GenerationState, Modality
    except ImportError as err:
        raise ConfigError(f"serving needs the serve extra ({err}): pip install 'rlhf-lite[serve]'") from None

    local = str(resolve_model_path(path))
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", "auto") if cuda else ("cpu", "float32")
    manager = ModelManager(device=device, dtype=dtype, continuous_batching=continuous_batching, force_model=local)
    model, tokenizer = manager.load_model_and_processor(local)
    if continuous_batching:
        check_continuous_batching(model, tokenizer)
    if not tokenizer.chat_template:  # exported before templates were: the format it was trained in
        tokenizer.chat_template = human_assistant_template(tokenizer)
    served = Served(path, local, model, tokenizer, max_new_tokens)
    rewards = Rewards(reward_model) if reward_model else None

    class ChatHandler(ChatCompletionHandler):
        async def handle_request(self, body: dict, request_id: str):
            messages = self.get_processor_inputs_from_messages(check_messages(body.get("messages")), Modality.LLM)
            prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"]
            stops = served.prepare(body, len(prompt))
            return cut_answers(await super().handle_request(body, request_id), stops)

    class TextHandler(CompletionHandler):
        async def handle_request(self, body: dict, request_id: str):
            if not isinstance(body.get("prompt"), str):
                raise APIError(400, "'prompt' must be a string", param="prompt")
            served.prepare(body, len(tokenizer(body["prompt"])["input_ids"]))
            return await super().handle_request(body, request_id)

    state = GenerationState(continuous_batching=continuous_batching)
    handlers = dict(model_manager=manager, generation_state=state)
    app = build_server(
        manager,
        ChatHandler(**handlers),
        completion_handler=TextHandler(**handlers),
        response_handler=ResponseHandler(**handlers),
        transcription_handler=TranscriptionHandler(manager, state),
        systemone_handler=SystemOneHandler(**handlers),
        generation_state=state,
    )

    @app.exception_handler(APIError)
    async def api_error(_request, err: APIError):
        return error_response(err.status, str(err), err.code, err.param)

    @app.exception_handler(HTTPException)
    async def http_error(_request, err: HTTPException):
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request, err: RequestValidationError):
        problems = "; ".join(e.get("msg", "") for e in err.errors())
        return error_response(400, f"The request body is not a JSON object: {problems}", "invalid_json")

    @app.exception_handler(Exception)
    async def server_error(_request, err: Exception):
        return error_response(500, f"{type(err).__name__}: {err}")

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        if (
            api_key
            and request.url.path.startswith("/v1")
            and request.headers.get("authorization") != f"Bearer {api_key}"
        ):
            return error_response(401, "Incorrect or missing API key (Authorization: Bearer <key>)", "invalid_api_key")
        return await call_next(request)

    @app.post("/v1/rewards")
    async def score_pairs(body: dict):
        if rewards is None:
            raise APIError(404, "No reward model is loaded: start the server with --reward-model DIR", "not_found")
        rows = rewards.rows(body)
        scores = await asyncio.to_thread(rewards.score, rows)
        data = [{"object": "reward", "index": i, "reward": s} for i, s in enumerate(scores)]
        return {"object": "list", "model": rewards.name, "data": data}

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen | None = None, timeout: float = 300) -> None:
    """Poll `url` until it answers 200; ConfigError if `process` died or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ConfigError(f"the server exited with status {process.returncode} before it was up")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        time.sleep(0.5)
    raise ConfigError(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def server_process(path: str, api_key: str | None = None, flags=(), output=None, timeout: float = 300):
    """This server for `path` (and its `flags`) in a child process on a free loopback port, for as long
    as the block runs; its API's base URL. `output`: a file for what it prints."""
    port = free_port()
    cmd = [sys.executable, "-m", "rlhf_lite.serve", "--path", path, "--port", str(port), *flags]
    env = {**os.environ, **({"RLHF_LITE_API_KEY": api_key} if api_key else {})}
    process = subprocess.Popen(cmd, env=env, stdout=output, stderr=subprocess.STDOUT if output else None)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process, timeout)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        if process.poll() is None:
            process.kill()


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m rlhf_lite.serve", description=__doc__.splitlines()[0])
    p.add_argument("--path", required=True, help="model directory (or hub id) to serve, with its tokenizer")
    p.add_argument("--reward-model", help="step-2 reward model scoring pairs at /v1/rewards")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=option("port"), default=8000)
    p.add_argument("--api-key", default=os.environ.get("RLHF_LITE_API_KEY"), help="require this bearer token")
    p.add_argument("--max-new-tokens", type=option("max_new_tokens"), default=MAX_NEW_TOKENS,
                   help="answer length when a request sets no max_tokens")  # fmt: skip
    p.add_argument("--continuous-batching", action="store_true",
                   help="generate for concurrent requests together (transformers' paged attention; sampling "
                   "settings are then the first request's)")  # fmt: skip
    return p


def main(argv=None) -> None:
    import uvicorn

    args = parser().parse_args(argv)
    app = build_app(args.path, args.reward_model, args.api_key, args.max_new_tokens, args.continuous_batching)
    base = f"http://{args.host}:{args.port}/v1"
    print(f"serving {args.path} at {base} (OpenAI API; model name '{args.path}')", flush=True)
    if args.reward_model:
        print(f"rewards from {args.reward_model} at {base}/rewards", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    cli(main)
