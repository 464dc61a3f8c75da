"""Training curves of SFT, reward-model and PPO runs, from their metrics.jsonl, as PNG files.

    python -m rlhf_lite.plot out/sft out/ppo [--out DIR]

One PNG per metric group the run logged (loss, accuracy, reward, kl, ppo_loss, answer_length),
against `step`, written to RUN_DIR/plots/ (with --out: DIR, or DIR/<run name>/ for several runs).
A step logged twice (a resumed run) keeps its latest value.
"""

import json
import math
from pathlib import Path

from .errors import ArgumentParser, ConfigError, DataError, cli
from .metrics import METRICS_FILE

GROUPS = {
    "loss": ("loss", "eval_loss"),
    "accuracy": ("accuracy", "eval_accuracy"),
    "reward": ("reward/score", "reward/score_ema"),
    "kl": ("kl/sequence", "kl/coef"),
    "ppo_loss": ("loss/actor", "loss/critic", "loss/ptx"),
    "answer_length": ("answer/length",),
}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_metrics(run_dir: str | Path) -> dict[str, list[tuple[float, float]]]:
    """{metric: [(step, value), ...] sorted by step} of every plotted metric the run logged."""
    path = Path(run_dir) / METRICS_FILE
    if not Path(run_dir).is_dir():
        raise DataError(f"run folder '{run_dir}' does not exist")
    if not path.is_file():
        raise DataError(f"'{run_dir}' has no {METRICS_FILE}; is it the output folder of a training run?")
    wanted = {key for keys in GROUPS.values() for key in keys}
    series: dict[str, dict[float, float]] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict) or not _number(record.get("step")):
                raise DataError(f"{path}, line {n}: expected a JSON object with a numeric 'step'")
            for key in wanted.intersection(record):
                if _number(record[key]):
                    series.setdefault(key, {})[record["step"]] = record[key]
    if not series:
        raise DataError(f"{path} holds none of the plotted metrics ({', '.join(sorted(wanted))})")
    return {key: sorted(points.items()) for key, points in series.items()}


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m rlhf_lite.plot", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="output folder of a training run")
    p.add_argument("--out", help="write the PNGs here instead of RUN_DIR/plots")
    return p


def main(argv=None) -> list[Path]:
    args = parser().parse_args(argv)
    series = [read_metrics(run) for run in args.runs]  # every folder is checked before anything is drawn
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install matplotlib") from None
    names = [Path(run).resolve().name for run in args.runs]
    written = []
    for i, (run, name) in enumerate(zip(args.runs, names)):
        out = Path(args.out) if args.out else Path(run) / "plots"
        if args.out and len(args.runs) > 1:  # a folder per run, named after it
            out /= name if names.count(name) == 1 else f"{name}-{i}"
        out.mkdir(parents=True, exist_ok=True)
        for group, keys in GROUPS.items():
            present = [k for k in keys if k in series[i]]
            if not present:
                continue
            fig, ax = plt.subplots(figsize=(7, 4))
            for key in present:
                steps, values = zip(*series[i][key])
                ax.plot(steps, values, label=key, marker="o" if len(steps) < 30 else None, markersize=3)
            ax.set(title=f"{name}: {group.replace('_', ' ')}", xlabel="step")
            ax.grid(alpha=0.3)
            ax.legend()
            fig.tight_layout()
            written.append(out / f"{group}.png")
            fig.savefig(written[-1], dpi=100)
            plt.close(fig)
            print(written[-1])
    return written


if __name__ == "__main__":
    cli(main)
