"""The options that choose a model and its backend, shared by every command that runs one."""

from __future__ import annotations

import argparse

from o3video.families import FAMILIES


def add_model_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--model``, ``--backend``, ``--base-url``, ``--device`` and ``--family``."""
    parser.add_argument(
        "--model", required=required, default=None, help="checkpoint directory or hub name"
    )
    parser.add_argument("--backend", choices=("hf", "vllm", "openai"), default="hf")
    parser.add_argument("--base-url", default=None, help="openai backend: http://host:port/v1")
    parser.add_argument("--device", default=None, help="hf backend: cuda, cpu, cuda:1 ...")
    parser.add_argument(
        "--family",
        default=None,
        choices=tuple(FAMILIES),
        help="openai backend: the served model's family (box space); default qwen2_5_vl",
    )
