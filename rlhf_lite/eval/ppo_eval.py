"""A PPO actor against its SFT baseline, judged also by what PPO did not optimize.

    python evaluate/ppo_eval.py --baseline out/sft --model out/ppo/actor --reward out/rm --data demo --judge out/judge

The models answer the held-out prompts (with --open-prompts also the fixed open ones); --reward
and --judge score prompt + answer + EOS. Result: reward_{baseline,model,gain,gain_stderr}, win_rate
(ties half), judge_* alike, kl_to_baseline (k1) and kl_k3_to_baseline over the model's own answers,
n (held-out prompts used), `models` (per model: mean scores, facts, degeneration), `answers`, `open`
(the same on the open prompts, without KL), reward_accuracy / judge_accuracy on the held-out pairs.
"""

from functools import partial

import torch

from ..data.rows import answer
from ..encoding import drop_long_prompts
from ..errors import ArgumentParser, cli
from ..models import ModelSettings, check_models, load_causal_lm, load_reward_model
from ..ppo.maths import kl_k3
from ..ranges import option
from .cli import add_eval_data_arguments, add_generation_arguments, load_eval_rows, print_table, write_json
from .degeneration import degeneration
from .judging import DEMO_FACTS, fact_accuracy, open_prompts, paired_gain, read_facts
from .scoring import answer_logprobs, eval_device, generate_ids, pair_metrics, pair_scores, score_answers


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
    add_generation_arguments(p, "sample instead of greedy decoding")
    p.add_argument("--show", type=option("show"), default=3, help="print the first K prompts with the answers")
    return p


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


def run_model(name, tokenizer, prompts, args, kl_prompts: int = 0, scored=None):
    """Its answers' token ids and the per-token log-probabilities of `scored` answers (by default
    its own) to the first `kl_prompts` prompts (the held-out ones, where KL is reported)."""
    model = eval_device(load_causal_lm(ModelSettings(name), tokenizer))
    torch.manual_seed(args.seed)
    decoding = dict(do_sample=args.sample, temperature=args.temperature, top_p=args.top_p)
    ids = generate_ids(model, tokenizer, prompts, args.batch_size, max_new_tokens=args.max_new_tokens, **decoding)
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


def report(prompts, ids, texts, scores, facts, eos_id, kl: dict) -> dict:
    """One prompt set's result: gains under each reward model, `kl`, per-actor measures, every answer."""
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
    models = {}
    for role in ids:
        models[role] = {judge: sum(s[role]) / len(s[role]) for judge, s in scores.items()}
        if any(p in facts for p in prompts):
            models[role]["facts"] = fact_accuracy(prompts, texts[role], facts)["accuracy"]
        models[role] |= degeneration(prompts, ids[role], texts[role], eos_id)
    answers = [
        {"prompt": p}
        | {role: {"text": t[i]} | {judge: s[role][i] for judge, s in scores.items()} for role, t in texts.items()}
        for i, p in enumerate(prompts)
    ]
    return out | kl | {"n": len(prompts), "models": models, "answers": answers}


def main(argv=None):
    args = parser().parse_args(argv)
    rows = load_eval_rows(args)
    flags = lambda roles: {f"--{role}": getattr(args, role) for role in roles if getattr(args, role)}
    # every model's kind, and one vocabulary for the actors and --reward, checked before any weights load
    tokenizers = check_models(flags(("model", "baseline", "base")), flags(("reward", "judge")), own_vocab=("--judge",))
    tokenizer = tokenizers["--model"]
    facts_file = args.facts or (DEMO_FACTS if args.data == "demo" and args.split == "eval" else None)
    facts = read_facts(facts_file) if facts_file else {}
    rows = drop_long_prompts(tokenizer, rows, args.max_length, args.split)
    n = len(rows)
    prompts = [r["prompt"] for r in rows] + (open_prompts() if args.open_prompts else [])

    ids, logp = {}, {}
    ids["model"], logp["model"] = run_model(args.model, tokenizer, prompts, args, n)
    ids["baseline"], logp["baseline"] = run_model(args.baseline, tokenizer, prompts, args, n, ids["model"])
    if args.base:
        ids["base"], _ = run_model(args.base, tokenizer, prompts, args)
    # the model SFT started from, the SFT model, the PPO actor
    ids = {role: ids[role] for role in ("base", "baseline", "model") if role in ids}
    texts = {role: [answer(t) for t in tokenizer.batch_decode(x, skip_special_tokens=True)] for role, x in ids.items()}
    scores, accuracy = {}, {}
    for judge in ("reward", "judge"):
        if getattr(args, judge):
            tok = tokenizers[f"--{judge}"]
            model = eval_device(load_reward_model(ModelSettings(getattr(args, judge)), tok))
            score = partial(score_answers, model, tok, prompts, max_length=args.max_length, batch_size=args.batch_size)
            scores[judge] = {role: score(t) for role, t in texts.items()}
            if "rejected" in rows[0]:  # how far to trust it: its accuracy on the held-out pairs
                pairs = pair_scores(model, tok, rows, args.max_length, args.batch_size)
                accuracy[f"{judge}_accuracy"] = pair_metrics(*pairs)["accuracy"]
            del model

    def measures(part: slice, kl: dict) -> dict:
        sub = lambda d: {k: v[part] for k, v in d.items()}
        set_scores = {judge: sub(s) for judge, s in scores.items()}
        return report(prompts[part], sub(ids), sub(texts), set_scores, facts, tokenizer.eos_token_id, kl)

    result = measures(slice(0, n), kl_estimates(logp["model"], logp["baseline"])) | accuracy
    if facts:  # held-out prompts the answer key has an answer for
        result["facts_n"] = sum(p in facts for p in prompts[:n])
    if args.open_prompts:
        result["open"] = measures(slice(n, None), {})

    print("\n".join(answer_samples(result, args.show)))
    setup = [(role, getattr(args, role) or "-") for role in ("baseline", "model", "reward", "judge")]
    setup += [("data", f"{args.data} [{args.split}]"), ("decoding", "sample" if args.sample else "greedy")]
    flat = [(k, v) for k, v in result.items() if not isinstance(v, (dict, list))]
    print_table(setup + flat, header=("metric", "value"))
    write_json(args.output, result)
    return result


if __name__ == "__main__":
    cli(main)
