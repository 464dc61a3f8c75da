"""What the evaluation command lines share: data options, rows, prompt and pair files, tables, JSON."""

import json
import sys
from pathlib import Path

from ..args import ScriptArguments
from ..data import load_rows
from ..data.rows import SkipRow, dialogue, normalize
from ..data.split import take_part
from ..errors import ConfigError, DataError
from ..ranges import option

MAX_LENGTH = 512  # tokens of prompt + answer + EOS an evaluation scores, unless --max-length says otherwise


def load_eval_rows(args, need_pairs: bool = False) -> list[dict]:
    """The first `args.n` rows (all when None) of `args.data`'s split `args.split`, or of one step's
    share of its train split as the recipes cut it (`args.data_share`)."""
    if args.data_share is not None and args.split != "train":
        raise ConfigError(
            f"--data-share picks a step's share of the train split, not of '{args.split}': add --split train"
        )
    rows, report = load_rows(args.data, args.split, data_dir=args.data_dir, seed=args.data_split_seed)
    if args.data_share is not None and rows:
        rows = take_part(rows, args.data_split, args.data_share, args.data_split_seed, report.source)
    if report.total_dropped:
        print(report.summary(), file=sys.stderr)
    if not rows:
        raise DataError(f"{report.source}: no usable rows.\n{report.summary()}")
    if need_pairs and "rejected" not in rows[0]:
        raise DataError(
            f"{report.source}: has no rejected answers, so it cannot evaluate a reward model "
            "(it is an SFT-only dataset)"
        )
    return rows[: args.n] if args.n else rows


def _read_json_or_lines(path: str | Path, what: str) -> list:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} file '{path}' does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {what} file '{path}': {e}") from e
    try:
        if p.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if p.suffix == ".json":
            return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{what} file '{path}' is not valid JSON: {e}") from e
    return [line for line in text.splitlines() if line.strip()]


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a .json list of strings or one per line of a text file, as dialogues."""
    items = _read_json_or_lines(path, "prompts")
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise DataError(f"prompts file '{path}' must be a JSON list of strings or one prompt per line")
    prompts = [dialogue(x) for x in items if x.strip()]
    if not prompts:
        raise DataError(f"prompts file '{path}' holds no prompts")
    return prompts


def read_pairs(path: str | Path) -> list[dict]:
    """Normalized {prompt, chosen, rejected} rows from a .json list or a .jsonl file."""
    items = _read_json_or_lines(path, "pairs")
    if Path(path).suffix not in (".json", ".jsonl") or not isinstance(items, list):
        raise DataError(
            f"pairs file '{path}' must be a .json list or .jsonl file of {{prompt, chosen, rejected}} objects"
        )
    rows = []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise SkipRow(f"row is {type(item).__name__}, not an object")
            rows.append(normalize(item, pairs=True))
        except SkipRow as e:
            raise DataError(f"pairs file '{path}', row {i}: {e}") from None
    if not rows:
        raise DataError(f"pairs file '{path}' holds no pairs")
    return rows


def print_table(rows: list[tuple], header: tuple | None = None) -> None:
    """Left-aligned columns on stdout; floats with 4 decimals."""
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
    lines = ([tuple(map(str, header))] if header else []) + [tuple(map(cell, r)) for r in rows]
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(max(map(len, lines)))]
    for k, line in enumerate(lines):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
        if header and k == 0:
            print("  ".join("-" * w for w in widths))


def write_json(path: str | Path | None, result: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def add_eval_data_arguments(p, what: str) -> None:
    p.add_argument("--split", default="eval", help="eval (default), train or a raw split name")
    p.add_argument("--data-share", type=option("data_share"), help="with --split train: only this step's share")
    recipes = ScriptArguments  # the steps' shares are cut as the recipes cut them
    p.add_argument("--data-split", default=recipes.data_split, help="train shares of steps 1, 2, 3")
    p.add_argument(
        "--data-split-seed", type=option("data_split_seed"), default=recipes.data_split_seed, help="its seed"
    )
    p.add_argument("--data-dir", help="folder of hub dataset mirrors")
    p.add_argument("-n", type=option("n"), help=f"use the first N {what} only")
    p.add_argument("--max-length", type=option("max_length"), default=MAX_LENGTH, help="tokens scored at most")
    p.add_argument("--batch-size", type=option("batch_size"), default=8)
    p.add_argument("--output", help="also write the result to this JSON file")


def add_generation_arguments(p, sample_help: str) -> None:
    p.add_argument("--max-new-tokens", type=option("max_new_tokens"), default=64)
    p.add_argument("--sample", action="store_true", help=sample_help)
    p.add_argument("--temperature", type=option("temperature"), default=0.7)
    p.add_argument("--top-p", type=option("top_p"), default=0.9)
    p.add_argument("--seed", type=option("seed"), default=42, help="for --sample")
