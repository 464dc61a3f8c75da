"""A PPO actor against its SFT baseline on held-out prompts: reward, win rate and KL.

    python evaluate/ppo_eval.py --baseline out/sft --model out/ppo --reward out/rm --data demo \
        [--split eval] [-n 200] [--max-new-tokens 64] [--sample] [--show 3] [--output ppo.json]

Both models answer the prompts of the data rows (SFT-only sets will do), greedy unless --sample
(--temperature, --top-p, --seed). The reward model scores prompt + answer + EOS, as rm_eval does,
with the answer in the datasets' convention (one leading space). reward_gain = reward_model -
reward_baseline, and reward_gain_stderr its standard error over prompts (the standard deviation
of the per-prompt differences / sqrt(n)): a gain several stderr above 0 is not prompt noise;
win_rate = share of prompts where the model's answer scores higher (ties count half);
kl_to_baseline = mean over prompts of sum_t log p_model(a_t) - log p_baseline(a_t) over the
tokens the model generated (its EOS included when it stopped), an estimate of KL(model||baseline)
when sampling. n = prompts used (those that alone fill --max-length are skipped). The three models
must share one vocabulary: checked before anything is generated.
"""

import argparse
import statistics

import torch

from rlhf_lite.data.rows import answer
from rlhf_lite.encoding import drop_long_prompts
from rlhf_lite.errors import ModelError, cli
from rlhf_lite.models import ModelSettings, check_same_vocab, load_causal_lm, load_reward_model, load_tokenizer
from rlhf_lite.scoring import (add_eval_data_arguments, batches, eval_device, generate_ids, load_eval_rows,
                               pad_batch, positive_int, print_table, score_texts, write_json)

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="the SFT model PPO started from")
    p.add_argument("--model", required=True, help="the trained PPO actor (its tokenizer is used)")
    p.add_argument("--reward", required=True, help="reward model scoring both models' answers")
    p.add_argument("--data", required=True, help="dataset name or path whose prompts are answered")
    add_eval_data_arguments(p, "prompts")
    p.add_argument("--max-new-tokens", type=positive_int, default=64)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=42, help="for --sample")
    p.add_argument("--show", type=int, default=3, help="print the first K prompts with both answers")
    args = p.parse_args(argv)
    if args.temperature <= 0 or not 0 < args.top_p <= 1 or args.show < 0:
        p.error("--temperature must be > 0, --top-p in (0, 1] and --show >= 0")
    return args


def load_tokenizers(args):
    """The tokenizers of --model and --reward, once all three models' vocabularies are the same."""
    tokenizers = {role: load_tokenizer(getattr(args, role)) for role in ("model", "baseline", "reward")}
    for role in ("baseline", "reward"):
        name = getattr(args, role)
        try:
            check_same_vocab(tokenizers["model"], tokenizers[role], args.model, name)
        except ModelError as e:
            detail = str(e).partition(" use different tokenizers ")[2].partition("; PPO")[0]
            raise ModelError(f"--model '{args.model}' and --{role} '{name}' use different tokenizers "
                             f"{detail}; ppo_eval needs one vocabulary for all three models") from None
    return tokenizers["model"], tokenizers["reward"]


@torch.no_grad()
def logprobs(model, pad_id: int, prompts: list[list[int]], answers: list[list[int]], batch_size: int):
    """Summed log-probability of each answer's token ids following its prompt's ids."""
    out = []
    for chunk in batches(list(zip(prompts, answers)), batch_size, "likelihood"):
        ids, mask = pad_batch([p + a for p, a in chunk], pad_id, "right")
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
        for row, (p, a) in zip(logits, chunk):
            steps = row[len(p) - 1: len(p) + len(a) - 1].float().log_softmax(-1)
            out.append(steps.gather(1, torch.tensor(a, device=steps.device)[:, None]).sum().item())
    return out


def run_model(name, tokenizer, prompts, args, scored=None):
    """(its answers' token ids, log-probability of `scored` answers, by default its own)."""
    model = eval_device(load_causal_lm(ModelSettings(name), tokenizer))
    torch.manual_seed(args.seed)
    ids = generate_ids(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                       do_sample=args.sample, temperature=args.temperature, top_p=args.top_p)
    prompt_ids = tokenizer(prompts)["input_ids"]
    return ids, logprobs(model, tokenizer.pad_token_id, prompt_ids, ids if scored is None else scored, args.batch_size)


def main(argv=None):
    args = parse_args(argv)
    rows = load_eval_rows(args.data, args.split, args.data_dir, args.n)
    tokenizer, reward_tokenizer = load_tokenizers(args)
    prompts = [r["prompt"] for r in drop_long_prompts(tokenizer, rows, args.max_length, args.split)]
    model_ids, logp_model = run_model(args.model, tokenizer, prompts, args)
    baseline_ids, logp_baseline = run_model(args.baseline, tokenizer, prompts, args, scored=model_ids)
    texts = {role: [answer(t) for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
             for role, ids in (("baseline", baseline_ids), ("model", model_ids))}
    reward = eval_device(load_reward_model(ModelSettings(args.reward), reward_tokenizer))
    eos = reward_tokenizer.eos_token or ""
    scores = {role: score_texts(reward, reward_tokenizer, [p + a + eos for p, a in zip(prompts, answers)],
                                args.max_length, args.batch_size) for role, answers in texts.items()}
    n = len(prompts)
    base, trained = sum(scores["baseline"]) / n, sum(scores["model"]) / n
    gains = [m - b for b, m in zip(scores["baseline"], scores["model"])]
    stderr = statistics.stdev(gains) / n ** 0.5 if n > 1 else float("nan")
    wins = sum(1.0 if m > b else 0.5 if m == b else 0.0 for b, m in zip(scores["baseline"], scores["model"]))
    result = {"reward_baseline": base, "reward_model": trained, "reward_gain": trained - base,
              "reward_gain_stderr": stderr, "win_rate": wins / n,
              "kl_to_baseline": sum(m - b for m, b in zip(logp_model, logp_baseline)) / n, "n": n}
    for i in range(min(args.show, n)):
        print(f"{'=' * 30} prompt {i + 1}/{n} {'=' * 30}\n{prompts[i].strip()}")
        for role in ("baseline", "model"):
            print(f"--- {role} (reward {scores[role][i]:.4f}) ---\n{texts[role][i].strip()}")
        print()
    print_table([("baseline", args.baseline), ("model", args.model), ("reward", args.reward),
                 ("data", f"{args.data} [{args.split}]"), ("decoding", "sample" if args.sample else "greedy")]
                + list(result.items()), header=("metric", "value"))
    write_json(args.output, result)
    return result


if __name__ == "__main__":
    cli(main)
