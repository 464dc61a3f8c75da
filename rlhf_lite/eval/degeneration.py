"""How degenerate a set of generated answers is: what a policy that pleases its reward model
without getting better tends to do (answer in two tokens, repeat itself, echo the question, never
stop). Pure functions over token ids and text."""

import re
import unicodedata
from collections.abc import Sequence

from ..data.rows import ASSISTANT, HUMAN

SHORT = 3  # answers with fewer tokens than this say nothing


def distinct_n(answers: Sequence[Sequence[int]], n: int) -> float:
    """Distinct n-grams over all n-grams of all answers (Li et al., 2016): low when every answer
    says the same thing. 0.0 when no answer has n tokens."""
    grams = [tuple(a[i : i + n]) for a in answers for i in range(len(a) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_ngram_rate(answer: Sequence[int], n: int = 3) -> float:
    """Share of an answer's n-grams that already occurred earlier in it ("Good. Good. Good.")."""
    return 1.0 - distinct_n([answer], n) if len(answer) >= n else 0.0


def last_question(prompt: str) -> str:
    """The text of the prompt's last Human turn."""
    turn = prompt.rsplit(HUMAN, 1)[-1]
    return turn.split(ASSISTANT, 1)[0].strip()


def echoes(prompt: str, answer: str) -> bool:
    """Whether `answer` repeats the question instead of answering it: the question is in the
    answer, or the answer is a piece of the question at least half its length (ignoring case,
    spaces and punctuation)."""
    q, a = (re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", t).lower()) for t in (last_question(prompt), answer))
    return bool(q and a) and (q in a or (len(a) >= max(4, len(q) / 2) and a in q))


def degeneration(
    prompts: Sequence[str], answer_ids: Sequence[Sequence[int]], texts: Sequence[str], eos_id: int | None
) -> dict:
    """The measures over one model's answers to `prompts` (token ids as generated, with their EOS
    when they stopped; `texts` decoded). Lengths count tokens without EOS."""
    n = len(answer_ids)
    if n == 0 or not (n == len(prompts) == len(texts)):
        raise ValueError(f"need one answer and one text per prompt, got {len(prompts)}, {n}, {len(texts)}")
    ended = [bool(a) and a[-1] == eos_id for a in answer_ids]
    body = [list(a[:-1]) if e else list(a) for a, e in zip(answer_ids, ended)]
    return {
        "distinct_1": distinct_n(body, 1),
        "distinct_2": distinct_n(body, 2),
        "repeated_3gram_rate": sum(repeated_ngram_rate(a) for a in body) / n,
        "echo_share": sum(echoes(p, t) for p, t in zip(prompts, texts)) / n,
        "short_share": sum(len(a) < SHORT for a in body) / n,
        "mean_length": sum(len(a) for a in body) / n,
        "eos_share": sum(ended) / n,
        "n": n,
    }
