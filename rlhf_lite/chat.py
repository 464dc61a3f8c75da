"""Chat with a trained model in the Human/Assistant format it was trained on (DeepSpeed-Chat's chat.py).

    python -m rlhf_lite.chat --path out/ppo/actor [--max-new-tokens 128] [--greedy]

The prompt is the whole conversation, oldest turns dropped once it and --max-new-tokens would not
fit the model's context; answers stream and end at EOS or where the model starts a Human turn.
"""

import sys

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

from .data.rows import ASSISTANT, HUMAN
from .errors import ArgumentParser, ConfigError, cli
from .eval.scoring import eval_device, generation_config
from .models import ModelSettings, load_causal_lm, load_tokenizer
from .ranges import option


def cut_turn(text: str) -> str:
    """`text` up to the first "\\n\\nHuman:": what follows is the model playing the user."""
    return text.split(HUMAN, 1)[0]


def _pending(text: str) -> int:
    """Length of the longest end of `text` that may still grow into "\\n\\nHuman:"."""
    return next((k for k in range(len(HUMAN) - 1, 0, -1) if text.endswith(HUMAN[:k])), 0)


class _Streamer(TextStreamer):
    """Writes the answer to `out` as whole words arrive (never half a UTF-8 character), holding
    back what may be the start of a "\\n\\nHuman:" turn and never showing that turn."""

    def __init__(self, tokenizer, out):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.out, self.text, self.shown, self.stop = out, "", 0, False

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.text += text
        self.stop = self.stop or HUMAN in self.text
        answer = cut_turn(self.text).lstrip()
        ready = answer.rstrip() if stream_end or self.stop else answer[: len(answer) - _pending(answer)]
        self.out.write(ready[self.shown :] + ("\n" if stream_end else ""))
        self.out.flush()
        self.shown = max(self.shown, len(ready))


class _StopAtTurn(StoppingCriteria):
    """Ends generation once the new tokens (from `start`) contain "\\n\\nHuman:"."""

    def __init__(self, tokenizer, start: int):
        self.tokenizer, self.start = tokenizer, start

    def __call__(self, input_ids, scores, **kwargs):
        text = self.tokenizer.decode(input_ids[0, self.start :], skip_special_tokens=True)
        return torch.full((input_ids.shape[0],), HUMAN in text, dtype=torch.bool, device=input_ids.device)


class Chat:
    """A conversation with `model`; `ask` streams each answer to `out` and keeps the turn."""

    def __init__(
        self,
        model,
        tokenizer,
        out=sys.stdout,
        max_new_tokens: int = 128,
        do_sample: bool = True,
        temperature: float = 0.7,
        top_p: float = 0.9,
        max_history_tokens: int | None = None,
    ):
        self.model, self.tokenizer, self.out = model, tokenizer, out
        self.history: list[tuple[str, str]] = []
        self.last_prompt = ""
        context = getattr(model.config, "max_position_embeddings", None) or min(tokenizer.model_max_length, 2048)
        self.budget = min(context - max_new_tokens, max_history_tokens or context)
        if self.budget < 1:
            raise ConfigError(
                f"--max-new-tokens {max_new_tokens} leaves no room for a prompt in the "
                f"model's context of {context} tokens"
            )
        self.config = generation_config(model, tokenizer, max_new_tokens, do_sample, temperature, top_p)

    def prompt(self, question: str | None = None) -> str:
        """The conversation so far in the training format, followed by `question` when given."""
        text = "".join(f"{HUMAN} {q}{ASSISTANT} {a}" for q, a in self.history)
        return text + (f"{HUMAN} {question.strip()}{ASSISTANT}" if question is not None else "")

    def clear(self) -> None:
        self.history = []

    def prompt_ids(self, question: str) -> list[int]:
        """Token ids of the prompt for `question`, forgetting the oldest turns until it fits the
        budget (a single question too long for it keeps its last tokens)."""
        while True:
            self.last_prompt = self.prompt(question)
            ids = self.tokenizer(self.last_prompt)["input_ids"]
            if len(ids) <= self.budget or not self.history:
                return ids[-self.budget :]
            self.history.pop(0)

    @torch.no_grad()
    def ask(self, question: str) -> str:
        ids = self.prompt_ids(question)
        input_ids = torch.tensor([ids], device=next(self.model.parameters()).device)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=self.config,
            streamer=_Streamer(self.tokenizer, self.out),
            stopping_criteria=StoppingCriteriaList([_StopAtTurn(self.tokenizer, len(ids))]),
        )
        answer = cut_turn(self.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)).strip()
        self.history.append((question.strip(), answer))
        return answer


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m rlhf_lite.chat", description=__doc__.splitlines()[0])
    p.add_argument("--path", required=True, help="model directory (or hub id) with its tokenizer")
    p.add_argument("--max-new-tokens", type=option("max_new_tokens"), default=128)
    p.add_argument("--temperature", type=option("temperature"), default=0.7)
    p.add_argument("--top-p", type=option("top_p"), default=0.9)
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    p.add_argument("--max-history-tokens", type=option("max_history_tokens"), help="cap on prompt tokens")
    return p


def main(argv=None, input_fn=input, out=None) -> None:
    args = parser().parse_args(argv)
    if out is None:
        out = sys.stdout
        for stream in (sys.stdin, sys.stdout):  # a mis-encoded byte must not end the session
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="replace")
    tokenizer = load_tokenizer(args.path, padding_side="left")  # from the directory, not _name_or_path
    dtype = "auto" if torch.cuda.is_available() else "fp32"  # the checkpoint's own dtype on a GPU
    model = eval_device(load_causal_lm(ModelSettings(args.path, dtype=dtype), tokenizer))
    sampling = dict(do_sample=not args.greedy, temperature=args.temperature, top_p=args.top_p)
    chat = Chat(model, tokenizer, out, args.max_new_tokens, max_history_tokens=args.max_history_tokens, **sampling)
    out.write(f"Chatting with {args.path}; `clear` forgets the conversation, `quit` leaves.\n")
    while True:
        try:
            line = input_fn("\nHuman: ").strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return
        if line.lower() in ("quit", "exit"):
            return
        if line.lower() == "clear":
            chat.clear()
            out.write("(conversation cleared)\n")
        elif line:
            out.write("Assistant: ")
            out.flush()
            try:
                chat.ask(line)
            except KeyboardInterrupt:  # Ctrl-C stops this answer, not the chat; the turn is dropped
                out.write("\n(interrupted)\n")


if __name__ == "__main__":
    cli(main)
