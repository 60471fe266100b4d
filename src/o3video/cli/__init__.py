"""The ``o3video`` command line: one module per command (and per ``data`` sub-command), each
with ``NAME``, ``HELP``, optional ``EXAMPLES``, ``add_arguments(parser)`` and ``run(args)``."""

from __future__ import annotations

import argparse
import math
from types import ModuleType


def finite_float(text: str) -> float:
    """An ``argparse`` type: a float that is not NaN or infinite (every float option).

    >>> finite_float("2.5")
    2.5
    >>> finite_float("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: not a finite number: 'nan'
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


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
