"""Side-by-side generations of a baseline and a fine-tuned model on fixed prompts.

    python evaluate/prompt_eval.py --baseline embedded:smollm2-135m --finetuned out/sft [--open] [--judge out/judge]

The prompts: DeepSpeed-Chat's six of --language, every fixed open prompt (--open) or --prompts
FILE. Greedy always; --sample adds a sampled answer and --beams N a beam-search one. Each model's
answers (with its own tokenizer) get degeneration measures and, with --judge, its mean score.
"""

import torch

from ..data.rows import answer
from ..errors import ArgumentParser, cli
from ..models import ModelSettings, check_model_kind, load_causal_lm, load_reward_model, load_tokenizer
from ..ranges import option
from .cli import add_generation_arguments, print_table, read_prompts, write_json
from .degeneration import degeneration
from .judging import LANGUAGES, open_prompts
from .scoring import eval_device, generate_ids, score_answers

ROLES = ("baseline", "finetuned")


def parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="model before fine-tuning (directory or hub id)")
    p.add_argument("--finetuned", required=True, help="model after fine-tuning (directory or hub id)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--language", choices=LANGUAGES, default="en", help="DeepSpeed-Chat's six prompts in it")
    which.add_argument("--open", action="store_true", help="every fixed open prompt, English and Chinese")
    which.add_argument("--prompts", help="file of prompts instead (.txt one per line, or .json list)")
    p.add_argument("--judge", help="a reward model that scores every answer")
    p.add_argument("--batch-size", type=option("batch_size"), default=8)
    add_generation_arguments(p, "also sample an answer")
    p.add_argument("--beams", type=option("beams"), help="also a beam-search answer with N beams")
    p.add_argument("--output", help="also write the generations to this JSON file")
    return p


def answers(name: str, prompts: list[str], args) -> dict[str, dict]:
    """{mode: {"texts", "measures"}} of the model `name`."""
    tokenizer = load_tokenizer(name, padding_side="left")
    model = eval_device(load_causal_lm(ModelSettings(name), tokenizer))
    modes = {"greedy": {}}
    if args.sample:
        modes["sample"] = dict(do_sample=True, temperature=args.temperature, top_p=args.top_p)
    if args.beams:
        modes["beam"] = dict(num_beams=args.beams)
    out = {}
    for mode, settings in modes.items():
        torch.manual_seed(args.seed)
        ids = generate_ids(model, tokenizer, prompts, args.batch_size, max_new_tokens=args.max_new_tokens, **settings)
        texts = [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
        out[mode] = {"texts": texts, "measures": degeneration(prompts, ids, texts, tokenizer.eos_token_id)}
    return out


def main(argv=None):
    args = parser().parse_args(argv)
    if args.prompts:
        prompts = read_prompts(args.prompts)
    else:
        prompts = open_prompts() if args.open else open_prompts((args.language,), first=6)
    for role in ROLES:  # both before either generates
        check_model_kind(getattr(args, role), "causal_lm")
    if args.judge:
        check_model_kind(args.judge, "reward_model")
    generated = {role: answers(getattr(args, role), prompts, args) for role in ROLES}
    if args.judge:  # the judge's score of every answer, and their mean
        tokenizer = load_tokenizer(args.judge)
        model = eval_device(load_reward_model(ModelSettings(args.judge), tokenizer))
        for modes in generated.values():
            for r in modes.values():
                r["judge"] = score_answers(model, tokenizer, prompts, [answer(t) for t in r["texts"]])
                r["measures"]["judge"] = sum(r["judge"]) / len(r["judge"])
    texts = lambda i: {role: {mode: r["texts"][i] for mode, r in generated[role].items()} for role in ROLES}
    result = {
        "prompts": [{"prompt": prompt} | texts(i) for i, prompt in enumerate(prompts)],
        "measures": {role: {mode: r["measures"] for mode, r in modes.items()} for role, modes in generated.items()},
    }
    for i, item in enumerate(result["prompts"], 1):
        print(f"{'=' * 30} prompt {i}/{len(prompts)} {'=' * 30}\n{item['prompt'].strip()}")
        for mode in item["baseline"]:
            for role in ROLES:
                score = f", judge {generated[role][mode]['judge'][i - 1]:.3f}" if args.judge else ""
                print(f"--- {role} ({mode}{score}) ---\n{item[role][mode]}")
        print()
    keys = list(result["measures"]["baseline"]["greedy"])  # every mode's measures have these, in this order
    rows = [(f"{role} {mode}", *m.values()) for role, modes in result["measures"].items() for mode, m in modes.items()]
    print_table(rows, header=("model", *keys))
    write_json(args.output, result)
    return result


if __name__ == "__main__":
    cli(main)
