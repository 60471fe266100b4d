"""Shared handling of commands whose capability is not in this version yet."""

from __future__ import annotations

import argparse
import sys


def not_yet(command: str, what: str) -> int:
    """Say plainly that ``command`` is not available in this version; exit code 2."""
    print(
        f"o3video {command}: not available in this version yet ({what}). "
        "See README.md for what works today.",
        file=sys.stderr,
    )
    return 2


def add_passthrough(parser: argparse.ArgumentParser) -> None:
    """Accept any arguments, options included, so that the message above is shown instead of
    a usage error (``o3video.cli.main`` lets such commands keep what it does not know)."""
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    parser.set_defaults(_accepts_any=True)
