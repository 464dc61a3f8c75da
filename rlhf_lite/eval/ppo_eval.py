"""A PPO actor against its SFT baseline, judged also by what PPO did not optimize.

    python evaluate/ppo_eval.py --baseline out/sft --model out/ppo/actor --reward out/rm --data demo \
        [--judge out/judge] [--base embedded:smollm2-135m] [--open-prompts] [--facts KEY.json] \
        [--split eval] [-n 200] [--max-new-tokens 64] [--sample] [--show 3] [--output ppo.json]

The models answer the held-out prompts of the data rows (SFT-only sets will do), greedy unless
--sample (--temperature, --top-p, --seed); with --open-prompts also the fixed bilingual open
prompts (rlhf_lite/data/open_prompts.json), and --base adds the model SFT started from as a third
column. Each answer is scored as prompt + answer + EOS (as rm_eval does) by the reward model PPO
optimized (--reward) and by an independent judge (--judge: a reward model trained on other pairs).

Result (JSON): on the held-out prompts, reward_baseline / reward_model, reward_gain and
reward_gain_stderr (the standard deviation of the per-prompt differences / sqrt(n): a gain
several stderr above 0 is not prompt noise), win_rate (ties count half), the same under the judge
(judge_*), kl_to_baseline = mean over prompts of sum_t log p_model(a_t) - log p_baseline(a_t)
over the model's own answer tokens (EOS included when it stopped; an estimate of
KL(model||baseline) when sampling, k1) and kl_k3_to_baseline (the same with k3 = r - 1 - log r,
r = p_baseline / p_model: never negative); `models`: per model its mean scores, fact accuracy
(exact match against --facts, a JSON list of {prompt, answer}; the demo data's own key by default
for --data demo) and degeneration measures (distinct-1/2, repeated 3-grams, answers that echo the
question, shorter than 3 tokens, mean length, share ending with EOS); `open`: the same on the open
prompts (without KL); `answers`: every prompt with each model's answer and its scores; reward_accuracy and
judge_accuracy: each reward model's accuracy on the held-out pairs (when the rows have a rejected
answer), as rm_eval reports it. n = held-out prompts
used (those that alone fill --max-length are skipped). The actors and --reward must share one
vocabulary: checked before anything is generated.
"""

import torch

from ..data.rows import answer
from ..encoding import drop_long_prompts
from ..errors import ArgumentParser, ModelError, cli
from ..models import (
    ModelSettings,
    check_model_kind,
    check_same_vocab,
    load_causal_lm,
    load_reward_model,
    load_tokenizer,
)
from ..ppo.maths import kl_k3
from ..ranges import option
from .cli import add_eval_data_arguments, load_eval_rows, print_table, write_json
from .degeneration import degeneration
from .judging import DEMO_FACTS, fact_accuracy, open_prompts, paired_gain, read_facts
from .scoring import answer_logprobs, eval_device, generate_ids, pair_metrics, pair_texts, score_texts

ACTORS = ("base", "baseline", "model")  # the model SFT started from, the SFT model, the PPO actor


def parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="the SFT model PPO started from")
    p.add_argument("--model", required=True, help="the trained PPO actor (its tokenizer is used)")
    p.add_argument("--reward", required=True, help="the reward model PPO optimized")
    p.add_argument("--judge", help="an independent reward model (trained on other pairs)")
    p.add_argument("--base", help="the model SFT started from, judged alongside")
    p.add_argument("--data", required=True, help="dataset name or path whose prompts are answered")
    add_eval_data_arguments(p, "prompts")
    p.add_argument("--open-prompts", action="store_true", help="also answer the fixed bilingual open prompts")
    p.add_argument("--facts", help="answer key: JSON list of {prompt, answer} (default for --data demo: its own)")
    p.add_argument("--max-new-tokens", type=option("max_new_tokens"), default=64)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=option("temperature"), default=0.7)
    p.add_argument("--top-p", type=option("top_p"), default=0.9)
    p.add_argument("--seed", type=option("seed"), default=42, help="for --sample")
    p.add_argument("--show", type=option("show"), default=3, help="print the first K prompts with the answers")
    return p


def load_tokenizers(args):
    """The actors' tokenizer and --reward's, once every model is of its kind and the actors and
    --reward share one vocabulary (said before anything is generated)."""
    for role in ("model", "baseline", "base", "reward", "judge"):
        if getattr(args, role):
            check_model_kind(getattr(args, role), "reward_model" if role in ("reward", "judge") else "causal_lm")
    tokenizers = {
        role: load_tokenizer(getattr(args, role))
        for role in ("model", "baseline", "base", "reward")
        if getattr(args, role)
    }
    for role in ("baseline", "base", "reward"):
        if role not in tokenizers:
            continue
        name = getattr(args, role)
        try:
            check_same_vocab(tokenizers["model"], tokenizers[role], args.model, name)
        except ModelError as e:
            detail = str(e).partition(" use different tokenizers ")[2].partition("; PPO")[0]
            raise ModelError(
                f"--model '{args.model}' and --{role} '{name}' use different tokenizers "
                f"{detail}; ppo_eval needs one vocabulary for the actors and --reward"
            ) from None
    return tokenizers["model"], tokenizers["reward"]


def answer_samples(result: dict, k: int) -> list[str]:
    """The first `k` held-out prompts of a result, each with every model's answer and scores."""
    lines = []
    for i, item in enumerate(result["answers"][:k]):
        lines.append(f"{'=' * 30} prompt {i + 1}/{result['n']} {'=' * 30}\n{item['prompt'].strip()}")
        for role, out in item.items():
            if role != "prompt":
                label = ", ".join(f"{judge} {score:.4f}" for judge, score in out.items() if judge != "text")
                lines.append(f"--- {role} ({label}) ---\n{out['text'].strip()}")
        lines.append("")
    return lines


def run_model(name, tokenizer, prompts, args, scored=None, kl_prompts: int = 0):
    """(its answers' token ids, per-token log-probabilities of `scored` answers, by default its
    own, to the first `kl_prompts` prompts: the held-out ones, where KL is reported)."""
    model = eval_device(load_causal_lm(ModelSettings(name), tokenizer))
    torch.manual_seed(args.seed)
    ids = generate_ids(
        model,
        tokenizer,
        prompts,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        do_sample=args.sample,
        temperature=args.temperature,
        top_p=args.top_p,
    )
    if not kl_prompts:
        return ids, None
    prompt_ids = tokenizer(prompts[:kl_prompts])["input_ids"]
    scored = (ids if scored is None else scored)[:kl_prompts]
    return ids, answer_logprobs(model, tokenizer.pad_token_id, prompt_ids, scored, args.batch_size)


def kl_estimates(logp_model: list, logp_baseline: list) -> dict:
    """Mean over answers of the summed per-token k1 and k3 estimates of KL(model || baseline)."""
    k1 = [float((m - b).sum()) for m, b in zip(logp_model, logp_baseline)]
    k3 = [float(kl_k3(m[None], b[None], torch.ones(1, len(m))).sum()) for m, b in zip(logp_model, logp_baseline)]
    return {"kl_to_baseline": sum(k1) / len(k1), "kl_k3_to_baseline": sum(k3) / len(k3)}


def judge_set(prompts, ids, texts, scores, facts, eos_id) -> dict:
    """Per actor: mean score under each reward model, fact accuracy and degeneration measures."""
    out = {}
    for role in ids:
        measures = {judge: sum(s[role]) / len(s[role]) for judge, s in scores.items()}
        if any(p in facts for p in prompts):
            measures["facts"] = fact_accuracy(prompts, texts[role], facts)["accuracy"]
        out[role] = measures | degeneration(prompts, ids[role], texts[role], eos_id)
    return out


def gains(scores: dict) -> dict:
    """reward_* / judge_*: the model against the baseline under each reward model."""
    out = {}
    for judge, s in scores.items():
        g = paired_gain(s["baseline"], s["model"])
        out |= {
            f"{judge}_baseline": sum(s["baseline"]) / len(s["baseline"]),
            f"{judge}_model": sum(s["model"]) / len(s["model"]),
            f"{judge}_gain": g["gain"],
            f"{judge}_gain_stderr": g["stderr"],
            f"{judge}_win_rate": g["win_rate"],
        }
    out["win_rate"] = out.pop("reward_win_rate")  # the historical name
    return out


def main(argv=None):
    args = parser().parse_args(argv)
    rows = load_eval_rows(args)
    tokenizer, reward_tokenizer = load_tokenizers(args)
    facts_file = args.facts or (DEMO_FACTS if args.data == "demo" and args.split == "eval" else None)
    facts = read_facts(facts_file) if facts_file else {}
    rows = drop_long_prompts(tokenizer, rows, args.max_length, args.split)
    held_out = [r["prompt"] for r in rows]
    sets = {"held_out": held_out} | ({"open": open_prompts()} if args.open_prompts else {})
    prompts = [p for ps in sets.values() for p in ps]

    ids, logp, n = {}, {}, len(held_out)
    ids["model"], logp["model"] = run_model(args.model, tokenizer, prompts, args, kl_prompts=n)
    ids["baseline"], logp["baseline"] = run_model(args.baseline, tokenizer, prompts, args, ids["model"], n)
    if args.base:
        ids["base"], _ = run_model(args.base, tokenizer, prompts, args)
    ids = {role: ids[role] for role in ACTORS if role in ids}
    texts = {role: [answer(t) for t in tokenizer.batch_decode(x, skip_special_tokens=True)] for role, x in ids.items()}
    scores, accuracy = {}, {}
    for judge in ("reward", "judge"):
        if getattr(args, judge):
            judge_tokenizer = reward_tokenizer if judge == "reward" else load_tokenizer(args.judge)
            model = eval_device(load_reward_model(ModelSettings(getattr(args, judge)), judge_tokenizer))
            eos = judge_tokenizer.eos_token or ""
            scores[judge] = {
                role: score_texts(
                    model, judge_tokenizer, [p + a + eos for p, a in zip(prompts, t)], args.max_length, args.batch_size
                )
                for role, t in texts.items()
            }
            if "rejected" in rows[0]:  # how far to trust it: its accuracy on the held-out pairs
                chosen, rejected = (
                    score_texts(
                        model,
                        judge_tokenizer,
                        pair_texts(judge_tokenizer, rows, key),
                        args.max_length,
                        args.batch_size,
                    )
                    for key in ("chosen", "rejected")
                )
                accuracy[f"{judge}_accuracy"] = pair_metrics(chosen, rejected)["accuracy"]
            del model

    result, start = {}, 0
    for name, ps in sets.items():
        part = slice(start, start + len(ps))
        start += len(ps)
        sub = lambda d: {k: v[part] for k, v in d.items()}  # noqa: E731
        set_scores = {judge: sub(s) for judge, s in scores.items()}
        kl = kl_estimates(logp["model"], logp["baseline"]) if name == "held_out" else {}
        measures = {
            **gains(set_scores),
            **kl,
            "n": len(ps),
            "models": judge_set(ps, sub(ids), sub(texts), set_scores, facts, tokenizer.eos_token_id),
            "answers": [
                {
                    "prompt": p,
                    **{
                        role: {"text": texts[role][part][i], **{judge: s[role][i] for judge, s in set_scores.items()}}
                        for role in texts
                    },
                }
                for i, p in enumerate(ps)
            ],
        }
        if name == "held_out":
            result = (
                measures
                | accuracy
                | ({"facts_n": fact_accuracy(ps, texts["model"][part], facts)["n"]} if facts else {})
            )
        else:
            result[name] = measures

    print("\n".join(answer_samples(result, args.show)))
    flat = [(k, v) for k, v in result.items() if not isinstance(v, (dict, list))]
    print_table(
        [
            ("baseline", args.baseline),
            ("model", args.model),
            ("reward", args.reward),
            ("judge", args.judge or "-"),
            ("data", f"{args.data} [{args.split}]"),
            ("decoding", "sample" if args.sample else "greedy"),
        ]
        + flat,
        header=("metric", "value"),
    )
    write_json(args.output, result)
    return result


if __name__ == "__main__":
    cli(main)
