"""Batched evaluation primitives: reward scores, answer likelihood and generation.

Small functions over a loaded model and its tokenizer, shared by the evaluations:

    scores = score_texts(reward_model, tokenizer, [prompt + answer + tokenizer.eos_token])
    nll = answer_nll(actor, tokenizer, prompts, answers)      # [(summed NLL, tokens), ...]
    texts = generate(actor, tokenizer, prompts, max_new_tokens=64)

Scoring and likelihood pad on the right (positions stay 0..n-1, as in training), generation on
the left (new tokens follow every prompt). All of them run under `torch.no_grad` in eval mode
and show a tqdm bar over batches.
"""

from __future__ import annotations

import torch
from transformers import GenerationConfig

from ..batching import length_batches, pad_batch
from ..ppo.maths import token_logprobs


def _device(model) -> torch.device:
    return next(model.parameters()).device


def eval_device(model):
    """`model` in eval mode, on the GPU when there is one."""
    model.eval()
    return model.to("cuda") if torch.cuda.is_available() else model


# --------------------------------------------------------------------------- reward scores


@torch.no_grad()
def score_ids(model, pad_id: int, ids: list[list[int]], batch_size: int = 8, progress: bool = True) -> list[float]:
    """The reward model's single logit for each token sequence (pooled on its last token)."""
    model.eval()
    scores = [0.0] * len(ids)
    for rows in length_batches(ids, batch_size, "reward", progress):
        input_ids, mask = (t.to(_device(model)) for t in pad_batch([ids[i] for i in rows], pad_id, "right"))
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        for i, score in zip(rows, logits[:, 0].float().tolist()):
            scores[i] = score
    return scores


def score_texts(
    model, tokenizer, texts: list[str], max_length: int = 512, batch_size: int = 8, progress: bool = True
) -> list[float]:
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
    return {
        "accuracy": sum(c > r for c, r in zip(chosen, rejected)) / n,
        "chosen_mean": chosen_mean,
        "rejected_mean": rejected_mean,
        "margin_mean": chosen_mean - rejected_mean,
        "n": n,
    }


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
def answer_logprobs(
    model, pad_id: int, prompts: list[list[int]], answers: list[list[int]], batch_size: int = 8, progress: bool = True
) -> list[torch.Tensor]:
    """The log-probability of each answer token after its prompt's ids: one tensor per answer."""
    model.eval()
    device = _device(model)
    sequences = [p + a for p, a in zip(prompts, answers, strict=True)]
    out: list = [None] * len(sequences)
    for rows in length_batches(sequences, batch_size, "likelihood", progress):
        ids, mask = pad_batch([sequences[i] for i in rows], pad_id, "right")
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for row, row_ids, i in zip(logits, ids, rows):
            start, end = max(len(prompts[i]), 1), len(sequences[i])  # position t predicts token t + 1
            out[i] = token_logprobs(row[start - 1 : end - 1], row_ids[start:end].to(device)).cpu()
    return out


def answer_nll(
    model,
    tokenizer,
    prompts: list[str],
    answers: list[str],
    max_length: int = 512,
    batch_size: int = 8,
    progress: bool = True,
) -> list[tuple[float, int]]:
    """For each (prompt, answer): the summed negative log-likelihood of the answer tokens and EOS
    given the prompt, and how many tokens that is (0 when truncation left no answer)."""
    encoded = [encode_answer(tokenizer, p, a, max_length) for p, a in zip(prompts, answers, strict=True)]
    logprobs = answer_logprobs(
        model,
        tokenizer.pad_token_id,
        [ids[:start] for ids, start in encoded],
        [ids[start:] for ids, start in encoded],
        batch_size,
        progress,
    )
    return [(-float(lp.sum()), len(lp)) for lp in logprobs]


# --------------------------------------------------------------------------- generation


@torch.no_grad()
def generate_ids(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    num_beams: int = 1,
    progress: bool = True,
    **generation_kwargs,
) -> list[list[int]]:
    """The token ids generated after each prompt, up to and including the first EOS (no EOS when
    max_new_tokens ran out first); the settings are those of `generate`, which decodes them."""
    model.eval()
    eos = [tokenizer.eos_token_id]
    model_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos += [e for e in (model_eos if isinstance(model_eos, list) else [model_eos]) if e is not None and e not in eos]
    settings = dict(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        num_beams=num_beams,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    if do_sample:
        settings.update(temperature=temperature, top_p=top_p)
    config = GenerationConfig(**{**settings, **generation_kwargs})
    ids = tokenizer(list(prompts))["input_ids"]
    answers: list[list[int]] = [[] for _ in ids]
    for rows in length_batches(ids, batch_size, "generate", progress):
        input_ids, mask = (
            t.to(_device(model)) for t in pad_batch([ids[i] for i in rows], tokenizer.pad_token_id, "left")
        )
        out = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
        for i, new in zip(rows, out[:, input_ids.shape[1] :].tolist()):  # after an EOS comes only padding
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
