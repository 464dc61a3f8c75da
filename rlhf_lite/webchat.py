"""A web chat page for a trained model: Gradio's chat interface over the OpenAI API of rlhf_lite.serve.

    python -m rlhf_lite.webchat --path outputs/demo/ppo/actor        # starts that server too
    python -m rlhf_lite.webchat --api-base http://127.0.0.1:8000/v1 [--api-key KEY]

Multi-turn, answers streamed token by token, a clear button, temperature (0: greedy) and
max-token controls; the page listens on 127.0.0.1:7860 unless --host / --port say otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from .chat import MAX_NEW_TOKENS, TEMPERATURE
from .errors import ArgumentParser, ConfigError, cli
from .ranges import option
from .serve import server_process


def page(api_base: str, api_key: str | None = None, model: str | None = None):
    """The Gradio app chatting with the first model (or `model`) the OpenAI endpoint `api_base` lists."""
    try:
        import gradio as gr
        from openai import APIError, OpenAI
    except ImportError as err:
        raise ConfigError(f"the web chat needs the serve extra ({err}): pip install 'rlhf-lite[serve]'") from None
    client = OpenAI(base_url=api_base, api_key=api_key or "none", max_retries=0)
    try:
        model = model or client.models.list().data[0].id
    except APIError as err:  # not up, wrong key, not an OpenAI API
        raise ConfigError(f"the API at {api_base} does not answer /models: {err}") from None

    def respond(message: str, history: list[dict], temperature: float, max_tokens: int):
        messages = [{"role": m["role"], "content": _text(m["content"])} for m in history]
        try:
            stream = client.chat.completions.create(
                model=model,
                messages=[*messages, {"role": "user", "content": message}],
                temperature=temperature,
                max_tokens=int(max_tokens),
                stream=True,
            )
            answer = ""
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    answer += chunk.choices[0].delta.content
                    yield answer
        except APIError as err:  # the server's own message: context exceeded, say
            raise gr.Error(getattr(err, "message", str(err))) from None

    controls = [
        gr.Slider(0, 2, value=TEMPERATURE, step=0.05, label="Temperature (0: greedy)"),
        gr.Slider(1, 1024, value=MAX_NEW_TOKENS, step=1, label="Max new tokens"),
    ]
    return gr.ChatInterface(
        respond,
        additional_inputs=controls,
        additional_inputs_accordion=gr.Accordion("Sampling", open=True),
        title=f"rlhf-lite: {model}",
        description="Ask in English or Chinese (中文也可以); the trash icon clears the conversation.",
        textbox=gr.Textbox(placeholder="Type a message and press Enter", submit_btn=True),
        fill_height=True,
    )


def _text(content) -> str:
    """A history message's content as text (Gradio may hand it over as a list of parts)."""
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return content if isinstance(content, str) else str(content)


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m rlhf_lite.webchat", description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--path", help="model directory to serve and chat with (starts rlhf_lite.serve)")
    source.add_argument("--api-base", help="an OpenAI-compatible endpoint already running, e.g. http://host:8000/v1")
    p.add_argument("--api-key", default=os.environ.get("RLHF_LITE_API_KEY"), help="the endpoint's bearer token")
    p.add_argument("--model", help="model name at --api-base (default: the first it lists)")
    p.add_argument("--host", default="127.0.0.1", help="address the page listens on")
    p.add_argument("--port", type=option("port"), default=7860)
    return p


def main(argv=None) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a closed network
    args = parser().parse_args(argv)
    # A termination signal ends the page like Ctrl-C does, so the server it started goes with it.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    with contextlib.ExitStack() as stack:
        base = args.api_base or stack.enter_context(server_process(args.path, args.api_key))
        app = page(base, args.api_key, args.model)
        print(f"web chat at http://{args.host}:{args.port} (API: {base})", flush=True)
        app.launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    cli(main)
