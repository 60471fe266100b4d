"""Entry point of the ``o3video`` command: builds the parser from one module per command.

Light start-up: a command's module (and what it imports: numpy, PyAV, torch ...) is imported
only when that command is parsed, so ``o3video --help`` imports none of them and ``o3video
trace`` only what tracing needs. :data:`COMMANDS` names each command, its module and its
one-line help (which must equal the module's ``HELP``; a test checks it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from o3video import __version__
from o3video.errors import O3VideoError


class Command(NamedTuple):
    """One command: its name, the module that implements it (``NAME``, ``HELP``, optional
    ``EXAMPLES``, ``add_arguments(parser)``, ``run(args)``) and its one-line help."""

    name: str
    module: str
    help: str


# Order shown in --help.
COMMANDS: tuple[Command, ...] = (
    Command(
        "ask",
        "o3video.cli.ask",
        "ask a model about a video and see its evidence (object, box, time)",
    ),
    Command(
        "demo",
        "o3video.cli.demo",
        "ask the embedded tiny model about a synthetic video and see its evidence (offline)",
    ),
    Command(
        "probe",
        "o3video.cli.probe",
        "show a video's stream facts and the frames (with true times) a model would see",
    ),
    Command(
        "trace",
        "o3video.cli.trace",
        "parse a grounded trace (<think>/<obj>/<box>/<t>) and list claims and problems",
    ),
    Command(
        "data", "o3video.cli.data", "check, summarise or synthesise STGR and V-STaR data files"
    ),
    Command(
        "train",
        "o3video.cli.train",
        "train a model: SFT (sft), then GSPO/GRPO (rl); memory plan (plan); merge LoRA (merge)",
    ),
    Command(
        "eval", "o3video.cli.eval", "run and score a model on a benchmark (V-STaR), compare runs"
    ),
    Command(
        "serve",
        "o3video.cli.serve",
        "a local web page: ask about a video, watch the reasoning, click the evidence",
    ),
)


class _CommandParser(argparse.ArgumentParser):
    """A command's parser, filled in from its module when the command is parsed."""

    command_module: str | None = None

    def load(self) -> None:
        """Import the command's module and add its arguments (once)."""
        if self.command_module is not None:
            module: Any = importlib.import_module(self.command_module)
            self.command_module = None
            self.description = module.__doc__
            self.epilog = getattr(module, "EXAMPLES", None)
            module.add_arguments(self)
            self.set_defaults(_run=module.run)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.load()
        return super().parse_known_args(args, namespace)


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for command in COMMANDS:
        command_parser = sub.add_parser(
            command.name, help=command.help, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        command_parser.command_module = command.module
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
