"""Errors that reach the user as one readable line instead of a library stack trace.

Command-line entry points run through `cli`, which prints the message of an `RLHFLiteError`;
library callers can catch the precise subclass.
"""

import argparse
import sys


class RLHFLiteError(Exception):
    """Base class: the message alone tells the user what is wrong and where."""


class DataError(RLHFLiteError):
    """A dataset cannot be found, read or used (names the file, row and field where known)."""


class ModelError(RLHFLiteError):
    """A model or tokenizer cannot be loaded or does not fit the step it is used in."""


class ConfigError(RLHFLiteError):
    """A configuration key or value is unknown, of the wrong type or inconsistent."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are one line, as every other user mistake (see `cli`). Its flags
    are kebab-case and also taken in snake_case, as the recipes take theirs both ways."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args([_kebab(a) for a in args], namespace)

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _kebab(arg: str) -> str:
    if not arg.startswith("--"):
        return arg
    flag, eq, value = arg.partition("=")
    return flag.replace("_", "-") + eq + value


def cli(main):
    """Run `main`, turning a user mistake into one line on stderr and exit status 2."""
    try:
        return main()
    except RLHFLiteError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
