"""Side-by-side generations of a baseline and a fine-tuned model on fixed prompts.

    python evaluate/prompt_eval.py --baseline embedded:smollm2-135m --finetuned out/sft \
        [--language en|zh] [--prompts FILE] [--sample] [--beams 4] [--output gen.json]

Greedy always; --sample adds a sampled answer (--temperature, --top-p, --seed) and --beams N a
beam-search one. --prompts FILE: one prompt per line, or a .json list; bare questions are wrapped
into the Human/Assistant dialogue. The models are loaded one after the other, each with its own
tokenizer.
"""

import argparse
import sys
from pathlib import Path

import torch

from rlhf_lite.data.rows import dialogue
from rlhf_lite.models import ModelSettings, load_causal_lm, load_tokenizer
from rlhf_lite.scoring import eval_device, generate, positive_int, read_prompts, write_json
from rlhf_lite.errors import cli

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # evaluate/prompts.py, also when this file is imported from elsewhere
    sys.path.insert(0, HERE)
from prompts import PROMPTS  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="model before fine-tuning (directory or hub id)")
    p.add_argument("--finetuned", required=True, help="model after fine-tuning (directory or hub id)")
    p.add_argument("--language", choices=sorted(PROMPTS), default="en", help="which fixed prompts")
    p.add_argument("--prompts", help="file of prompts instead (.txt one per line, or .json list)")
    p.add_argument("--max-new-tokens", type=positive_int, default=64)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--sample", action="store_true", help="also sample an answer")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=42, help="for --sample")
    p.add_argument("--beams", type=positive_int, help="also a beam-search answer with N beams")
    p.add_argument("--output", help="also write the generations to this JSON file")
    args = p.parse_args(argv)
    if args.temperature <= 0 or not 0 < args.top_p <= 1:
        p.error("--temperature must be > 0 and --top-p in (0, 1]")
    return args


def answers(name: str, prompts: list[str], args) -> dict[str, list[str]]:
    """{mode: one answer per prompt} of the model `name`."""
    tokenizer = load_tokenizer(name, padding_side="left")
    model = eval_device(load_causal_lm(ModelSettings(name), tokenizer))
    run = lambda **kw: generate(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,  # noqa: E731
                                batch_size=args.batch_size, **kw)
    out = {"greedy": run()}
    if args.sample:
        torch.manual_seed(args.seed)
        out["sample"] = run(do_sample=True, temperature=args.temperature, top_p=args.top_p)
    if args.beams:
        out["beam"] = run(num_beams=args.beams)
    return out


def main(argv=None):
    args = parse_args(argv)
    prompts = read_prompts(args.prompts) if args.prompts else [dialogue(q) for q in PROMPTS[args.language]]
    generated = {role: answers(getattr(args, role), prompts, args) for role in ("baseline", "finetuned")}
    result = {"language": args.language, "prompts": [
        {"prompt": prompt, **{role: {mode: texts[i] for mode, texts in generated[role].items()}
                              for role in generated}} for i, prompt in enumerate(prompts)]}
    for i, item in enumerate(result["prompts"], 1):
        print(f"{'=' * 30} prompt {i}/{len(prompts)} {'=' * 30}\n{item['prompt'].strip()}")
        for mode in item["baseline"]:
            for role in ("baseline", "finetuned"):
                print(f"--- {role} ({mode}) ---\n{item[role][mode]}")
        print()
    write_json(args.output, result)
    return result


if __name__ == "__main__":
    cli(main)
