"""Perplexity of a causal LM on the chosen answers of a dataset split (SFT's answer-only loss).

    python evaluate/perplexity.py --model out/sft --data demo [--split eval] [-n 100] [--output ppl.json]

loss = mean negative log-likelihood over every answer token and EOS given the prompt (token
weighted), ppl = exp(loss), n = rows used; rows whose prompt alone fills --max-length are skipped.
"""

import math

from ..encoding import drop_long_prompts
from ..errors import ArgumentParser, ConfigError, cli
from ..models import ModelSettings, load_causal_lm, load_tokenizer
from .cli import add_eval_data_arguments, load_eval_rows, print_table, write_json
from .scoring import answer_nll, eval_device


def parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="causal LM: local directory, hub id or embedded:smollm2-135m")
    p.add_argument("--data", required=True, help="dataset name or path (as in the recipes' datasets)")
    add_eval_data_arguments(p, "rows")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    rows = load_eval_rows(args)
    tokenizer = load_tokenizer(args.model)
    rows = drop_long_prompts(tokenizer, rows, args.max_length, args.split)
    model = eval_device(load_causal_lm(ModelSettings(args.model), tokenizer))
    per_row = answer_nll(
        model, tokenizer, [r["prompt"] for r in rows], [r["chosen"] for r in rows], args.max_length, args.batch_size
    )
    total, tokens = sum(s for s, _ in per_row), sum(k for _, k in per_row)
    if tokens == 0:
        raise ConfigError(f"--max-length {args.max_length} leaves no answer token to evaluate")
    loss = total / tokens
    try:
        ppl = math.exp(loss)
    except OverflowError:
        ppl = float("inf")
    result = {"ppl": ppl, "loss": loss, "n": len(rows)}
    setup = [("model", args.model), ("data", f"{args.data} [{args.split}]"), ("rows", len(rows))]
    print_table(setup + [("answer tokens", tokens), ("loss", loss), ("perplexity", ppl)])
    write_json(args.output, result)
    return result


if __name__ == "__main__":
    cli(main)
