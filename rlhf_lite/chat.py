"""Chat with a trained model in the format it was trained on (DeepSpeed-Chat's chat.py): its tokenizer's
chat template, the Human/Assistant one for a model that has none.

    python -m rlhf_lite.chat --path out/ppo/actor [--max-new-tokens 128] [--greedy]

The prompt is the whole conversation, oldest turns dropped once it and --max-new-tokens would not
fit the model's context; answers stream and end at EOS or where the model starts a Human turn.
"""

import sys

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

from .data.chat_template import human_assistant_template
from .data.rows import HUMAN
from .errors import ArgumentParser, ConfigError, cli
from .eval.scoring import eval_device, generation_config
from .models import ModelSettings, load_causal_lm, load_tokenizer
from .ranges import option

# Sampling defaults that suit the pipeline's models (the server's too).
MAX_NEW_TOKENS, TEMPERATURE, TOP_P = 128, 0.7, 0.9


def cut_turn(text: str, stops=(HUMAN,)) -> str:
    """`text` up to the first stop string: after "\\n\\nHuman:" the model plays the user."""
    return text[: min((i for s in stops if (i := text.find(s)) >= 0), default=len(text))]


def finished(text: str, stops=(HUMAN,)) -> str:
    """The answer in generated `text`: cut at the first stop string and stripped, without a last
    character the token limit left incomplete (decoded as U+FFFD; a stream never shows it)."""
    return cut_turn(text, stops).strip().rstrip("\ufffd").rstrip()


def _pending(text: str, stops=(HUMAN,)) -> int:
    """Length of the longest end of `text` that may still grow into a stop string."""
    return max((k for s in stops for k in range(len(s) - 1, 0, -1) if text.endswith(s[:k])), default=0)


class TurnText:
    """An answer as it is generated: the text up to the first stop string ("\\n\\nHuman:" by default),
    stripped. `feed` returns what became visible, holding back what may still grow into a stop
    string or prove trailing space, so the pieces add up to the whole answer, never the stop."""

    def __init__(self, stops=(HUMAN,)):
        self.stops, self.text, self.shown = tuple(stops), "", 0

    @property
    def stopped(self) -> bool:
        return any(s in self.text for s in self.stops)

    def feed(self, piece: str, end: bool = False) -> str:
        self.text += piece
        answer = cut_turn(self.text, self.stops)
        if not (end or self.stopped):
            answer = answer[: len(answer) - _pending(answer, self.stops)]
        ready = finished(answer, self.stops)
        new, self.shown = ready[self.shown :], max(self.shown, len(ready))
        return new


class _Streamer(TextStreamer):
    """Writes the answer to `out` as whole words arrive (never half a UTF-8 character), never
    showing a "\\n\\nHuman:" turn the model starts."""

    def __init__(self, tokenizer, out):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.out, self.turn = out, TurnText()

    @property
    def stop(self) -> bool:
        return self.turn.stopped

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.out.write(self.turn.feed(text, end=stream_end) + ("\n" if stream_end else ""))
        self.out.flush()


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
        max_new_tokens: int = MAX_NEW_TOKENS,
        do_sample: bool = True,
        temperature: float = TEMPERATURE,
        top_p: float = TOP_P,
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
        # A model trained with our pipeline carries its template; one without any gets the format the
        # pipeline would train it in.
        self.template = tokenizer.chat_template or human_assistant_template(tokenizer)

    def messages(self, question: str) -> list[dict]:
        """The conversation so far and `question`, as chat messages."""
        turns = [{"role": r, "content": c} for q, a in self.history for r, c in (("user", q), ("assistant", a))]
        return turns + [{"role": "user", "content": question}]

    def prompt(self, question: str) -> str:
        """The conversation and `question` as the model's chat template renders them, ready for the answer."""
        return self.tokenizer.apply_chat_template(
            self.messages(question), chat_template=self.template, add_generation_prompt=True, tokenize=False
        )

    def clear(self) -> None:
        self.history = []

    def prompt_ids(self, question: str) -> list[int]:
        """Token ids of the prompt for `question` (tokenized as servers do: the template holds any
        special tokens), forgetting the oldest turns until it fits the budget (a single question too
        long for it keeps its last tokens)."""
        while True:
            self.last_prompt = self.prompt(question)
            ids = self.tokenizer(self.last_prompt, add_special_tokens=False)["input_ids"]
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
        answer = finished(self.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True))
        self.history.append((question, answer))
        return answer


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m rlhf_lite.chat", description=__doc__.splitlines()[0])
    p.add_argument("--path", required=True, help="model directory (or hub id) with its tokenizer")
    p.add_argument("--max-new-tokens", type=option("max_new_tokens"), default=MAX_NEW_TOKENS)
    p.add_argument("--temperature", type=option("temperature"), default=TEMPERATURE)
    p.add_argument("--top-p", type=option("top_p"), default=TOP_P)
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
