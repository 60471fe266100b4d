"""`o3video data`: check, summarise, curate or synthesise STGR data.

Not available in this version yet: it arrives with the STGR data tools.
"""

from __future__ import annotations

import argparse

from o3video.cli._pending import add_passthrough, not_yet

NAME = "data"
HELP = "check, summarise, curate or synthesise STGR data (not available yet)"
EXAMPLES = """example:
  o3video data check stgr.json --media-root DIR
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_passthrough(parser)


def run(args: argparse.Namespace) -> int:
    return not_yet(NAME, "the STGR data tools")
