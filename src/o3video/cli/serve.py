"""`o3video serve`: a local web page for grounded answers.

Not available in this version yet: it arrives with the web page.
"""

from __future__ import annotations

import argparse

from o3video.cli._pending import add_passthrough, not_yet

NAME = "serve"
HELP = "a local web page for grounded answers (not available yet)"
EXAMPLES = """example:
  o3video serve --port 7860
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_passthrough(parser)


def run(args: argparse.Namespace) -> int:
    return not_yet(NAME, "the web page")
