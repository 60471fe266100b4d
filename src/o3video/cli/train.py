"""`o3video train`: train a model: SFT cold start, then GSPO.

Not available in this version yet: it arrives with the training recipes.
"""

from __future__ import annotations

import argparse

from o3video.cli._pending import add_passthrough, not_yet

NAME = "train"
HELP = "train a model: SFT cold start, then GSPO (not available yet)"
EXAMPLES = """example:
  o3video train sft --config recipes/synthetic-tiny-sft.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_passthrough(parser)


def run(args: argparse.Namespace) -> int:
    return not_yet(NAME, "the training recipes")
