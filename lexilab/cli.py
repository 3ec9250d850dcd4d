"""`python -m lexilab`: one argparse parser; each subcommand lives in its own module.

A subcommand module defines ``register(subparsers)`` which adds its parser and sets
``func=handler`` (handler(args) -> int). Add the module's name to ``COMMAND_MODULES``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from lexilab import __version__
from lexilab.errors import LexilabError

# Order is the order shown by --help.
COMMAND_MODULES = [
    "lexilab.commands.run",
    "lexilab.commands.status",
    "lexilab.commands.predict",
    "lexilab.commands.serve",
    "lexilab.commands.report",
    "lexilab.commands.power",
    "lexilab.commands.paper",
    "lexilab.commands.data",
    "lexilab.commands.demo",
    "lexilab.commands.sweep",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lexilab",
        description="lexilab: experiment and ablation harness for multi-task learning studies.",
    )
    parser.add_argument("--version", action="version", version=f"lexilab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except LexilabError as err:
        print(f"lexilab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lexilab: interrupted", file=sys.stderr)
        return 130
