"""Errors that reach the user as one readable line instead of a library stack trace."""

import argparse
import sys


class RLHFLiteError(Exception):
    """Base class: the message alone tells the user what is wrong and where."""


class DataError(RLHFLiteError):
    """A dataset cannot be found, read or used."""


class ModelError(RLHFLiteError):
    """A model or tokenizer cannot be loaded or does not fit its step."""


class ConfigError(RLHFLiteError):
    """A configuration key or value is unknown, of the wrong type or inconsistent."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors; kebab-case flags are also taken in snake_case, like the recipes'."""

    def parse_known_args(self, args=None, namespace=None):
        return super().parse_known_args([_kebab(a) for a in (sys.argv[1:] if args is None else args)], namespace)

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _kebab(arg: str) -> str:
    flag, eq, value = arg.partition("=")
    return flag.replace("_", "-") + eq + value if arg.startswith("--") else arg


def cli(main):
    """Run `main`, turning a user mistake into one line on stderr and exit status 2."""
    try:
        return main()
    except RLHFLiteError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
