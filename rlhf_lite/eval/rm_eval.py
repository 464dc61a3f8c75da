"""Reward-model accuracy on held-out preference pairs, or the scores of ad-hoc good/bad answers.

    python evaluate/rm_eval.py --model out/rm --data demo [--split eval] [-n 200] [--output rm.json]
    python evaluate/rm_eval.py --model out/rm --pairs my_pairs.json   # [{prompt, chosen, rejected}]

A score is the model's single logit on prompt + answer + EOS (truncated to --max-length);
accuracy is the share of pairs whose chosen answer scores higher than the rejected one.
"""

from ..encoding import drop_long_prompts
from ..errors import ArgumentParser, cli
from ..models import ModelSettings, load_reward_model, load_tokenizer
from .cli import add_eval_data_arguments, load_eval_rows, print_table, read_pairs, write_json
from .scoring import eval_device, pair_metrics, pair_scores


def parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="reward model: local directory or hub id")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="dataset name or path with chosen and rejected answers")
    source.add_argument("--pairs", help=".json list or .jsonl of {prompt, chosen, rejected} to score")
    add_eval_data_arguments(p, "pairs")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    rows = read_pairs(args.pairs)[: args.n] if args.pairs else load_eval_rows(args, need_pairs=True)
    tokenizer = load_tokenizer(args.model)
    if not args.pairs:
        rows = drop_long_prompts(tokenizer, rows, args.max_length, args.split)
    model = eval_device(load_reward_model(ModelSettings(args.model), tokenizer))
    chosen, rejected = pair_scores(model, tokenizer, rows, args.max_length, args.batch_size)
    result = pair_metrics(chosen, rejected)
    if args.pairs:
        result["pairs"] = [
            {"prompt": r["prompt"], "chosen_score": c, "rejected_score": s} for r, c, s in zip(rows, chosen, rejected)
        ]
        print_table(
            [(i, c, s, " ".join(r["prompt"].split())[:60]) for i, (r, c, s) in enumerate(zip(rows, chosen, rejected))],
            header=("#", "chosen", "rejected", "prompt"),
        )
        print()
    source = args.pairs or f"{args.data} [{args.split}]"
    print_table(
        [("model", args.model), ("data", source)]
        + [(k, result[k]) for k in ("n", "accuracy", "chosen_mean", "rejected_mean", "margin_mean")]
    )
    write_json(args.output, result)
    return result


if __name__ == "__main__":
    cli(main)
