"""The options that choose a model and its backend, shared by every command that runs one."""

from __future__ import annotations

import argparse
from typing import Any

from o3video.families import FAMILIES

THREADS_HELP = (
    "hf backend on CPU: torch threads (default: 1 for a model under 100 M parameters unless "
    "OMP_NUM_THREADS is set, else torch's default)"
)


def add_model_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--model``, ``--backend``, ``--base-url``, ``--device``, ``--threads`` and ``--family``."""
    parser.add_argument(
        "--model", required=required, default=None, help="checkpoint directory or hub name"
    )
    parser.add_argument("--backend", choices=("hf", "vllm", "openai"), default="hf")
    parser.add_argument("--base-url", default=None, help="openai backend: http://host:port/v1")
    parser.add_argument("--device", default=None, help="hf backend: cuda, cpu, cuda:1 ...")
    add_threads_argument(parser)
    parser.add_argument(
        "--family",
        default=None,
        choices=tuple(FAMILIES),
        help="openai backend: the served model's family (box space); default qwen2_5_vl",
    )


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` alone (for a command that runs only the ``hf`` backend)."""
    parser.add_argument(
        "--threads", type=positive_int, default=None, metavar="N", help=THREADS_HELP
    )


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def backend_options(args: argparse.Namespace, *, max_batch: int | None = None) -> dict[str, Any]:
    """The constructor options of ``args.backend`` from ``--base-url``, ``--device`` and
    ``--threads``; ``max_batch``: the ``hf`` backend's requests per ``generate`` call."""
    threads = getattr(args, "threads", None)
    if args.backend == "openai":
        return {"base_url": args.base_url}
    if args.backend != "hf":
        return {}
    options: dict[str, Any] = {}
    if args.device:
        options["device"] = args.device
    if threads is not None:
        options["threads"] = threads
    if max_batch is not None:
        options["max_batch"] = max_batch
    return options
