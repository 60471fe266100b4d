"""`o3video ask`: ask a model about a video and see its evidence.

Not available in this version yet: it arrives with the model backends.
"""

from __future__ import annotations

import argparse

from o3video.cli._pending import add_passthrough, not_yet

NAME = "ask"
HELP = "ask a model about a video and see its evidence (not available yet)"
EXAMPLES = """example:
  o3video ask clip.mp4 "Where is the dog?" --model PATH
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_passthrough(parser)


def run(args: argparse.Namespace) -> int:
    return not_yet(NAME, "the model backends")
