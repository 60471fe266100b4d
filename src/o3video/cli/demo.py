"""`o3video demo`: run the embedded tiny model on a synthetic video, nothing downloaded.

Not available in this version yet: it arrives with the embedded default model.
"""

from __future__ import annotations

import argparse

from o3video.cli._pending import add_passthrough, not_yet

NAME = "demo"
HELP = "run the embedded tiny model on a synthetic video, nothing downloaded (not available yet)"
EXAMPLES = """example:
  o3video demo
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_passthrough(parser)


def run(args: argparse.Namespace) -> int:
    return not_yet(NAME, "the embedded default model")
