"""Entry point of the ``o3video`` command: builds the parser from one module per command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from o3video import __version__
from o3video.cli import add_command, ask, data, demo, probe, serve, trace, train
from o3video.cli import eval as eval_cmd
from o3video.errors import O3VideoError

# Order shown in --help. Each module provides NAME, HELP, add_arguments(parser), run(args).
COMMANDS: tuple[ModuleType, ...] = (ask, demo, probe, trace, data, train, eval_cmd, serve)

EPILOG = """examples:
  o3video probe clip.mp4 --fps 2 --max-frames 16     # sampled frames and their true times
  o3video trace answer.txt                           # parse a grounded trace into JSON
  o3video ask clip.mp4 "What is the dog doing?" --model PATH
  o3video COMMAND --help                             # help on one command
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o3video",
        description="Grounded video reasoning: answers with evidence (object, box, time).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"o3video {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        add_command(sub, module, "_run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line in-process; returns the exit code (tests call this)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        build_parser().print_help()
        return 0
    try:
        code: int = args._run(args)
    except O3VideoError as exc:
        print(f"o3video {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return code


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
