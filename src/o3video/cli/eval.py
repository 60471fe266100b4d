"""`o3video eval`: score a model on a benchmark (V-STaR first).

Not available in this version yet: it arrives with the evaluation runner.
"""

from __future__ import annotations

import argparse

from o3video.cli._pending import add_passthrough, not_yet

NAME = "eval"
HELP = "score a model on a benchmark (V-STaR first) (not available yet)"
EXAMPLES = """example:
  o3video eval vstar --model PATH
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_passthrough(parser)


def run(args: argparse.Namespace) -> int:
    return not_yet(NAME, "the evaluation runner")
