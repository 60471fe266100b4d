"""The ``o3video`` command line: one module per command (and per ``data`` sub-command), each
with ``NAME``, ``HELP``, optional ``EXAMPLES``, ``add_arguments(parser)`` and ``run(args)``."""

from __future__ import annotations

import argparse
from types import ModuleType


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], module: ModuleType, run_key: str
) -> None:
    """Add ``module``'s command to ``sub``; its ``run`` is stored as ``args.<run_key>``."""
    parser = sub.add_parser(
        module.NAME,
        help=module.HELP,
        description=module.__doc__,
        epilog=getattr(module, "EXAMPLES", None),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    parser.set_defaults(**{run_key: module.run})
