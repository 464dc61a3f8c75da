"""Batched evaluation primitives: reward scores, answer likelihood and generation.

Small functions over a loaded model and its tokenizer, shared by the `evaluate/` scripts and
meant for PPO's evaluation too:

    scores = score_texts(reward_model, tokenizer, [prompt + answer + tokenizer.eos_token])
    nll = answer_nll(actor, tokenizer, prompts, answers)      # [(summed NLL, tokens), ...]
    texts = generate(actor, tokenizer, prompts, max_new_tokens=64)

Padding is done here, not by the tokenizer, so results do not depend on its `padding_side`:
scoring and likelihood pad on the right (positions stay 0..n-1, as in training), generation on
the left (new tokens follow every prompt). All of them run under `torch.no_grad` in eval mode
and show a tqdm bar over batches. The rest of the module is what the evaluation command lines
share: reading rows and prompt files, printing tables, writing JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import GenerationConfig

from .args import ScriptArguments
from .data import load_rows
from .data.split import take_part
from .data.rows import SkipRow, dialogue, normalize
from .errors import ConfigError, DataError
from .progress import Progress
from .ranges import option

# --------------------------------------------------------------------------- batching


def batches(items: Sequence, size: int, desc: str | None = None, progress: bool = True) -> Iterator[list]:
    """Consecutive chunks of `size` items, with a progress bar over the chunks."""
    if size < 1:
        raise ValueError(f"batch size must be positive, got {size}")
    starts = range(0, len(items), size)
    with Progress(len(starts), desc or "batches", disable=not progress or not starts, leave=False) as bar:
        for start in starts:
            yield list(items[start:start + size])
            bar.update()


def length_batches(ids: list[list[int]], size: int, desc: str | None = None,
                   progress: bool = True) -> Iterator[list[int]]:
    """Batches of positions into `ids`, shortest sequences first: similar lengths share a batch,
    which halves the padding of typical chat data. Callers put results back by position."""
    return batches(sorted(range(len(ids)), key=lambda i: len(ids[i])), size, desc, progress)


def pad_batch(ids: list[list[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of sequences padded with `pad_id` on `side` to the longest."""
    width = max(len(x) for x in ids)
    out = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        cols = slice(0, len(x)) if side == "right" else slice(width - len(x), width)
        out[i, cols] = torch.tensor(x, dtype=torch.long)
        mask[i, cols] = 1
    return out, mask


def _device(model) -> torch.device:
    return next(model.parameters()).device


def eval_device(model):
    """`model` in eval mode, on the GPU when there is one."""
    model.eval()
    return model.to("cuda") if torch.cuda.is_available() else model


# --------------------------------------------------------------------------- reward scores


@torch.no_grad()
def score_ids(model, pad_id: int, ids: list[list[int]], batch_size: int = 8,
              progress: bool = True) -> list[float]:
    """The reward model's single logit for each token sequence (pooled on its last token)."""
    model.eval()
    scores = [0.0] * len(ids)
    for rows in length_batches(ids, batch_size, "reward", progress):
        input_ids, mask = (t.to(_device(model)) for t in pad_batch([ids[i] for i in rows], pad_id, "right"))
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        for i, score in zip(rows, logits[:, 0].float().tolist()):
            scores[i] = score
    return scores


def score_texts(model, tokenizer, texts: list[str], max_length: int = 512, batch_size: int = 8,
                progress: bool = True) -> list[float]:
    """Reward scores of whole texts, each truncated to `max_length` tokens. The texts are scored
    as given: append `tokenizer.eos_token` to answers, as reward training does."""
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return score_ids(model, tokenizer.pad_token_id, ids, batch_size, progress)


def pair_texts(tokenizer, rows: list[dict], key: str) -> list[str]:
    """prompt + rows[key] + EOS: the text reward training scores for one side of each pair."""
    return [r["prompt"] + r[key] + (tokenizer.eos_token or "") for r in rows]


def pair_metrics(chosen: list[float], rejected: list[float]) -> dict:
    """accuracy (share of pairs with chosen > rejected; ties count as wrong), the mean scores
    and their margin, and n."""
    n = len(chosen)
    if n == 0 or n != len(rejected):
        raise ValueError(f"need as many chosen as rejected scores, and some (got {n} and {len(rejected)})")
    chosen_mean, rejected_mean = sum(chosen) / n, sum(rejected) / n
    return {"accuracy": sum(c > r for c, r in zip(chosen, rejected)) / n,
            "chosen_mean": chosen_mean, "rejected_mean": rejected_mean,
            "margin_mean": chosen_mean - rejected_mean, "n": n}


# --------------------------------------------------------------------------- answer likelihood


def encode_answer(tokenizer, prompt: str, answer: str, max_length: int = 512) -> tuple[list[int], int]:
    """(ids of prompt + answer + EOS truncated to max_length, index of the first answer token).

    As SFT's completion-only loss: the answer starts where the tokenized prompt stops being a
    prefix of the tokenized whole, so a token merged across the boundary counts as answer.
    """
    full = tokenizer(prompt + answer + (tokenizer.eos_token or ""))["input_ids"]
    head = tokenizer(prompt)["input_ids"]
    start = 0
    while start < min(len(head), len(full)) and head[start] == full[start]:
        start += 1
    return full[:max_length], start


@torch.no_grad()
def answer_nll(model, tokenizer, prompts: list[str], answers: list[str], max_length: int = 512,
               batch_size: int = 8, progress: bool = True) -> list[tuple[float, int]]:
    """For each (prompt, answer): the summed negative log-likelihood of the answer tokens and EOS
    given the prompt, and how many tokens that is (0 when truncation left no answer)."""
    model.eval()
    encoded = [encode_answer(tokenizer, p, a, max_length) for p, a in zip(prompts, answers, strict=True)]
    out: list[tuple[float, int]] = []
    for chunk in batches(encoded, batch_size, "likelihood", progress):
        input_ids, mask = pad_batch([ids for ids, _ in chunk], tokenizer.pad_token_id, "right")
        labels = input_ids.clone()
        positions = torch.arange(input_ids.shape[1])
        starts = torch.tensor([start for _, start in chunk])
        labels[(mask == 0) | (positions[None, :] < starts[:, None])] = -100
        device = _device(model)
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
        targets = labels[:, 1:].to(device)
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets.clamp(min=0), reduction="none")
        counted = targets != -100
        out += list(zip((nll * counted).sum(1).tolist(), counted.sum(1).tolist()))
    return out


# --------------------------------------------------------------------------- generation


@torch.no_grad()
def generate_ids(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 64, batch_size: int = 8,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, num_beams: int = 1,
                 progress: bool = True, **generation_kwargs) -> list[list[int]]:
    """The token ids generated after each prompt, up to and including the first EOS (no EOS when
    max_new_tokens ran out first); the settings are those of `generate`, which decodes them."""
    model.eval()
    eos = [tokenizer.eos_token_id]
    model_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos += [e for e in (model_eos if isinstance(model_eos, list) else [model_eos]) if e is not None and e not in eos]
    settings = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, num_beams=num_beams,
                    eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
    if do_sample:
        settings.update(temperature=temperature, top_p=top_p)
    config = GenerationConfig(**{**settings, **generation_kwargs})
    ids = tokenizer(list(prompts))["input_ids"]
    answers: list[list[int]] = [[] for _ in ids]
    for rows in length_batches(ids, batch_size, "generate", progress):
        input_ids, mask = (t.to(_device(model)) for t in pad_batch([ids[i] for i in rows], tokenizer.pad_token_id, "left"))
        out = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
        for i, new in zip(rows, out[:, input_ids.shape[1]:].tolist()):  # after an EOS comes only padding
            answers[i] = new[: next((k + 1 for k, t in enumerate(new) if t in eos), len(new))]
    return answers


def generate(model, tokenizer, prompts: list[str], **settings) -> list[str]:
    """The new text generated after each prompt (left-padded batches, stopping at EOS).

    Greedy by default; `do_sample` samples with temperature / top_p (seed torch for repeatable
    samples); `num_beams` > 1 is beam search; the other settings are `generate_ids`' (max_new_tokens,
    batch_size, progress, extra GenerationConfig fields). The generation settings are built there
    rather than taken from the checkpoint's generation_config, so "greedy" always means greedy.
    """
    ids = generate_ids(model, tokenizer, prompts, **settings)
    return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]


# --------------------------------------------------------------------------- command lines


def load_eval_rows(args, need_pairs: bool = False) -> list[dict]:
    """The first `args.n` unified rows (all when None) of dataset `args.data`'s split `args.split`,
    or of one step's share of its train split, cut as the recipes cut it (`args.data_share`; the
    options of add_eval_data_arguments)."""
    if args.data_share is not None and args.split != "train":
        raise ConfigError(f"--data-share picks a step's share of the train split, not of '{args.split}': "
                          "add --split train")
    rows, report = load_rows(args.data, args.split, data_dir=args.data_dir, seed=args.data_split_seed)
    if args.data_share is not None and rows:
        rows = take_part(rows, args.data_split, args.data_share, args.data_split_seed, report.source)
    if report.total_dropped:
        print(report.summary(), file=sys.stderr)
    if not rows:
        raise DataError(f"{report.source}: no usable rows.\n{report.summary()}")
    if need_pairs and "rejected" not in rows[0]:
        raise DataError(f"{report.source}: has no rejected answers, so it cannot evaluate a reward model "
                        "(it is an SFT-only dataset)")
    return rows[: args.n] if args.n else rows


def _read_json_or_lines(path: str | Path, what: str) -> tuple[list, Path]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} file '{path}' does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {what} file '{path}': {e}") from e
    try:
        if p.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()], p
        if p.suffix == ".json":
            return json.loads(text), p
    except json.JSONDecodeError as e:
        raise DataError(f"{what} file '{path}' is not valid JSON: {e}") from e
    return [line for line in text.splitlines() if line.strip()], p


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a .json list of strings, or one per line of a text file; bare questions
    are wrapped into the Human/Assistant dialogue."""
    items, _ = _read_json_or_lines(path, "prompts")
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise DataError(f"prompts file '{path}' must be a JSON list of strings or one prompt per line")
    prompts = [dialogue(x) for x in items if x.strip()]
    if not prompts:
        raise DataError(f"prompts file '{path}' holds no prompts")
    return prompts


def read_pairs(path: str | Path) -> list[dict]:
    """{prompt, chosen, rejected} rows from a .json list or a .jsonl file, normalized to the
    Human/Assistant convention (answers start with a space)."""
    items, p = _read_json_or_lines(path, "pairs")
    if p.suffix not in (".json", ".jsonl") or not isinstance(items, list):
        raise DataError(f"pairs file '{path}' must be a .json list or .jsonl file of "
                        "{prompt, chosen, rejected} objects")
    rows = []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise SkipRow(f"row is {type(item).__name__}, not an object")
            rows.append(normalize(item, pairs=True))
        except SkipRow as e:
            raise DataError(f"pairs file '{path}', row {i}: {e}") from None
    if not rows:
        raise DataError(f"pairs file '{path}' holds no pairs")
    return rows


def print_table(rows: list[tuple], header: tuple | None = None) -> None:
    """Left-aligned columns on stdout; floats with 4 decimals."""
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ([tuple(map(str, header))] if header else []) + [tuple(map(cell, r)) for r in rows]
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(max(map(len, lines)))]
    for k, line in enumerate(lines):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
        if header and k == 0:
            print("  ".join("-" * w for w in widths))


def write_json(path: str | Path | None, result: dict) -> None:
    """Write `result` to `path` (parents created) when a path is given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def add_eval_data_arguments(p, what: str) -> None:
    """The options the evaluation scripts share: which rows, how long, where to write."""
    p.add_argument("--split", default="eval", help="eval (default), train or a raw split name")
    p.add_argument("--data-share", type=option("data_share"), help=(
        "with --split train: only this step's share of it (0 SFT, 1 reward model, 2 PPO), as the "
        "recipes cut it, for example a judge scored on the pairs step 2 trained on"))
    p.add_argument("--data-split", default=ScriptArguments.data_split, help="the recipes' data_split")
    p.add_argument("--data-split-seed", type=option("data_split_seed"), default=ScriptArguments.data_split_seed,
                   help="the recipes' data_split_seed")
    p.add_argument("--data-dir", help="folder of hub dataset mirrors")
    p.add_argument("-n", type=option("n"), help=f"use the first N {what} only")
    p.add_argument("--max-length", type=option("max_length"), default=512, help="tokens of prompt + answer + EOS")
    p.add_argument("--batch-size", type=option("batch_size"), default=8)
    p.add_argument("--output", help="also write the result to this JSON file")
