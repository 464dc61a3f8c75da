"""Batched evaluation primitives over a loaded model and its tokenizer: reward scores, answer
likelihood and generation. Scoring and likelihood pad on the right (positions stay 0..n-1, as in
training), generation on the left (new tokens follow every prompt)."""

import torch
from transformers import GenerationConfig

from ..batching import length_batches
from ..ppo.maths import token_logprobs


def eval_device(model):
    model.eval()
    return model.to("cuda") if torch.cuda.is_available() else model


@torch.no_grad()
def score_ids(model, ids: list[list[int]], pad_id: int, batch_size: int = 8) -> list[float]:
    """The reward model's single logit (pooled on the last token) for each token sequence."""
    scores = [0.0] * len(ids)
    device = next(model.parameters()).device
    for rows, input_ids, mask in length_batches(ids, batch_size, "reward", pad_id, "right", device):
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        for i, score in zip(rows, logits[:, 0].float().tolist()):
            scores[i] = score
    return scores


def score_texts(model, tokenizer, texts: list[str], max_length: int = 512, batch_size: int = 8) -> list[float]:
    """The scores of the texts, truncated to `max_length` tokens. Texts are scored as given: append
    the EOS, as reward training does."""
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return score_ids(model, ids, tokenizer.pad_token_id, batch_size)


def score_answers(model, tokenizer, prompts, answers, max_length: int = 512, batch_size: int = 8) -> list[float]:
    """The scores of each prompt + answer + EOS, as reward training scores."""
    eos = tokenizer.eos_token or ""
    return score_texts(model, tokenizer, [p + a + eos for p, a in zip(prompts, answers)], max_length, batch_size)


def pair_scores(model, tokenizer, rows: list[dict], max_length: int, batch_size: int) -> list[list[float]]:
    """The scores of prompt + chosen + EOS and of prompt + rejected + EOS."""
    prompts = [r["prompt"] for r in rows]
    return [
        score_answers(model, tokenizer, prompts, [r[key] for r in rows], max_length, batch_size)
        for key in ("chosen", "rejected")
    ]


def pair_metrics(chosen: list[float], rejected: list[float]) -> dict:
    """accuracy (share of pairs with chosen > rejected; ties count as wrong), mean scores, margin, n."""
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


@torch.no_grad()
def answer_logprobs(
    model, pad_id: int, prompts: list[list[int]], answers: list[list[int]], batch_size: int = 8
) -> list[torch.Tensor]:
    """The log-probability of each answer token after its prompt's ids: one tensor per answer."""
    device = next(model.parameters()).device
    sequences = [p + a for p, a in zip(prompts, answers, strict=True)]
    out: list = [None] * len(sequences)
    for rows, ids, mask in length_batches(sequences, batch_size, "likelihood", pad_id, "right", device):
        logits = model(input_ids=ids, attention_mask=mask).logits
        for row, row_ids, i in zip(logits, ids, rows):
            start, end = max(len(prompts[i]), 1), len(sequences[i])  # position t predicts token t + 1
            out[i] = token_logprobs(row[start - 1 : end - 1], row_ids[start:end]).cpu()
    return out


def answer_nll(
    model, tokenizer, prompts: list[str], answers: list[str], max_length: int = 512, batch_size: int = 8
) -> list[tuple[float, int]]:
    """For each (prompt, answer): the summed NLL of the answer tokens and EOS given the prompt
    (truncated to `max_length`) and their count. As SFT's completion-only loss, the answer starts
    where the tokenized prompt stops being a prefix of the whole (a merged token is answer)."""
    heads, tails = [], []
    for prompt, answer in zip(prompts, answers, strict=True):
        full = tokenizer(prompt + answer + (tokenizer.eos_token or ""))["input_ids"]
        head = tokenizer(prompt)["input_ids"]
        start = next((k for k, (h, f) in enumerate(zip(head, full)) if h != f), min(len(head), len(full)))
        heads.append(full[: min(start, max_length)])
        tails.append(full[start:max_length])
    logprobs = answer_logprobs(model, tokenizer.pad_token_id, heads, tails, batch_size)
    return [(-float(lp.sum()), len(lp)) for lp in logprobs]


def generation_config(
    model, tokenizer, max_new_tokens: int, do_sample=False, temperature=1.0, top_p=1.0, num_beams=1
) -> GenerationConfig:
    """Built here rather than taken from the checkpoint, so "greedy" always means greedy; stops at
    the tokenizer's EOS and at any other the model's own generation config names."""
    model_eos = model.generation_config.eos_token_id
    eos = [tokenizer.eos_token_id]
    eos += [e for e in (model_eos if isinstance(model_eos, list) else [model_eos]) if e is not None and e not in eos]
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        num_beams=num_beams,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **(dict(temperature=temperature, top_p=top_p) if do_sample else {}),
    )


@torch.no_grad()
def generate_ids(model, tokenizer, prompts: list[str], batch_size: int = 8, **settings) -> list[list[int]]:
    """The token ids generated after each prompt, up to and including the first EOS (no EOS when
    max_new_tokens ran out first); `settings` are `generation_config`'s."""
    config = generation_config(model, tokenizer, **settings)
    eos, device = list(config.eos_token_id), next(model.parameters()).device
    ids = tokenizer(list(prompts))["input_ids"]
    answers: list[list[int]] = [[] for _ in ids]
    for rows, input_ids, mask in length_batches(ids, batch_size, "generate", tokenizer.pad_token_id, "left", device):
        out = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
        for i, new in zip(rows, out[:, input_ids.shape[1] :].tolist()):  # after an EOS comes only padding
            answers[i] = new[: next((k + 1 for k, t in enumerate(new) if t in eos), len(new))]
    return answers
