"""Which algorithm for my data? PPO, DPO, GRPO and RLOO from the same SFT and reward models, judged.

    python evaluate/compare.py --preset demo        # make compare PRESET=demo

Trains what outputs/<preset>/ lacks (steps 1 and 2, the judge, each algorithm with its preset YAML:
the same prompts or pairs), then answers the held-out and the open prompts with the SFT model and
every algorithm's, and reports per algorithm: the gain over SFT under the reward model it optimized
and under the judge (with standard errors), win rate, KL to SFT (k1 and the non-negative k3),
degeneration, facts, and the wall time and peak memory of its step. JSON to outputs/<preset>/compare.json,
a chart to outputs/<preset>/compare.png.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from .. import pipeline
from ..data.rows import answer
from ..encoding import drop_long_prompts
from ..errors import ArgumentParser, ConfigError, cli
from ..models import ModelSettings, check_models, load_causal_lm, load_reward_model
from ..pipeline import ALGORITHMS, actor_dir, run, step_command, usage
from ..presets import preset_file
from ..ranges import option
from .cli import add_eval_data_arguments, load_eval_rows, print_table, write_json
from .judging import DEMO_FACTS, open_prompts, read_facts
from .ppo_eval import kl_estimates, report
from .scoring import answer_logprobs, eval_device, generate_ids, score_answers

NAMES = {"ppo": "PPO", "dpo": "DPO", "grpo": "GRPO", "rloo": "RLOO"}


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python evaluate/compare.py",
        description=__doc__.splitlines()[0],
        epilog="Other options (-n, --batch-size, --data, --split, ...) are ppo_eval's data options.",
    )
    p.add_argument("--preset", default="demo", help="a folder of recipes/configs")
    p.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    p.add_argument("--output-dir", help="default outputs/<preset>")
    p.add_argument("--accelerate-config", help="run the steps under accelerate_configs/<name>.yaml")
    p.add_argument("--max-new-tokens", type=option("max_new_tokens"), default=40)
    return p


def train_missing(args) -> dict:
    """Run every step whose output is missing; each step's wall time and peak memory (this run's or,
    for a step trained before, what its pipeline run recorded)."""
    steps = pipeline.parse_args(["--preset", args.preset, "--output-dir", str(args.output_dir)])
    steps.accelerate_config = args.accelerate_config
    needed, logs = ["sft", "rm", "judge", *args.algorithms], args.output_dir / "logs"
    for name in needed:
        if not (actor_dir(args.output_dir, name) / "config.json").is_file():
            run(name, step_command(steps, name), logs / f"{name}.log")
    return {name: usage(logs / f"{name}.log") for name in needed}


def generate(path: str, tokenizer, prompts: list[str], args, kl_n: int = 0):
    """The answers' token ids and, for the first `kl_n` prompts, their log-probabilities under the model."""
    model = eval_device(load_causal_lm(ModelSettings(path), tokenizer))
    ids = generate_ids(model, tokenizer, prompts, args.batch_size, max_new_tokens=args.max_new_tokens)
    logp = None
    if kl_n:
        logp = answer_logprobs(model, tokenizer.pad_token_id, tokenizer(prompts[:kl_n])["input_ids"], ids[:kl_n])
    return ids, logp, model


def evaluate(args) -> dict:
    out = args.output_dir
    rows = load_eval_rows(args)
    paths = {"baseline": out / "sft", **{a: actor_dir(out, a) for a in args.algorithms}}
    reward_models = {"reward": str(out / "rm"), "judge": str(out / "judge")}
    tokenizers = check_models({k: str(v) for k, v in paths.items()}, reward_models, own_vocab=("judge",))
    tokenizer = tokenizers["baseline"]
    rows = drop_long_prompts(tokenizer, rows, args.max_length, args.split)
    n = len(rows)
    prompts = [r["prompt"] for r in rows] + open_prompts()
    facts = read_facts(DEMO_FACTS) if args.data == "demo" and args.split == "eval" else {}

    ids, logp = {}, {}
    for algo in args.algorithms:
        ids[algo], logp[algo], _ = generate(str(paths[algo]), tokenizer, prompts, args, n)
    ids["baseline"], _, sft = generate(str(paths["baseline"]), tokenizer, prompts, args)
    sft_prompts = tokenizer(prompts[:n])["input_ids"]
    sft_logp = {a: answer_logprobs(sft, tokenizer.pad_token_id, sft_prompts, ids[a][:n]) for a in args.algorithms}
    del sft
    texts = {k: [answer(t) for t in tokenizer.batch_decode(v, skip_special_tokens=True)] for k, v in ids.items()}
    scores = {}
    for judge, path in reward_models.items():
        tok = tokenizers[judge]
        model = eval_device(load_reward_model(ModelSettings(path), tok))
        score = partial(score_answers, model, tok, prompts, max_length=args.max_length, batch_size=args.batch_size)
        scores[judge] = {k: score(t) for k, t in texts.items()}
        del model

    def part(algo: str, cut: slice, kl: dict) -> dict:
        pick = lambda d: {"baseline": d["baseline"][cut], "model": d[algo][cut]}
        picked = {judge: pick(s) for judge, s in scores.items()}
        result = report(prompts[cut], pick(ids), pick(texts), picked, facts, tokenizer.eos_token_id, kl)
        result["sft"], result["model"] = result["models"].pop("baseline"), result["models"].pop("model")
        del result["models"]
        return result

    result = {"preset": args.preset, "n": n, "open_n": len(prompts) - n, "algorithms": {}}
    for algo in args.algorithms:
        held_out = part(algo, slice(0, n), kl_estimates(logp[algo], sft_logp[algo]))
        result["algorithms"][algo] = held_out | {"open": part(algo, slice(n, None), {})}
    return result


COLUMNS = (  # (heading, how to read it from an algorithm's result and its step's usage)
    ("reward gain", lambda r, u: f"{r['reward_gain']:+.3f} ± {r['reward_gain_stderr']:.3f}"),
    ("judge gain", lambda r, u: f"{r['judge_gain']:+.3f} ± {r['judge_gain_stderr']:.3f}"),
    ("judge win", lambda r, u: f"{r['judge_win_rate']:.2f}"),
    ("open judge gain", lambda r, u: f"{r['open']['judge_gain']:+.3f} ± {r['open']['judge_gain_stderr']:.3f}"),
    ("KL k3", lambda r, u: f"{r['kl_k3_to_baseline']:.3f}"),
    ("facts", lambda r, u: f"{r['model'].get('facts', float('nan')):.3f}"),
    ("distinct-2", lambda r, u: f"{r['model']['distinct_2']:.3f}"),
    ("rep. 3-grams", lambda r, u: f"{r['model']['repeated_3gram_rate']:.3f}"),
    ("echoes", lambda r, u: f"{r['model']['echo_share']:.3f}"),
    ("length", lambda r, u: f"{r['model']['mean_length']:.1f}"),
    ("minutes", lambda r, u: f"{u['minutes']:.1f}" if u else "-"),
    ("peak GB", lambda r, u: f"{u['peak_rss_gb']:.2f}" if u else "-"),
)


def table(result: dict) -> list[tuple]:
    first = next(iter(result["algorithms"].values()))
    sft = [("SFT", "", "", "", "", "", f"{first['sft'].get('facts', float('nan')):.3f}")]
    sft[0] += tuple(f"{first['sft'][k]:{f}}" for k, f in (("distinct_2", ".3f"), ("repeated_3gram_rate", ".3f")))
    sft[0] += (f"{first['sft']['echo_share']:.3f}", f"{first['sft']['mean_length']:.1f}", "", "")
    usage_of = result.get("steps", {})
    rows = [(NAMES[a], *(read(r, usage_of.get(a)) for _, read in COLUMNS)) for a, r in result["algorithms"].items()]
    return sft + rows


def chart(result: dict, path: Path) -> None:
    """Gains over SFT with two standard errors, per algorithm, under the reward model and the judge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = list(result["algorithms"])
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.27
    for k, (key, label) in enumerate(
        (("reward", "reward model (optimized)"), ("judge", "judge, held-out"), ("open", "judge, open prompts"))
    ):
        parts = [result["algorithms"][a]["open"] if key == "open" else result["algorithms"][a] for a in algos]
        judge = "reward" if key == "reward" else "judge"
        gains = [p[f"{judge}_gain"] for p in parts]
        errors = [2 * p[f"{judge}_gain_stderr"] for p in parts]
        ax.bar([i + (k - 1) * width for i in range(len(algos))], gains, width, yerr=errors, capsize=3, label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(algos)), [NAMES[a] for a in algos])
    ax.set(title=f"{result['preset']}: reward gain over SFT (± 2 standard errors)", ylabel="gain")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    args, data_flags = parser().parse_known_args(argv)  # the rest: the evaluation's data options
    preset_file(args.preset, "sft")  # an unknown preset is an error here
    # the evaluation reads the reward model's held-out pairs, as the pipeline's evaluations do
    data = ArgumentParser()
    data.add_argument("--data")
    add_eval_data_arguments(data, "prompts")
    data.set_defaults(batch_size=32)
    vars(args).update(vars(data.parse_args([*pipeline.eval_data_flags(args.preset), *data_flags])))
    args.output_dir = Path(args.output_dir or Path("outputs") / args.preset)
    for algo in args.algorithms:
        if not preset_file(args.preset, algo).is_file():
            raise ConfigError(f"preset '{args.preset}' has no {algo}.yaml")
    steps = train_missing(args)
    result = evaluate(args) | {"steps": steps}
    headers = ("", *(h for h, _ in COLUMNS))
    print(
        f"\n=== {args.preset}: each algorithm against the SFT model it started from (held-out n={result['n']}, "
        f"open n={result['open_n']}; gains ± standard error)"
    )
    print_table(table(result), header=headers)
    write_json(args.output_dir / "compare.json", result)
    chart(result, args.output_dir / "compare.png")
    print(f"JSON: {args.output_dir / 'compare.json'}  chart: {args.output_dir / 'compare.png'}")
    return result


if __name__ == "__main__":
    cli(main)
