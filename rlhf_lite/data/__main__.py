"""`python -m rlhf_lite.data show|check|list`: look at a dataset the way the pipeline will see it."""

from __future__ import annotations

import json
import sys

from ..errors import ArgumentParser, RLHFLiteError
from ..ranges import option
from . import ADAPTERS, DatasetSpec, load_rows
from .adapters import load_plugins


def parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m rlhf_lite.data", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd, doc in (("show", "print unified rows"), ("check", "validate and count kept/dropped rows")):
        p = sub.add_parser(cmd, help=doc)
        p.add_argument("name", help="hub name, registered name or local file/folder")
        p.add_argument("--split", help="train, eval or a raw split name (show: train; check: both)")
        p.add_argument("--path", help="data folder/file for a registered layout")
        p.add_argument("--adapter", help="force this registered layout")
        p.add_argument("--data-dir", help="folder of <hub name> mirrors (RLHF_LITE_DATA_DIR)")
        p.add_argument("--plugin", action="append", default=[], help="module or .py file registering adapters")
        p.add_argument("--seed", type=option("seed"), default=1234)
        if cmd == "show":
            p.add_argument("-n", type=option("n"), default=3, help="rows to print")
    sub.add_parser("list", help="list registered dataset names")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.cmd == "list":
        for name, a in sorted(ADAPTERS.items()):
            kind = "pairs" if a.pairs else "SFT" if a.pairs is False else "either"
            print(f"{name:42s} {kind:6s} columns: {', '.join(sorted(a.columns))}")
        return 0
    try:
        load_plugins(args.plugin)
        spec = DatasetSpec(args.name, path=args.path, adapter=args.adapter)
        if args.cmd == "show":
            rows, report = load_rows(spec, args.split or "train", data_dir=args.data_dir, seed=args.seed)
            for row in rows[: args.n]:
                print(json.dumps(row, ensure_ascii=False, indent=1))
            print(report.summary(), file=sys.stderr)
            return 0
        bad = False
        for split in [args.split] if args.split else ["train", "eval"]:
            rows, report = load_rows(spec, split, data_dir=args.data_dir, seed=args.seed)
            print(report.summary())
            bad |= not rows
        return int(bad)
    except RLHFLiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
